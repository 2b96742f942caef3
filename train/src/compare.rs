//! `train compare`: one frame upscaled by bicubic and by G_l2h, the same crop side by side.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use gstcyclesr::model::checkpoint::SrModel;
use gstcyclesr::model::device::{resolve_device, DeviceRequest, Precision};
use gstcyclesr::model::embedded_default_model;
use gstcyclesr::model::upscaler::{Tiling, Upscaler};
use tch::{Kind, Tensor};

use crate::data::{decode_video, imresize, is_image_file, load_image, save_png, FrameRange};

#[derive(clap::Args, Debug)]
pub struct CompareArgs {
    /// A video (any format GStreamer decodes) or an image.
    #[arg(long)]
    pub input: PathBuf,
    /// Frame of the video to compare (0-based).
    #[arg(long, default_value_t = 0)]
    pub frame: u64,
    /// G_l2h checkpoint; default: the model embedded in the plugin.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Crop in input pixels, WxH+X+Y (default: a centred 160x120).
    #[arg(long)]
    pub crop: Option<String>,
    /// Output PNG: bicubic on the left, G_l2h on the right.
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

pub fn run(args: &CompareArgs) -> Result<()> {
    let frame = if is_image_file(&args.input) {
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
    let model = match &args.model {
        Some(path) => SrModel::load(path, device)?,
        None => SrModel::from_bytes(
            embedded_default_model()
                .context("no --model given and this build embeds no default model")?,
            device,
        )
        .context("embedded default model")?,
    };
    let s = model.config.scale;
    let upscaler = Upscaler::new(
        model,
        Precision::Fp32,
        Tiling {
            tile_size: 128,
            overlap: 16,
        },
    )?;
    let sr = upscaler
        .upscale(&frame.unsqueeze(0).to_device(device))
        .squeeze_dim(0)
        .to_device(tch::Device::Cpu);
    let bicubic = imresize(&frame, s as f64).clamp(0.0, 1.0);
    let crop = |t: &Tensor| t.narrow(1, cy * s, ch * s).narrow(2, cx * s, cw * s);
    let gap = Tensor::ones([3, ch * s, 8], (Kind::Float, tch::Device::Cpu));
    save_png(
        &Tensor::cat(&[crop(&bicubic), gap, crop(&sr)], 2),
        &args.out,
    )?;
    println!(
        "wrote {}: frame {} of {}, crop {cw}x{ch}+{cx}+{cy} ×{s}; left bicubic, right cyclesr",
        args.out.display(),
        args.frame,
        args.input.display()
    );
    Ok(())
}
