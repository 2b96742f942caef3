//! An explicit G_s2r: the camera's degradation as a blur kernel and a bank of its own noise,
//! both taken from the unpaired real LR (not in the paper, which learns G_s2r as a CycleGAN
//! generator).
//!
//! G_s2r(x) = k ∗ x + n, on LR images in [0, 1]:
//! - `n` is real noise: tiles cut from the flattest regions of real LR patches, each minus its
//!   least-squares plane (Ji et al., "Real-World Super-Resolution via Kernel Estimation and
//!   Noise Injection", CVPRW 2020, NTIRE 2020 winner). Nothing about it is guessed.
//! - `k` is a non-negative, point-symmetric kernel (it blurs without moving the image, so
//!   pseudo pairs stay aligned with their HR) fitted so that the mean power spectrum of
//!   g·|K|²·P_synthetic + P_noise matches the real patches' ([`crate::spectrum`]), in log
//!   scale. With the noise measured rather than fitted, the spectrum no longer trades blur
//!   against noise. The gain `g`, measured on the low band where blur changes little, absorbs
//!   how much more texture one domain's photos have than the other's: without it, content
//!   differences between two unpaired sets pass for blur (docs/RESULTS.md).
//!
//! A source marked `per_file` (stills from many cameras, clips of different shots) gets one
//! kernel and noise bank per file, each fitted on that file's patches, and G_s2r draws among
//! them: the pool of degradations RealSR collects with KernelGAN. One kernel fitted to such a
//! source's mean spectrum blurs every patch by the average, which no file has; and the kernel
//! of a file must be fitted against that file's own noise, or a noisier-than-average file
//! passes for a sharper one.
//!
//! Both are plain tensors, saved in the training state and printed by `train eval
//! --translator`.
//!
//! Compression is drawn, not fitted: with `jpeg_quality = [lo, hi]`, G_s2r's output for a
//! camera whose footage is compressed (every source not marked `lossless`) is JPEG-compressed at
//! a quality drawn uniformly from that range, as Real-ESRGAN does. Its level is not
//! identifiable from unpaired spectra: the two domains' content moves them more than a codec
//! does, and a fitted quality picked 95 everywhere (docs/RESULTS.md). Not modelled: noise that
//! depends on brightness.

use anyhow::{ensure, Context, Result};
use rand::rngs::StdRng;
use rand::Rng;
use serde::{Deserialize, Serialize};
use tch::nn::{self, OptimizerConfig};
use tch::{Device, Kind, Tensor};

use crate::data::{PatchGroup, Rgb8, SourcePatches};
use crate::degrade::jpeg_roundtrip;
use crate::metrics::rgb_to_y;
use crate::spectrum::{mean_power_spectrum, radial_frequency};

/// `[networks.degradation]`: the explicit G_s2r of mode `explicit`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DegradationConfig {
    /// Side of the blur kernel in LR pixels (odd).
    pub kernel: i64,
    /// Side of the noise tiles in LR pixels; a patch's noise is a mosaic of random tiles.
    pub noise_tile: i64,
    /// Tiles kept in the noise bank.
    pub noise_tiles: i64,
    /// Real and synthetic LR patches drawn to fit the kernel and cut the noise from.
    pub fit_patches: i64,
    /// Adam steps of the kernel fit.
    pub fit_steps: i64,
    /// JPEG quality range `[lo, hi]` (1–100) G_s2r's outputs are compressed at, one quality
    /// drawn per image, for the sources not marked `lossless`; none: no compression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jpeg_quality: Option<[u8; 2]>,
}

impl Default for DegradationConfig {
    fn default() -> Self {
        DegradationConfig {
            kernel: 9,
            noise_tile: 16,
            noise_tiles: 1024,
            fit_patches: 2048,
            fit_steps: 400,
            jpeg_quality: None,
        }
    }
}

