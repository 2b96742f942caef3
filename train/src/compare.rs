//! `train compare`: the same crop of one frame or image, side by side: optionally the LR
//! upscaled by nearest neighbour, bicubic, one panel per G_l2h model, optionally the HR.

use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use gstcyclesr::model::checkpoint::SrModel;
use gstcyclesr::model::device::{resolve_device, DeviceRequest, Precision};
use gstcyclesr::model::upscaler::{catch_torch, Tiling, Upscaler};
use gstcyclesr::model::EmbeddedModel;
use tch::{Device, Kind, Tensor};

use crate::data::{decode_video, imresize, is_image_file, load_image, save_png, FrameRange};
use crate::eval::DEFAULT_TILING;

/// White columns between two panels.
pub const GAP: i64 = 8;

#[derive(clap::Args, Debug)]
pub struct CompareArgs {
    /// A video (any format GStreamer decodes) or an image.
    #[arg(long)]
    pub input: PathBuf,
    /// Frame of the video to compare (0-based).
    #[arg(long, default_value_t = 0)]
    pub frame: u64,
    /// G_l2h checkpoint; repeat for one panel per model, in order. Default: the model embedded
    /// in the plugin. All models must have the same scale.
    #[arg(long)]
    pub model: Vec<PathBuf>,
    /// HR ground truth of an image input (scale × its size): its crop is the last panel.
    #[arg(long)]
    pub hr: Option<PathBuf>,
    /// Add a first panel: the LR crop upscaled by nearest neighbour.
    #[arg(long)]
    pub nearest: bool,
    /// Crop in input pixels, WxH+X+Y (default: a centred 160x120).
    #[arg(long)]
    pub crop: Option<String>,
    /// Output PNG: [nearest |] bicubic | each model [| HR], separated by white gaps.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value = "auto")]
    pub device: String,
}

fn parse_crop(text: &str) -> Result<[i64; 4]> {
    let parse = || -> Option<[i64; 4]> {
        let (size, offset) = text.split_once('+')?;
        let (w, h) = size.split_once('x')?;
        let (x, y) = offset.split_once('+')?;
        Some([
            w.parse().ok()?,
            h.parse().ok()?,
            x.parse().ok()?,
            y.parse().ok()?,
        ])
    };
    parse().with_context(|| format!("crop '{text}' is not WxH+X+Y"))
}

/// The models of `paths` (all of one scale), or the element's default (the embedded
/// [`EmbeddedModel::Quality`]) when there is none.
pub fn load_models(paths: &[PathBuf], device: Device) -> Result<Vec<(String, SrModel)>> {
    if paths.is_empty() {
        let embedded = EmbeddedModel::default();
        let name = embedded.file_name();
        let bytes = embedded
            .bytes()
            .with_context(|| format!("no --model given and this build does not embed {name}"))?;
        let model =
            SrModel::from_bytes(bytes, device).with_context(|| format!("embedded model {name}"))?;
        return Ok(vec![(format!("embedded {name}"), model)]);
    }
    let mut models: Vec<(String, SrModel)> = Vec::with_capacity(paths.len());
    for path in paths {
        let model = SrModel::load(path, device)
            .with_context(|| format!("loading --model {}", path.display()))?;
        if let Some((first, m)) = models.first() {
            ensure!(
                model.config.scale == m.config.scale,
                "--model {} is ×{} but {first} is ×{}: all models need one scale",
                path.display(),
                model.config.scale,
                m.config.scale
            );
        }
        models.push((path.display().to_string(), model));
    }
    Ok(models)
}

fn load_hr(path: &Path, scale: i64, lr_size: (i64, i64), input: &Path) -> Result<Tensor> {
    let hr = load_image(path).with_context(|| format!("reading --hr {}", path.display()))?;
    let (h, w) = (hr.size()[1], hr.size()[2]);
    let (lh, lw) = lr_size;
    ensure!(
        (h, w) == (lh * scale, lw * scale),
        "--hr {} is {w}x{h}, not ×{scale} the {lw}x{lh} of {} ({}x{})",
        path.display(),
        input.display(),
        lw * scale,
        lh * scale
    );
    Ok(hr)
}

/// LR pixels of context upscaled around a crop and then discarded, as tiles keep
/// ([`DEFAULT_TILING`]): the crop's pixels are then those of the whole frame upscaled.
const CONTEXT: i64 = DEFAULT_TILING.overlap;

