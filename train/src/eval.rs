//! `train eval`: PSNR/SSIM of a model and of bicubic on LR/HR pairs, with the NTIRE protocol;
//! [`evaluate`] is also the trainer's validation. With `--translator`, the paper's CycleGAN
//! baseline instead of a model: bicubic upscaling of G_r2s(LR) (a CycleGAN stage 1 only); and
//! how well stage 1 learnt the benchmark's degradation: G_s2r(bicubic↓HR) against the real LR
//! ([`DegradationReport`]: noise level and high-band spectral energy, the extra blur step edges
//! read, and from the pairs the linear responses that show the blur apart from the noise).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use gstcyclesr::model::checkpoint::{copy_into_varstore, write_atomically, SrModel};
use gstcyclesr::model::device::{resolve_device, DeviceRequest, Precision};
use gstcyclesr::model::upscaler::{catch_torch, Tiling, Upscaler};
use serde::Serialize;
use tch::nn::{self, ModuleT};
use tch::{Device, Tensor};

use crate::archs::cyclegan::resnet_generator;
use crate::archs::degradation::ExplicitDegradation;
use crate::data::{imresize, shifted_overlap, PairedItem, PairedSet};
use crate::edges::{edges, extra_blur, ExtraBlur};
use crate::metrics::{noise_sigma, NtireProtocol, Score};
use crate::model::SavedState;
use crate::spectrum::{high_band_energy, LinearResponse, RESPONSE_BANDS};

/// Tiling of [`evaluate`]: bounds memory on large images; 16 LR pixels of context make tile
/// seams negligible in the scores.
pub const DEFAULT_TILING: Tiling = Tiling {
    tile_size: 256,
    overlap: 16,
};