impl DegradationConfig {
    pub fn validate(&self) -> Result<()> {
        ensure!(
            self.kernel >= 1 && self.kernel % 2 == 1,
            "networks.degradation.kernel must be a positive odd size, got {}",
            self.kernel
        );
        ensure!(
            self.noise_tile >= 4 && self.noise_tiles >= 1,
            "networks.degradation.noise_tile {} must be at least 4 and noise_tiles {} at least 1",
            self.noise_tile,
            self.noise_tiles
        );
        ensure!(
            self.fit_patches >= 1 && self.fit_steps >= 0,
            "networks.degradation.fit_patches {} must be positive and fit_steps {} not negative",
            self.fit_patches,
            self.fit_steps
        );
        if let Some([lo, hi]) = self.jpeg_quality {
            ensure!(
                1 <= lo && lo <= hi && hi <= 100,
                "networks.degradation.jpeg_quality [{lo}, {hi}] must be a range within 1..=100"
            );
        }
        Ok(())
    }
}

/// One camera's fitted degradation: `n` pairs of a blur kernel (`kernels` `[n, k, k]`, each
/// sums to 1, point-symmetric) and a noise bank (`noise` `[n, T, 3, t, t]`, zero-mean tiles),
/// one per file of a `per_file` source, else one; and the JPEG quality range its output is
/// compressed at, if its footage is compressed.
pub struct CameraDegradation {
    /// Index of its source in `data.real_lr`.
    pub source: usize,
    pub kernels: Tensor,
    pub noise: Tensor,
    pub jpeg_quality: Option<[u8; 2]>,
}

/// The explicit G_s2r: one degradation per real LR source (each camera has its own optics,
/// noise and compression); each synthetic patch is degraded by a camera drawn uniformly.
pub struct ExplicitDegradation {
    pub cameras: Vec<CameraDegradation>,
}

/// Only tiles whose mean Y ([`rgb_to_y`], studio range: 16/255 is black) lies here are noise
/// candidates: near black or white (luma under 0.1 or over 0.9), clipping removes part of the
/// noise.
const TILE_MEAN_RANGE: (f64, f64) = (0.149, 0.835);

/// Upper edge of the band the content gain is measured on, in cycles per pixel.
const LOW_BAND_END: f64 = 0.1;

/// What the fit of one camera ([`CameraDegradation::fit`]) reached, for logs.
#[derive(Clone, Debug, Serialize)]
pub struct FitSummary {
    /// Candidate noise tiles and the residual σ (Y, code values) of the kept ones.
    pub candidate_tiles: i64,
    pub noise_sigma: f64,
    /// One per kernel, in the order of `CameraDegradation::kernels`.
    pub kernels: Vec<KernelFit>,
}

/// What the fit of one blur kernel reached.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct KernelFit {
    /// Mean squared log-spectrum error before (identity kernel) and after the fit.
    pub log_spectrum_error_identity: f64,
    pub log_spectrum_error_fitted: f64,
    /// How much more texture the real patches' content has than the synthetic ones': the
    /// gain on the synthetic spectrum, measured on the low band.
    pub content_gain: f64,
}

impl ExplicitDegradation {
    /// Fits one camera per real LR source against the same `synthetic` patches;
    /// `compression` gives each source's JPEG quality range.
    pub fn fit(
        real: &[SourcePatches],
        synthetic: &Tensor,
        config: &DegradationConfig,
        compression: &dyn Fn(usize) -> Option<[u8; 2]>,
    ) -> Result<(ExplicitDegradation, Vec<FitSummary>)> {
        ensure!(!real.is_empty(), "no real LR source to fit stage 1 on");
        let mut cameras = Vec::new();
        let mut summaries = Vec::new();
        for source in real {
            let (mut camera, summary) =
                CameraDegradation::fit(source.source, &source.groups, synthetic, config)
                    .with_context(|| format!("data.real_lr source {}", source.source))?;
            camera.jpeg_quality = compression(source.source);
            cameras.push(camera);
            summaries.push(summary);
        }
        Ok((ExplicitDegradation { cameras }, summaries))
    }