/// The crop `[w, h, x, y]` (LR pixels, inside `frame`) of a `[3, H, W]` CPU frame side by
/// side, white gaps between panels: [the LR upscaled by nearest neighbour |] bicubic | each
/// upscaler's output [| the crop of `hr`, the HR frame].
pub fn side_by_side(
    frame: &Tensor,
    [cw, ch, cx, cy]: [i64; 4],
    upscalers: &[Upscaler],
    nearest: bool,
    hr: Option<&Tensor>,
) -> Result<Tensor> {
    let s = upscalers.first().map_or(4, Upscaler::scale);
    let (h, w) = (frame.size()[1], frame.size()[2]);
    ensure!(
        cw >= 1 && ch >= 1 && cx >= 0 && cy >= 0 && cx + cw <= w && cy + ch <= h,
        "crop {cw}x{ch}+{cx}+{cy} does not fit the {w}x{h} frame"
    );
    let crop = |t: &Tensor| t.narrow(1, cy * s, ch * s).narrow(2, cx * s, cw * s);
    let mut panels = Vec::new();
    if nearest {
        let lr = frame.narrow(1, cy, ch).narrow(2, cx, cw);
        panels.push(
            lr.repeat_interleave_self_int(s, 1, None)
                .repeat_interleave_self_int(s, 2, None),
        );
    }
    panels.push(crop(&imresize(frame, s as f64).clamp(0.0, 1.0)));
    // Each model upscales the crop with its context only.
    let (x0, y0) = ((cx - CONTEXT).max(0), (cy - CONTEXT).max(0));
    let (x1, y1) = ((cx + cw + CONTEXT).min(w), (cy + ch + CONTEXT).min(h));
    let window = frame.narrow(1, y0, y1 - y0).narrow(2, x0, x1 - x0);
    for upscaler in upscalers {
        ensure!(
            upscaler.scale() == s,
            "the models upscale x{s} and x{}: one scale is needed",
            upscaler.scale()
        );
        let sr = catch_torch(|| {
            upscaler
                .upscale(&window.unsqueeze(0).to_device(upscaler.device()))
                .squeeze_dim(0)
                .to_device(Device::Cpu)
        })?;
        panels.push(
            sr.narrow(1, (cy - y0) * s, ch * s)
                .narrow(2, (cx - x0) * s, cw * s),
        );
    }
    if let Some(hr) = hr {
        panels.push(crop(hr));
    }
    let gap = Tensor::ones([3, ch * s, GAP], (Kind::Float, Device::Cpu));
    let mut row = Vec::with_capacity(2 * panels.len());
    for (k, panel) in panels.into_iter().enumerate() {
        if k > 0 {
            row.push(gap.shallow_clone());
        }
        row.push(panel);
    }
    Ok(Tensor::cat(&row, 2))
}

pub fn run(args: &CompareArgs) -> Result<()> {
    let is_image = is_image_file(&args.input);
    if args.hr.is_some() && !is_image {
        bail!(
            "--hr needs an image --input; {} is not one",
            args.input.display()
        );
    }
    let frame = if is_image {
        load_image(&args.input)?
    } else {
        let range = FrameRange {
            start: args.frame,
            end: Some(args.frame + 1),
            step: 1,
        };
        let frames = decode_video(&args.input, range)?;
        let Some(frame) = frames.first() else {
            bail!("{} has no frame {}", args.input.display(), args.frame);
        };
        frame.to_tensor()
    };
    let (h, w) = (frame.size()[1], frame.size()[2]);
    let [cw, ch, cx, cy] = match &args.crop {
        Some(text) => parse_crop(text)?,
        None => {
            let (cw, ch) = (160.min(w), 120.min(h));
            [cw, ch, (w - cw) / 2, (h - ch) / 2]
        }
    };
    if cw < 1 || ch < 1 || cx < 0 || cy < 0 || cx + cw > w || cy + ch > h {
        bail!(
            "crop {cw}x{ch}+{cx}+{cy} does not fit the {w}x{h} frame of {}",
            args.input.display()
        );
    }

    let (device, _) = resolve_device(args.device.parse::<DeviceRequest>()?)?;
    let models = load_models(&args.model, device)?;
    let s = models[0].1.config.scale;
    let hr = match &args.hr {
        Some(path) => Some(load_hr(path, s, (h, w), &args.input)?),
        None => None,
    };

    let mut names: Vec<String> = Vec::new();
    if args.nearest {
        names.push("nearest".to_owned());
    }
    names.push("bicubic".to_owned());
    names.extend(models.iter().map(|(name, _)| name.clone()));
    let upscalers = models
        .into_iter()
        .map(|(_, model)| Upscaler::new(model, Precision::Fp32, Tiling::default()))
        .collect::<Result<Vec<_>>>()?;
    if let Some(path) = &args.hr {
        names.push(format!("HR {}", path.display()));
    }
    let strip = side_by_side(
        &frame,
        [cw, ch, cx, cy],
        &upscalers,
        args.nearest,
        hr.as_ref(),
    )?;
    save_png(&strip, &args.out)?;
    println!(
        "wrote {}: frame {} of {}, crop {cw}x{ch}+{cx}+{cy} ×{s}; left to right: {}",
        args.out.display(),
        args.frame,
        args.input.display(),
        names.join(" | ")
    );
    Ok(())
}