#[derive(clap::Args, Clone, Debug)]
pub struct EvalArgs {
    /// SR model file (.safetensors); without it only bicubic is scored.
    #[arg(long, conflicts_with = "translator")]
    pub model: Option<PathBuf>,
    /// Instead of a model, measure stage 1 of this training state (written by `train fit` in
    /// a mode with a stage 1): G_s2r(bicubic↓HR) against the real LR, and for a CycleGAN
    /// stage 1 the CycleGAN baseline, bicubic(G_r2s(LR)), as the model's scores.
    #[arg(long)]
    pub translator: Option<PathBuf>,
    /// With --translator: how many times a random G_s2r (the explicit stage 1 draws its
    /// noise, noise level and JPEG quality) degrades each image; its statistics are the means.
    /// One image's draw moves them more where the noise level is drawn per image.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..), requires = "translator")]
    pub translator_draws: u64,
    /// Folder of LR images.
    #[arg(long)]
    pub lr: PathBuf,
    /// Folder of HR ground truth, files named as in --lr.
    #[arg(long)]
    pub hr: PathBuf,
    /// HR pixels ignored at each border [default: the scale].
    #[arg(long)]
    pub border: Option<i64>,
    /// Largest integer shift (HR pixels) searched for the best alignment. 8 covers the shifts
    /// of `train degrade` (at most 6); NTIRE 2018 used 40; 0 for aligned benchmarks.
    #[arg(long, default_value_t = 8)]
    pub max_shift: i64,
    /// Score only a centre square of this side (HR pixels), as NTIRE did for speed.
    #[arg(long)]
    pub crop: Option<i64>,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Side of the LR tiles the model runs on (0 = whole images).
    #[arg(long, default_value_t = DEFAULT_TILING.tile_size)]
    pub tile_size: i64,
    /// LR pixels of context around each tile.
    #[arg(long, default_value_t = DEFAULT_TILING.overlap)]
    pub tile_overlap: i64,
    /// Arithmetic of the model's forward pass, as the element's `precision`: fp32, fp16 (CUDA
    /// only) or bf16.
    #[arg(long, default_value = "fp32")]
    pub precision: Precision,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Mean scores over a set (the mean of per-image values, as SR papers report).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct MeanScore {
    pub psnr_rgb: f64,
    pub ssim_rgb: f64,
    pub psnr_y: f64,
    pub ssim_y: f64,
}

impl MeanScore {
    fn of<'a>(scores: impl Iterator<Item = &'a Score> + Clone) -> MeanScore {
        let n = scores.clone().count().max(1) as f64;
        let mean = |f: fn(&Score) -> f64| scores.clone().map(f).sum::<f64>() / n;
        MeanScore {
            psnr_rgb: mean(|s| s.psnr_rgb),
            ssim_rgb: mean(|s| s.ssim_rgb),
            psnr_y: mean(|s| s.psnr_y),
            ssim_y: mean(|s| s.ssim_y),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ImageScores {
    pub name: String,
    /// The model's scores (bicubic's when no model is evaluated).
    pub model: Score,
    pub bicubic: Score,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct MeanScores {
    pub model: MeanScore,
    pub bicubic: MeanScore,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EvalReport {
    /// Whether a model was evaluated; otherwise `model` scores repeat bicubic's.
    pub with_model: bool,
    pub scale: i64,
    pub protocol: NtireProtocol,
    pub images: Vec<ImageScores>,
    pub mean: MeanScores,
    /// With `--translator`: stage 1's imitation of the degradation.
    pub degradation: Option<DegradationReport>,
}

/// How closely G_s2r reproduces a benchmark's real degradation, at LR scale: for each pair,
/// the synthetic LR (bicubic↓ of the HR, what G_s2r is trained on) and G_s2r of it, against the
/// benchmark's real LR of the same photo, aligned by the pair's recorded shift
/// ([`aligned_views`]). Means over the images.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DegradationReport {
    /// What the stage 1 is, with an explicit G_s2r's parameters.
    pub stage1: String,
    /// Draws of G_s2r per image its figures are the means of (`--translator-draws`).
    pub draws: u64,
    /// Noise σ on Y in code values ([`noise_sigma`]) of the synthetic LR, of G_s2r(synthetic)
    /// and of the real LR: a G_s2r that learnt the noise moves from the first to the last.
    pub noise_synthetic: f64,
    pub noise_translated: f64,
    pub noise_real: f64,
    /// PSNR on Y against the real LR (best integer shift within ±2 LR pixels, 2-pixel border)
    /// of the synthetic LR and of G_s2r(synthetic): learnt blur raises it, learnt noise (random,
    /// so never the real LR's own) lowers it.
    pub psnr_synthetic: f64,
    pub psnr_translated: f64,
    /// Mean power of Y (code values²) in the high band of the power spectrum
    /// ([`high_band_energy`]): blur and codecs lower it, noise raises it.
    pub high_band_synthetic: f64,
    pub high_band_translated: f64,
    pub high_band_real: f64,
    /// The real LR's extra blur over the synthetic LR and over G_s2r(synthetic), read from step
    /// edges direction by direction ([`crate::edges`]; LR px, the angle counter-clockwise):
    /// the first is the camera's blur, the second what G_s2r leaves out of it (negative: what
    /// it adds too much). The high band cannot tell a kernel at the wrong angle from the right
    /// one; this can. `None` where the images have too few edges to compare.
    pub edge_blur_over_synthetic: Option<ExtraBlur>,
    pub edge_blur_over_translated: Option<ExtraBlur>,
    /// The real LR's and G_s2r's linear responses to the synthetic LR, read from the pairs
    /// ([`PairedResponse`]); `None` where no image has a whole 32-px tile.
    pub response: Option<PairedResponse>,
}

/// What the pairs show of the blur and the noise, each free of the other and of the scenes
/// ([`LinearResponse`]): the real LR's response to the synthetic LR (the camera's blur relative
/// to bicubic↓) against G_s2r's, and what neither response explains.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PairedResponse {
    /// Mean |H| in the radial bands ending at [`RESPONSE_BANDS`] (cycles per LR pixel).
    pub gain_real: Vec<f64>,
    pub gain_translated: Vec<f64>,
    /// PSNR on Y (dB) of the real LR's |H| applied to the synthetic LR against no blur at all
    /// (the synthetic LR itself) and against G_s2r's |H|: how much of the camera's blur G_s2r
    /// draws, shifts aside ([`LinearResponse::psnr_against`]).
    pub psnr_synthetic: f64,
    pub psnr_translated: f64,
    /// σ on Y in code values of what the response leaves unexplained, in the real LR and in
    /// G_s2r(synthetic) ([`LinearResponse::unexplained_sigma`]).
    pub unexplained_real: f64,
    pub unexplained_translated: f64,
}

impl PairedResponse {
    fn of(real: &LinearResponse, translated: &LinearResponse) -> Option<PairedResponse> {
        (real.tiles() > 0 && translated.tiles() > 0).then(|| PairedResponse {
            gain_real: real.band_gains(),
            gain_translated: translated.band_gains(),
            psnr_synthetic: real.psnr_against_identity(),
            psnr_translated: real.psnr_against(translated),
            unexplained_real: real.unexplained_sigma(),
            unexplained_translated: translated.unexplained_sigma(),
        })
    }
}

/// Stage 1 has learnt a statistic when G_s2r(synthetic)'s value is within this fraction of the
/// real LR's.
pub const STAGE1_TOLERANCE: f64 = 0.15;

/// LR-scale comparison of [`DegradationReport`].
const LR_PROTOCOL: NtireProtocol = NtireProtocol {
    border: 2,
    max_shift: 2,
    crop: None,
};

impl DegradationReport {
    /// Measured on `draws` draws of G_s2r per image (draw `k` of image `i` seeded by
    /// `i + k · 2³²`, so one draw is seeded by the image's index alone).
    fn measure(translator: &Translator, set: &PairedSet, draws: u64) -> Result<DegradationReport> {
        let mut sums = [0.0; 8];
        let [mut edges_synthetic, mut edges_translated, mut edges_real] =
            [(); 3].map(|_| Vec::new());
        let (mut response_real, mut response_translated) =
            (LinearResponse::default(), LinearResponse::default());
        for (index, item) in set.items.iter().enumerate() {
            let context = || format!("image '{}'", item.name);
            let (real, hr) = aligned_views(item, set.scale).with_context(context)?;
            let synthetic = catch_torch(|| imresize(&hr, 1.0 / set.scale as f64).clamp(0.0, 1.0))
                .with_context(context)?;
            let score = |img: &Tensor| LR_PROTOCOL.score(img, &real).with_context(context);
            // Noise σ, PSNR to the real LR and high band of G_s2r(synthetic), over the draws.
            let mut translated_sums = [0.0; 3];
            for draw in 0..draws {
                let translated = translator
                    .degrade(&hr, &synthetic, index as u64 + (draw << 32))
                    .with_context(context)?;
                edges_translated.extend(edges(&translated).with_context(context)?);
                response_translated
                    .add(&synthetic, &translated)
                    .with_context(context)?;
                let values = [
                    noise_sigma(&translated),
                    score(&translated)?.psnr_y,
                    high_band_energy(&translated).with_context(context)?,
                ];
                for (sum, v) in translated_sums.iter_mut().zip(values) {
                    *sum += v / draws as f64;
                }
            }
            let [noise_translated, psnr_translated, high_band_translated] = translated_sums;
            edges_synthetic.extend(edges(&synthetic).with_context(context)?);
            edges_real.extend(edges(&real).with_context(context)?);
            response_real.add(&synthetic, &real).with_context(context)?;
            let values = [
                noise_sigma(&synthetic),
                noise_translated,
                noise_sigma(&real),
                score(&synthetic)?.psnr_y,
                psnr_translated,
                high_band_energy(&synthetic).with_context(context)?,
                high_band_translated,
                high_band_energy(&real).with_context(context)?,
            ];
            for (sum, v) in sums.iter_mut().zip(values) {
                *sum += v;
            }
        }
        let n = set.items.len().max(1) as f64;
        let [noise_synthetic, noise_translated, noise_real, psnr_synthetic, psnr_translated, high_band_synthetic, high_band_translated, high_band_real] =
            sums.map(|s| s / n);
        Ok(DegradationReport {
            stage1: translator.describe(),
            draws,
            noise_synthetic,
            noise_translated,
            noise_real,
            psnr_synthetic,
            psnr_translated,
            high_band_synthetic,
            high_band_translated,
            high_band_real,
            edge_blur_over_synthetic: extra_blur(&edges_real, &edges_synthetic).ok(),
            edge_blur_over_translated: extra_blur(&edges_real, &edges_translated).ok(),
            response: PairedResponse::of(&response_real, &response_translated),
        })
    }

    /// G_s2r(synthetic)'s noise σ and high-band energy relative to the real LR's (1 = equal).
    pub fn ratios(&self) -> (f64, f64) {
        (
            self.noise_translated / self.noise_real,
            self.high_band_translated / self.high_band_real,
        )
    }

    /// Whether both ratios are within [`STAGE1_TOLERANCE`] of 1.
    pub fn learnt(&self) -> bool {
        let (noise, high_band) = self.ratios();
        (noise - 1.0).abs() <= STAGE1_TOLERANCE && (high_band - 1.0).abs() <= STAGE1_TOLERANCE
    }
}

/// The part of a pair's real LR and the HR region it shows, aligned to the HR pixel by the
/// pair's recorded shift, so that the synthetic LR of that HR region differs from the real LR
/// only by what a translator can learn (a sub-pixel shift of the LR grid cannot be learnt from
/// unpaired data and would dominate the comparison).
pub(crate) fn aligned_views(item: &PairedItem, scale: i64) -> Result<(Tensor, Tensor)> {
    let (dy, dx) = item.shift.unwrap_or((0, 0));
    let (lr, hr) = (&item.lr, &item.hr);
    let along = |shift, axis: usize| {
        shifted_overlap(shift, lr.size()[axis], hr.size()[axis], scale).filter(|o| o.len >= 8)
    };
    let (Some(rows), Some(cols)) = (along(dy, 1), along(dx, 2)) else {
        bail!(
            "shift ({dy}, {dx}) leaves less than 8 LR pixels of the {}x{} LR image",
            lr.size()[2],
            lr.size()[1]
        );
    };
    Ok((
        lr.narrow(1, rows.lr_origin, rows.len)
            .narrow(2, cols.lr_origin, cols.len),
        hr.narrow(1, rows.hr_origin, rows.len * scale)
            .narrow(2, cols.hr_origin, cols.len * scale),
    ))
}

/// Scores `model` (when given) and bicubic ([`imresize`]) on every pair of `set`, running the
/// model tiled with [`DEFAULT_TILING`] in fp32 on the model's device.
pub fn evaluate(
    model: Option<&SrModel>,
    set: &PairedSet,
    protocol: &NtireProtocol,
) -> Result<EvalReport> {
    evaluate_tiled(model, set, protocol, DEFAULT_TILING, Precision::Fp32)
}

/// [`evaluate`] with a chosen tiling and precision.
pub fn evaluate_tiled(
    model: Option<&SrModel>,
    set: &PairedSet,
    protocol: &NtireProtocol,
    tiling: Tiling,
    precision: Precision,
) -> Result<EvalReport> {
    let upscaler = model
        .map(|m| upscaler_for(m, tiling, precision))
        .transpose()?;
    if let Some(upscaler) = &upscaler {
        ensure!(
            upscaler.scale() == set.scale,
            "the model upscales x{} but the LR/HR pairs are x{}",
            upscaler.scale(),
            set.scale
        );
    }
    let upscale = upscaler.as_ref().map(|upscaler| {
        move |lr: &Tensor| {
            upscaler
                .upscale(&lr.unsqueeze(0).to_device(upscaler.device()))
                .squeeze_dim(0)
                .to_device(Device::Cpu)
        }
    });
    score_set(
        set,
        protocol,
        upscale.as_ref().map(|f| f as &dyn Fn(&Tensor) -> Tensor),
    )
}

/// Scores bicubic(G_r2s(LR)) as the "model" (the CycleGAN column; a CycleGAN stage 1 only),
/// and bicubic; measures G_s2r's imitation of the degradation.
pub fn evaluate_translator(
    translator: &Translator,
    set: &PairedSet,
    protocol: &NtireProtocol,
    draws: u64,
) -> Result<EvalReport> {
    let scale = set.scale as f64;
    let report = match &translator.stage1 {
        Stage1::Cycle { g_r2s, .. } => {
            let upscale = |lr: &Tensor| imresize(&translator.run(g_r2s, lr), scale).clamp(0.0, 1.0);
            score_set(set, protocol, Some(&upscale))?
        }
        Stage1::Explicit(_) => score_set(set, protocol, None)?,
    };
    let mut report = report;
    report.degradation = Some(DegradationReport::measure(translator, set, draws)?);
    Ok(report)
}

/// Scores `upscale` (when given; `[3, h, w]` CPU LR in, HR out) and bicubic on every pair.
fn score_set(
    set: &PairedSet,
    protocol: &NtireProtocol,
    upscale: Option<&dyn Fn(&Tensor) -> Tensor>,
) -> Result<EvalReport> {
    let mut images = Vec::with_capacity(set.len());
    for item in &set.items {
        let context = || format!("image '{}'", item.name);
        let bicubic = catch_torch(|| imresize(&item.lr, set.scale as f64).clamp(0.0, 1.0))
            .with_context(context)?;
        let bicubic = protocol.score(&bicubic, &item.hr).with_context(context)?;
        let model = match upscale {
            Some(upscale) => {
                let sr = catch_torch(|| upscale(&item.lr)).with_context(context)?;
                protocol.score(&sr, &item.hr).with_context(context)?
            }
            None => bicubic,
        };
        images.push(ImageScores {
            name: item.name.clone(),
            model,
            bicubic,
        });
    }
    let mean = MeanScores {
        model: MeanScore::of(images.iter().map(|i| &i.model)),
        bicubic: MeanScore::of(images.iter().map(|i| &i.bicubic)),
    };
    Ok(EvalReport {
        with_model: upscale.is_some(),
        scale: set.scale,
        protocol: *protocol,
        images,
        mean,
        degradation: None,
    })
}

/// Stage 1 of a training state.
pub enum Stage1 {
    /// The CycleGAN: G_r2s (real LR → the synthetic, bicubic-downscaled LR domain) and G_s2r
    /// (back).
    Cycle {
        // Owns the weights the generators run with.
        _vs: nn::VarStore,
        g_r2s: nn::FuncT<'static>,
        g_s2r: nn::FuncT<'static>,
    },
    /// The explicit G_s2r (blur kernel and real noise).
    Explicit(ExplicitDegradation),
}

/// Stage 1 of a training state, run on single images.
pub struct Translator {
    pub stage1: Stage1,
    /// The state's `data.scale`: the synthetic LR stage 1 takes is the HR downscaled by it.
    pub scale: i64,
    device: Device,
}

impl Translator {
    /// Builds stage 1 with the options recorded in the state (as `train export` reads a
    /// state) and loads its weights.
    pub fn load(path: &Path, device: Device) -> Result<Translator> {
        let mut state = SavedState::read(path)?;
        let options = state.options.clone();
        if options.mode.uses_explicit_degradation() {
            let mut degradation = ExplicitDegradation::from_tensors(
                state.take("degradation/"),
                &|source| options.compression_of(source),
                device,
            )
            .with_context(|| format!("stage 1 of training state {}", path.display()))?;
            degradation.hr_grid = options.explicit_hr_grid();
            return Ok(Translator {
                stage1: Stage1::Explicit(degradation),
                scale: options.data.scale,
                device,
            });
        }
        ensure!(
            options.mode.uses_translator(),
            "{}: mode {:?} trains no stage 1",
            path.display(),
            options.mode
        );
        let mut vs = nn::VarStore::new(device);
        let g_r2s = resnet_generator(&(vs.root() / "g_r2s"), &options.networks.translator);
        let g_s2r = resnet_generator(&(vs.root() / "g_s2r"), &options.networks.translator);
        let mut weights = HashMap::new();
        for net in ["g_r2s", "g_s2r"] {
            for (name, t) in state.take(&format!("translators/{net}.")) {
                weights.insert(format!("{net}.{name}"), t);
            }
        }
        copy_into_varstore(&mut vs, weights)
            .with_context(|| format!("translators of training state {}", path.display()))?;
        Ok(Translator {
            stage1: Stage1::Cycle {
                _vs: vs,
                g_r2s,
                g_s2r,
            },
            scale: options.data.scale,
            device,
        })
    }

    /// G_s2r(synthetic) for a `[3, h, w]` CPU image in [0, 1], the bicubic↓`scale` of `hr`,
    /// on the CPU, clamped to [0, 1] (the residual translator is not bounded); an explicit
    /// G_s2r draws its noise from `seed`, and one on the HR grid degrades `hr`.
    pub fn degrade(&self, hr: &Tensor, synthetic: &Tensor, seed: u64) -> Result<Tensor> {
        match &self.stage1 {
            Stage1::Cycle { g_s2r, .. } => catch_torch(|| self.run(g_s2r, synthetic)),
            Stage1::Explicit(degradation) => {
                let mut rng = rand::SeedableRng::seed_from_u64(seed);
                let input = degradation
                    .input(hr, synthetic)
                    .unsqueeze(0)
                    .to_device(self.device);
                let out = tch::no_grad(|| degradation.forward(&input, &mut rng))?;
                Ok(out.squeeze_dim(0).to_device(Device::Cpu))
            }
        }
    }

    /// What stage 1 is, in words, with an explicit G_s2r's parameters.
    pub fn describe(&self) -> String {
        match &self.stage1 {
            Stage1::Cycle { .. } => "CycleGAN G_s2r".to_string(),
            Stage1::Explicit(d) => {
                let cameras: Vec<String> = d
                    .cameras
                    .iter()
                    .map(|camera| {
                        let (major, minor, angle) = d.kernel_spread_lr(camera);
                        format!(
                            "source {source}: {k}x{k} kernel{grid} with σ {major:.2} x {minor:.2} LR px at {angle:.0}°, {noise}, {compression}",
                            source = camera.source,
                            k = camera.kernel.size()[0],
                            grid = if d.hr_grid.is_some() { " on the HR grid" } else { "" },
                            noise = camera.describe_noise(),
                            compression = camera.describe_compression()
                        )
                    })
                    .collect();
                format!("explicit G_s2r, {}", cameras.join("; "))
            }
        }
    }

    fn run(&self, generator: &nn::FuncT<'static>, image: &Tensor) -> Tensor {
        tch::no_grad(|| {
            generator
                .forward_t(&image.unsqueeze(0).to_device(self.device), false)
                .squeeze_dim(0)
                .clamp(0.0, 1.0)
                .to_device(Device::Cpu)
        })
    }
}

/// An [`Upscaler`] at `precision` on a copy of `model`'s weights: the upscaler owns its model,
/// and the trainer keeps training its own.
fn upscaler_for(model: &SrModel, tiling: Tiling, precision: Precision) -> Result<Upscaler> {
    let mut copy = SrModel::new(model.config, model.vs.device())?;
    copy.vs
        .copy(&model.vs)
        .context("copying the SR network's weights")?;
    Upscaler::new(copy, precision, tiling)
}

impl fmt::Display for EvalReport {
    /// A table: one row per image, then the means.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .images
            .iter()
            .map(|i| i.name.len())
            .chain([4])
            .max()
            .unwrap_or(4);
        let pair = |psnr: f64, ssim: f64| format!("{psnr:6.2} {ssim:.4}");
        write!(f, "{:width$}  {:>9}", "name", "shift")?;
        if self.with_model {
            write!(f, "  {:>13}  {:>13}", "model RGB", "model Y")?;
        }
        writeln!(f, "  {:>13}  {:>13}", "bicubic RGB", "bicubic Y")?;
        let row = |f: &mut fmt::Formatter<'_>,
                   name: &str,
                   shift: String,
                   model: MeanScore,
                   bicubic: MeanScore| {
            write!(f, "{name:width$}  {shift:>9}")?;
            if self.with_model {
                write!(
                    f,
                    "  {}  {}",
                    pair(model.psnr_rgb, model.ssim_rgb),
                    pair(model.psnr_y, model.ssim_y)
                )?;
            }
            writeln!(
                f,
                "  {}  {}",
                pair(bicubic.psnr_rgb, bicubic.ssim_rgb),
                pair(bicubic.psnr_y, bicubic.ssim_y)
            )
        };
        for image in &self.images {
            let (dy, dx) = image.model.shift;
            row(
                f,
                &image.name,
                format!("{dy},{dx}"),
                MeanScore::of([image.model].iter()),
                MeanScore::of([image.bicubic].iter()),
            )?;
        }
        row(
            f,
            &format!("mean ({})", self.images.len()),
            String::new(),
            self.mean.model,
            self.mean.bicubic,
        )?;
        if let Some(d) = &self.degradation {
            let (noise, high_band) = d.ratios();
            writeln!(
                f,
                "stage 1: {}\n\
                 stage 1 against the real LR (LR scale, means{}):  noise σ (Y, code values) \
                 synthetic {:.2}, G_s2r(synthetic) {:.2}, real {:.2};  high-band energy (Y, \
                 code values², f ≥ {} cycles/px) synthetic {:.2}, G_s2r(synthetic) {:.2}, real \
                 {:.2};  PSNR Y to the real LR synthetic {:.2} dB, G_s2r(synthetic) {:.2} dB\n\
                 G_s2r(synthetic) / real: noise σ {noise:.3}, high-band energy {high_band:.3} \
                 ({} within ±{:.0}%)\n\
                 the real LR's extra blur read from step edges (LR px, along x across at the angle; \
                 negative: less blur): over the synthetic {}, over G_s2r(synthetic) {}",
                d.stage1,
                match d.draws {
                    1 => String::new(),
                    n => format!(", G_s2r drawn {n} times per image"),
                },
                d.noise_synthetic,
                d.noise_translated,
                d.noise_real,
                crate::spectrum::HIGH_BAND_START,
                d.high_band_synthetic,
                d.high_band_translated,
                d.high_band_real,
                d.psnr_synthetic,
                d.psnr_translated,
                if d.learnt() { "both" } else { "not both" },
                STAGE1_TOLERANCE * 100.0,
                describe_edge_blur(d.edge_blur_over_synthetic),
                describe_edge_blur(d.edge_blur_over_translated),
            )?;
            match &d.response {
                Some(r) => {
                    let gains = |g: &[f64]| {
                        g.iter()
                            .map(|v| format!("{v:.2}"))
                            .collect::<Vec<_>>()
                            .join(" ")
                    };
                    writeln!(
                        f,
                        "from the pairs (Y, 32-px tiles): the response |H| to the synthetic LR in bands \
                         up to {:?} cycles/px: real {}, G_s2r {};  PSNR of the real response against \
                         no blur {:.2} dB, against G_s2r's {:.2} dB;  σ it leaves unexplained (code \
                         values): real {:.2}, G_s2r {:.2}",
                        RESPONSE_BANDS,
                        gains(&r.gain_real),
                        gains(&r.gain_translated),
                        r.psnr_synthetic,
                        r.psnr_translated,
                        r.unexplained_real,
                        r.unexplained_translated,
                    )?;
                }
                None => writeln!(f, "from the pairs: no image has a whole 32-px tile")?,
            }
        }
        Ok(())
    }
}

fn describe_edge_blur(blur: Option<ExtraBlur>) -> String {
    blur.map_or_else(|| "(too few step edges)".to_string(), |b| b.to_string())
}

/// `train eval`: loads the pairs (and the model), prints the table, writes the JSON report.
pub fn run(args: &EvalArgs) -> Result<()> {
    ensure!(
        args.tile_size >= 0 && args.tile_overlap >= 0,
        "--tile-size {} and --tile-overlap {} must not be negative",
        args.tile_size,
        args.tile_overlap
    );
    let set = PairedSet::load(&args.lr, &args.hr)?;
    let device = || -> Result<Device> {
        let request: DeviceRequest = args.device.parse()?;
        let (device, warning) = resolve_device(request)?;
        if let Some(warning) = warning {
            eprintln!("warning: {warning}");
        }
        Ok(device)
    };
    let model = match &args.model {
        Some(path) => Some(SrModel::load(path, device()?)?),
        None => None,
    };
    let protocol = NtireProtocol {
        border: args.border.unwrap_or(set.scale),
        max_shift: args.max_shift,
        crop: args.crop,
    };
    let tiling = Tiling {
        tile_size: args.tile_size,
        overlap: args.tile_overlap,
    };
    let report = match &args.translator {
        Some(path) => evaluate_translator(
            &Translator::load(path, device()?)?,
            &set,
            &protocol,
            args.translator_draws,
        )?,
        None => evaluate_tiled(model.as_ref(), &set, &protocol, tiling, args.precision)?,
    };
    print!("{report}");
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report)?;
        write_atomically(path, json.as_bytes())?;
    }
    Ok(())
}