    /// G_s2r(x) for `[B, 3, h, w]` synthetic LR: each image blurred by a camera drawn from
    /// `rng` (and one of its files, if it has several), plus a mosaic of that file's noise
    /// tiles, clamped to [0, 1], then JPEG-compressed if that camera compresses.
    pub fn forward(&self, x: &Tensor, rng: &mut StdRng) -> Result<Tensor> {
        let size = x.size();
        ensure!(size.len() == 4, "expected [B, 3, h, w], got {size:?}");
        let (b, c, h, w) = (size[0], size[1], size[2], size[3]);
        let picks: Vec<(&CameraDegradation, i64)> = (0..b)
            .map(|_| {
                let cam = &self.cameras[rng.random_range(0..self.cameras.len())];
                // A single file draws nothing: states fitted before pools resume exactly.
                let files = cam.kernels.size()[0];
                let file = if files > 1 {
                    rng.random_range(0..files)
                } else {
                    0
                };
                (cam, file)
            })
            .collect();
        let kernels: Vec<Tensor> = picks.iter().map(|(cam, f)| cam.kernels.get(*f)).collect();
        let kernels = Tensor::stack(&kernels, 0).to_device(x.device());
        let k = kernels.size()[1];
        // One grouped convolution: image i's channels with camera i's kernel.
        let weight = kernels
            .view([b, 1, k, k])
            .repeat_interleave_self_int(c, 0, None);
        let pad = k / 2;
        let blurred = x
            .reshape([1, b * c, h, w])
            .pad([pad, pad, pad, pad], "replicate", None)
            .conv2d(&weight, None::<Tensor>, [1, 1], [0, 0], [1, 1], b * c)
            .view([b, c, h, w]);
        let side = h.max(w);
        let noise = picks
            .iter()
            .map(|(cam, file)| mosaic(&cam.noise.get(*file), 1, side, rng))
            .collect::<Result<Vec<_>>>()?;
        let noise = Tensor::cat(&noise, 0)
            .narrow(2, 0, h)
            .narrow(3, 0, w)
            .to_device(x.device());
        let degraded = (blurred + noise).clamp(0.0, 1.0);
        if picks.iter().all(|(cam, _)| cam.jpeg_quality.is_none()) {
            return Ok(degraded);
        }
        let images = picks
            .iter()
            .enumerate()
            .map(|(i, (cam, _))| {
                let image = degraded.get(i as i64);
                let Some([lo, hi]) = cam.jpeg_quality else {
                    return Ok(image);
                };
                let quality = rng.random_range(lo..=hi);
                Ok(jpeg_roundtrip(&Rgb8::from_tensor(&image)?, quality)
                    .with_context(|| format!("G_s2r's JPEG at quality {quality}"))?
                    .to_tensor()
                    .to_device(x.device()))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Tensor::stack(&images, 0))
    }

    /// Tensors for a training state: `<source>.kernel` (`[n, k, k]`) and `<source>.noise`
    /// (`[n, T, 3, t, t]`) of each camera.
    pub fn tensors(&self) -> Vec<(String, Tensor)> {
        self.cameras
            .iter()
            .flat_map(|cam| {
                [
                    (
                        format!("{}.kernel", cam.source),
                        cam.kernels.shallow_clone(),
                    ),
                    (format!("{}.noise", cam.source), cam.noise.shallow_clone()),
                ]
            })
            .collect()
    }

    /// From the tensors of [`ExplicitDegradation::tensors`], checked, with each source's
    /// compression from `compression` (the state's options).
    pub fn from_tensors(
        mut tensors: std::collections::HashMap<String, Tensor>,
        compression: &dyn Fn(usize) -> Option<[u8; 2]>,
        device: Device,
    ) -> Result<ExplicitDegradation> {
        let mut sources: Vec<usize> = tensors
            .keys()
            .filter_map(|name| name.strip_suffix(".kernel")?.parse().ok())
            .collect();
        sources.sort();
        ensure!(!sources.is_empty(), "no degradation kernel in the state");
        let mut cameras = Vec::new();
        for source in sources {
            let mut take = |what: &str| {
                tensors
                    .remove(&format!("{source}.{what}"))
                    .with_context(|| format!("no {what} of camera {source} in the state"))
            };
            let (kernels, noise) = (take("kernel")?, take("noise")?);
            // States written before per-file pools hold one `[k, k]` kernel and one
            // `[T, 3, t, t]` bank.
            let (kernels, noise) = if kernels.dim() == 2 && noise.dim() == 4 {
                (kernels.unsqueeze(0), noise.unsqueeze(0))
            } else {
                (kernels, noise)
            };
            let (ks, ns) = (kernels.size(), noise.size());
            ensure!(
                ks.len() == 3 && ks[0] > 0 && ks[1] == ks[2] && ks[1] % 2 == 1,
                "degradation kernels of camera {source} have shape {ks:?}, expected [n, k, k] with k odd"
            );
            ensure!(
                ns.len() == 5 && ns[0] == ks[0] && ns[1] > 0 && ns[2] == 3 && ns[3] == ns[4],
                "noise banks of camera {source} have shape {ns:?}, expected [{}, T, 3, t, t]",
                ks[0]
            );
            cameras.push(CameraDegradation {
                source,
                kernels: kernels.to_kind(Kind::Float).to_device(device),
                noise: noise.to_kind(Kind::Float).to_device(device),
                jpeg_quality: compression(source),
            });
        }
        let kernel_sizes: Vec<i64> = cameras.iter().map(|c| c.kernel_size()).collect();
        ensure!(
            kernel_sizes.windows(2).all(|w| w[0] == w[1]),
            "degradation kernels of different sizes {kernel_sizes:?}"
        );
        Ok(ExplicitDegradation { cameras })
    }
}

impl CameraDegradation {
    /// Fits one camera from its `real` LR patches, in `groups` of `[N, 3, p, p]` in [0, 1]
    /// (one kernel and noise bank per group: per file for a `per_file` source, else a single
    /// group), against the `synthetic` LR patches (unpaired; `p` at least the kernel and the
    /// noise tile). The `noise_tiles` are shared among the groups.
    pub fn fit(
        source: usize,
        groups: &[PatchGroup],
        synthetic: &Tensor,
        config: &DegradationConfig,
    ) -> Result<(CameraDegradation, FitSummary)> {
        config.validate()?;
        ensure!(!groups.is_empty(), "no real LR patches to fit on");
        let p = groups[0].patches.size()[3];
        ensure!(
            p >= config.kernel,
            "LR patches of {p} px are smaller than the {}-px degradation kernel",
            config.kernel
        );
        let synthetic = synthetic.to_kind(Kind::Float);
        let synthetic_power = mean_power_spectrum(&rgb_to_y(&synthetic).to_kind(Kind::Float));
        let files = groups.len() as i64;
        let keep = (config.noise_tiles + files - 1) / files;
        let (mut kernels, mut banks, mut fits) = (Vec::new(), Vec::new(), Vec::new());
        let mut candidate_tiles = 0;
        for group in groups {
            let real = group.patches.to_kind(Kind::Float);
            let (noise, candidates) = noise_bank(&real, keep, config)
                .with_context(|| format!("{} ({} patches)", group.name, real.size()[0]))?;
            candidate_tiles += candidates;
            // Spectra on Y; the noise's spectrum is that of the mosaics it is injected as.
            let target = log_power(&mean_power_spectrum(&rgb_to_y(&real).to_kind(Kind::Float)));
            let noise_patches = mosaic(&noise, real.size()[0], p, &mut seeded(0))?;
            let noise_power = mean_power_spectrum(&rgb_to_y(&noise_patches).to_kind(Kind::Float));
            let (kernel, fit) = fit_kernel(&target, &noise_power, &synthetic_power, config)?;
            kernels.push(kernel);
            banks.push(noise);
            fits.push(fit);
        }
        // Banks stack at the smallest one's size, each keeping its flattest tiles.
        let tiles = banks.iter().map(|b| b.size()[0]).min().unwrap_or(0);
        let banks: Vec<Tensor> = banks.iter().map(|b| b.narrow(0, 0, tiles)).collect();
        let noise = Tensor::stack(&banks, 0);
        let noise_sigma = f64::try_from(rgb_to_y(&noise.flatten(0, 1)).std(true))? * 255.0;
        Ok((
            CameraDegradation {
                source,
                kernels: Tensor::stack(&kernels, 0),
                noise,
                jpeg_quality: None,
            },
            FitSummary {
                candidate_tiles,
                noise_sigma,
                kernels: fits,
            },
        ))
    }

    /// Side of the kernels.
    pub fn kernel_size(&self) -> i64 {
        self.kernels.size()[1]
    }

    /// Each kernel's [`kernel_spread`].
    pub fn kernel_spreads(&self) -> Vec<(f64, f64, f64)> {
        (0..self.kernels.size()[0])
            .map(|i| kernel_spread(&self.kernels.get(i)))
            .collect()
    }

    /// The blur in words: the kernel's spread, or the range of the pool's.
    pub fn describe_blur(&self) -> String {
        let k = self.kernel_size();
        let spreads = self.kernel_spreads();
        if let [(major, minor, angle)] = spreads[..] {
            return format!("{k}x{k} kernel with σ {major:.2} x {minor:.2} LR px at {angle:.0}°");
        }
        let mut majors: Vec<f64> = spreads.iter().map(|s| s.0).collect();
        let mut minors: Vec<f64> = spreads.iter().map(|s| s.1).collect();
        majors.sort_by(f64::total_cmp);
        minors.sort_by(f64::total_cmp);
        let median = |v: &[f64]| v[v.len() / 2];
        format!(
            "{n} {k}x{k} kernels (one per file), σ {:.2} x {:.2} LR px at the median, major σ from {:.2} to {:.2}",
            median(&majors),
            median(&minors),
            majors[0],
            majors[majors.len() - 1],
            n = spreads.len(),
        )
    }

    /// Residual σ of the noise banks on Y, in code values.
    pub fn noise_sigma(&self) -> f64 {
        f64::try_from(rgb_to_y(&self.noise.flatten(0, 1)).std(true)).unwrap_or(f64::NAN) * 255.0
    }

    /// Each file's noise bank's residual σ on Y, in code values.
    pub fn noise_sigmas(&self) -> Vec<f64> {
        (0..self.noise.size()[0])
            .map(|i| {
                f64::try_from(rgb_to_y(&self.noise.get(i)).std(true)).unwrap_or(f64::NAN) * 255.0
            })
            .collect()
    }

    /// The noise in words: the bank's σ, or the range of the pool's.
    pub fn describe_noise(&self) -> String {
        let tiles = self.noise.size()[1];
        let mut sigmas = self.noise_sigmas();
        if let [sigma] = sigmas[..] {
            return format!("noise bank of {tiles} tiles with σ {sigma:.2} (Y, code values)");
        }
        sigmas.sort_by(f64::total_cmp);
        format!(
            "{} noise banks of {tiles} tiles, σ from {:.2} to {:.2} (Y, code values), {:.2} overall",
            sigmas.len(),
            sigmas[0],
            sigmas[sigmas.len() - 1],
            self.noise_sigma()
        )
    }
}

/// Fits a kernel so that the mean power spectrum of g·|K|²·`synthetic_power` + `noise_power`
/// matches `target` (log power, Y), with the content gain g measured on the low band.
fn fit_kernel(
    target: &Tensor,
    noise_power: &Tensor,
    synthetic_power: &Tensor,
    config: &DegradationConfig,
) -> Result<(Tensor, KernelFit)> {
    let device = target.device();
    let p = target.size()[1];
    // Blur multiplies the spectrum by |K(f)|² (up to the window's smoothing of the
    // spectrum), so each step costs one FFT of the kernel, not a pass over the patches.
    let error = |kernel: &Tensor, log_gain: &Tensor| {
        let blurred = transfer_power(kernel, p) * synthetic_power * log_gain.exp();
        let simulated = log_power(&(blurred + noise_power));
        // The DC bin is each patch's removed mean: no information.
        (simulated - target)
            .square()
            .view(-1)
            .narrow(0, 1, p * p - 1)
            .mean(Kind::Float)
    };

    let vs = nn::VarStore::new(device);
    let k = config.kernel;
    let free = vs.root().var_copy("free", &near_identity(k, device));
    // The content gain from the low band, where blurs of up to about 1 LR px keep most
    // of the power: fitted together with the kernel, it trades against blur.
    let radius = radial_frequency(p, synthetic_power);
    let low = radius.gt(0.0).logical_and(&radius.le(LOW_BAND_END));
    let clean_real_low = (target.exp() - noise_power)
        .masked_select(&low)
        .sum(Kind::Float);
    let synthetic_low = synthetic_power.masked_select(&low).sum(Kind::Float);
    let log_gain = (clean_real_low.clamp_min(1e-12) / synthetic_low.clamp_min(1e-12)).log();
    let mut opt = nn::Adam::default()
        .build(&vs, 0.05)
        .context("kernel optimiser")?;
    let none = Tensor::zeros([], (Kind::Float, device));
    let identity = Tensor::zeros([k, k], (Kind::Float, device));
    let _ = identity.get(k / 2).get(k / 2).fill_(1.0);
    let identity_error = f64::try_from(tch::no_grad(|| error(&identity, &none)))?;
    for _ in 0..config.fit_steps {
        opt.backward_step(&error(&symmetric_kernel(&free), &log_gain));
    }
    let kernel = tch::no_grad(|| symmetric_kernel(&free)).detach();
    let fitted_error = f64::try_from(tch::no_grad(|| error(&kernel, &log_gain)))?;
    Ok((
        kernel,
        KernelFit {
            log_spectrum_error_identity: identity_error,
            log_spectrum_error_fitted: fitted_error,
            content_gain: f64::try_from(log_gain.exp())?,
        },
    ))
}

/// A `[k, k]` kernel's spread in LR pixels: the standard deviations along its principal axes
/// (major, minor) and the major axis's angle in degrees counter-clockwise from x, from its
/// second moments.
pub fn kernel_spread(kernel: &Tensor) -> (f64, f64, f64) {
    let k = kernel.size()[0];
    let c = (k / 2) as f64;
    let values = Vec::<f32>::try_from(kernel.to_device(Device::Cpu).view(-1)).unwrap_or_default();
    let (mut xx, mut yy, mut xy) = (0.0, 0.0, 0.0);
    for (i, &w) in values.iter().enumerate() {
        let (row, col) = ((i as i64 / k) as f64, (i as i64 % k) as f64);
        // Rows grow downwards: y points up.
        let (x, y) = (col - c, c - row);
        let w = f64::from(w);
        xx += w * x * x;
        yy += w * y * y;
        xy += w * x * y;
    }
    let mean = (xx + yy) / 2.0;
    let spread = (((xx - yy) / 2.0).powi(2) + xy * xy).sqrt();
    let angle = 0.5 * (2.0 * xy).atan2(xx - yy);
    let sd = |v: f64| v.max(0.0).sqrt();
    (sd(mean + spread), sd(mean - spread), angle.to_degrees())
}

fn seeded(seed: u64) -> StdRng {
    use rand::SeedableRng;
    StdRng::seed_from_u64(seed)
}

fn log_power(spectrum: &Tensor) -> Tensor {
    (spectrum + 1e-10).log()
}

/// The softmax of the point-symmetric part of `free`: a non-negative blur kernel (cameras
/// and codecs remove detail; a fitted kernel that could sharpen would invent it where the
/// two domains' content differs) that sums to 1 and has a real (zero-phase) transfer function.
pub fn symmetric_kernel(free: &Tensor) -> Tensor {
    let k = free.size()[0];
    let symmetric = (free + free.flip([0, 1])) * 0.5;
    symmetric.view(-1).softmax(0, Kind::Float).view([k, k])
}

/// Logits of [`symmetric_kernel`] for a kernel close to the identity (93% of its weight at the
/// centre, σ about 0.2 px): where the fit starts.
pub fn near_identity(k: i64, device: Device) -> Tensor {
    let c = Tensor::arange(k, (Kind::Float, device)) - (k / 2) as f64;
    let r2 = c.unsqueeze(0).square() + c.unsqueeze(1).square();
    r2 * -4.0
}

/// |K(f)|² of a `[k, k]` kernel on the `[p, p]` FFT grid of [`mean_power_spectrum`]: the
/// kernel zero-padded with its centre at the origin.
fn transfer_power(kernel: &Tensor, p: i64) -> Tensor {
    let k = kernel.size()[0];
    let padded = kernel.pad([0, p - k, 0, p - k], "constant", Some(0.0));
    let centred = padded.roll([-(k / 2), -(k / 2)], [0, 1]);
    centred
        .fft_fft2(None::<&[i64]>, [-2i64, -1], "backward")
        .abs()
        .square()
}

/// `count` noise images `[count, 3, side', side']` (side' ≥ `side`, a multiple of the tile) made
/// of bank tiles drawn from `rng`.
fn mosaic(bank: &Tensor, count: i64, side: i64, rng: &mut StdRng) -> Result<Tensor> {
    let (tiles, t) = (bank.size()[0], bank.size()[2]);
    let n = (side + t - 1) / t;
    let picks: Vec<i64> = (0..count * n * n)
        .map(|_| rng.random_range(0..tiles))
        .collect();
    let index = Tensor::from_slice(&picks).to_device(bank.device());
    Ok(bank
        .index_select(0, &index)
        .view([count, n, n, 3, t, t])
        .permute([0, 3, 1, 4, 2, 5])
        .reshape([count, 3, n * t, n * t]))
}

/// The noise bank `[T, 3, t, t]`: every `t × t` tile of the real patches whose mean Y is away
/// from black and white, minus its least-squares plane per channel, and of those the `keep`
/// flattest (least residual variance: flat regions show noise alone), flattest first. Also
/// returns the number of candidate tiles.
fn noise_bank(real: &Tensor, keep: i64, config: &DegradationConfig) -> Result<(Tensor, i64)> {
    let t = config.noise_tile;
    let (n, c, h, w) = real.size4()?;
    ensure!(c == 3, "real LR patches have {c} channels, expected 3");
    let (rows, cols) = (h / t, w / t);
    ensure!(
        rows > 0 && cols > 0,
        "real LR patches of {w}x{h} hold no {t}x{t} noise tile"
    );
    let tiles = real
        .narrow(2, 0, rows * t)
        .narrow(3, 0, cols * t)
        .view([n, 3, rows, t, cols, t])
        .permute([0, 2, 4, 1, 3, 5])
        .reshape([n * rows * cols, 3, t, t]);
    let mean_y = rgb_to_y(&tiles).mean_dim(&[1i64, 2, 3][..], false, Kind::Float);
    let usable = mean_y
        .ge(TILE_MEAN_RANGE.0)
        .logical_and(&mean_y.le(TILE_MEAN_RANGE.1))
        .nonzero()
        .view(-1);
    let candidates = usable.size()[0];
    ensure!(
        candidates > 0,
        "no real LR tile has a mean brightness in [{}, {}]: the footage is too dark or too bright to measure its noise",
        TILE_MEAN_RANGE.0,
        TILE_MEAN_RANGE.1
    );
    let tiles = tiles.index_select(0, &usable);
    let residual = minus_plane(&tiles);
    let variance = residual
        .square()
        .mean_dim(&[1i64, 2, 3][..], false, Kind::Float);
    let (_, flattest) = variance.topk(keep.min(candidates), 0, false, true);
    Ok((residual.index_select(0, &flattest), candidates))
}

/// `[T, C, t, t]` tiles minus the least-squares plane a + b·x + c·y of each channel.
fn minus_plane(tiles: &Tensor) -> Tensor {
    let (count, c, t, _) = tiles.size4().expect("4-d tiles");
    let options = (Kind::Float, tiles.device());
    let coord = Tensor::arange(t, options) - (t - 1) as f64 / 2.0;
    let xs = coord.unsqueeze(0).expand([t, t], false).reshape([-1]);
    let ys = coord.unsqueeze(1).expand([t, t], false).reshape([-1]);
    let design = Tensor::stack(&[Tensor::ones([t * t], options), xs, ys], 1); // [t², 3]
                                                                              // The columns are orthogonal on a centred grid, so the projection is per column.
    let norms = design.square().sum_dim_intlist(0, false, Kind::Float);
    let projection = (&design / &norms).matmul(&design.transpose(0, 1)); // [t², t²]
    let flat = tiles.reshape([count * c, t * t]);
    (&flat - flat.matmul(&projection)).view([count, c, t, t])
}
