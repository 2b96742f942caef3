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
//! With `kernel_grid = "hr"` the kernel blurs the HR before its bicubic downscale instead:
//! G_s2r(HR) = ↓(k ∗ HR) + n, as a camera's optics and motion blur a scene before its sensor
//! samples it (KernelGAN's and RealSR's model). Its spectral fit folds the HR's spectrum,
//! weighted by the downscale's filter, onto the LR's frequencies ([`LrTransfer`]).
//!
//! Both are plain tensors, saved in the training state and printed by `train eval
//! --translator`.
//!
//! Compression is drawn, not fitted: with `jpeg_quality = [lo, hi]`, G_s2r's output for a
//! camera whose footage is compressed (every source not marked `lossless`) is JPEG-compressed at
//! a quality drawn uniformly from that range, as Real-ESRGAN does. Its level is not
//! identifiable from unpaired spectra: the two domains' content moves them more than a codec
//! does, and a fitted quality picked 95 everywhere (docs/RESULTS.md). Footage that is JPEG
//! tells its qualities another way, by the lattice its coefficients lie on
//! ([`crate::archs::jpeg_quality`]); with `jpeg_qualities = "footage"` G_s2r draws from those.
//! A source marked `codec = "h264"` is H.264 intra-coded by x264 instead, at a quantizer
//! drawn from `h264_quantizer`: its 4- and 16-px blocks and deblocking filter leave other
//! traces than JPEG's 8-px blocks, which a discriminator tells apart.
//!
//! The bank's tiles are the flattest of all, so they come from the footage's quietest images
//! and its quietest draws: too little noise, for which the kernel fit makes up with too little
//! blur. With `noise_level = "chroma"` (the default), each image's noise is scaled to a level
//! drawn from the real patches' own levels, measured where texture does not reach:
//! on the differences between colour channels' high-pass ([`chroma_noise_sigma`]). A scene's
//! texture is nearly the same in R, G and B; a sensor's noise is drawn per channel. Only
//! colour cameras whose footage is stored losslessly get it, since a codec's chroma subsampling
//! removes the chroma noise this measures. With `noise_brightness = "footage"`, lossless
//! footage's noise also follows brightness as its own does ([`noise_by_brightness`]).
//!
//! With `adversarial_steps`, the spectral fit is where an adversarial one starts: the kernel
//! and one gain on the noise are then trained against a discriminator that compares G_s2r's
//! output with the footage patch by patch ([`crate::archs::adversarial_fit`]).

use anyhow::{bail, ensure, Context, Result};
use rand::rngs::StdRng;
use rand::Rng;
use serde::{Deserialize, Serialize};
use tch::nn::{self, OptimizerConfig};
use tch::{Device, Kind, Tensor};

use crate::archs::adversarial_fit::{self, AdversarialSummary};
use crate::archs::jpeg_quality::FootageJpeg;
use crate::data::{downscale_taps, imresize, FootageCodec, Rgb8};
use crate::degrade::{h264_roundtrip, jpeg_roundtrip};
use crate::edges::{edges, extra_blur, Edge, ExtraBlur};
use crate::metrics::{immerkaer_operator, principal_axes, rgb_to_y};
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
    /// How loud G_s2r's noise is: the bank's own level, or each image at a level drawn from
    /// the footage's ([`NoiseLevel`]).
    #[serde(default)]
    pub noise_level: NoiseLevel,
    /// Whether G_s2r's noise follows the brightness of the image it is added to
    /// ([`NoiseBrightness`]).
    #[serde(default)]
    pub noise_brightness: NoiseBrightness,
    /// How the two domains' content difference is measured on the low band ([`ContentGain`]).
    #[serde(default)]
    pub content_gain: ContentGain,
    /// Where a compressed source's JPEG qualities come from ([`JpegQualities`]).
    #[serde(default)]
    pub jpeg_qualities: JpegQualities,
    /// x264 constant-quantizer range `[lo, hi]` (0–50) of the H.264 intra coding G_s2r
    /// applies for sources marked `codec = "h264"`, one drawn per image.
    #[serde(default = "default_h264_quantizer")]
    pub h264_quantizer: [u8; 2],
    /// Steps of the adversarial refinement of the kernel and the noise level after the
    /// spectral fit ([`crate::archs::adversarial_fit`]); 0: the spectral fit alone.
    #[serde(default = "default_adversarial_steps")]
    pub adversarial_steps: i64,
    /// Which image the kernel blurs ([`KernelGrid`]).
    #[serde(default)]
    pub kernel_grid: KernelGrid,
    /// Where the kernel's direction comes from ([`KernelDirection`]).
    #[serde(default)]
    pub kernel_direction: KernelDirection,
}

fn default_adversarial_steps() -> i64 {
    DegradationConfig::default().adversarial_steps
}

fn default_h264_quantizer() -> [u8; 2] {
    DegradationConfig::default().h264_quantizer
}

/// `networks.degradation.kernel_grid`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KernelGrid {
    /// The synthetic LR (bicubic↓HR), with a `kernel`-px kernel.
    #[default]
    Lr,
    /// The HR, before the bicubic downscale, with a kernel of the same extent on the HR grid
    /// (`scale · (kernel − 1) + 1` px): a camera's optics and motion blur the scene before its
    /// sensor samples it, as KernelGAN and RealSR model it. The aliasing of the downscale then
    /// comes after the blur, as in footage; an LR-grid kernel cannot remove the aliasing the
    /// bicubic downscale already let through.
    Hr,
}

/// `networks.degradation.kernel_direction`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KernelDirection {
    /// The spectral fit's alone.
    #[default]
    Spectrum,
    /// The footage's step edges' ([`crate::edges`]): the kernel is held to the anisotropy
    /// (how stretched, and along which direction) of the real LR's extra blur over the
    /// synthetic LR as their edges read it, and the spectrum sets its size. Scenes with more
    /// structure one way than the photos turn a kernel fitted to the spectrum alone; the
    /// sharpest edges of any scene are steps, whatever their direction.
    Edges,
}

/// `networks.degradation.jpeg_qualities`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JpegQualities {
    /// Drawn from `jpeg_quality`'s range.
    #[default]
    Range,
    /// Drawn from the qualities read from the source's own frames
    /// ([`crate::archs::jpeg_quality`]), where at least half of those looked at show a JPEG
    /// lattice; from the range otherwise (other codecs, scaled footage).
    Footage,
}

/// `networks.degradation.content_gain`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContentGain {
    /// One gain for every frequency.
    Scalar,
    /// That gain times one that varies with orientation as a + b·cos 2θ + c·sin 2θ in log
    /// scale, fitted on the low band's bins: scenes of one set may hold more horizontal edges
    /// than the other's, which a kernel would otherwise take for a direction of blur.
    #[default]
    Orientation,
}

/// `networks.degradation.noise_brightness`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NoiseBrightness {
    /// The same level at every brightness.
    #[default]
    Uniform,
    /// A level that varies with brightness as the footage's does: a sensor's shot noise grows
    /// with the light it counts, and a tone curve reshapes that. The footage's level at each
    /// brightness is measured on its flattest tiles of that brightness
    /// ([`noise_by_brightness`]); each noise pixel is scaled to the level at the brightness of
    /// the pixel it lands on.
    Footage,
}

/// `networks.degradation.noise_level`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NoiseLevel {
    /// The bank's tiles as they were cut.
    Bank,
    /// For sources marked `lossless`: each image's mosaic scaled to a level
    /// drawn from the real patches' [`chroma_noise_sigma`], over the bank's. Greyscale
    /// footage and sources not marked `lossless` keep the bank's level.
    #[default]
    Chroma,
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
            noise_level: NoiseLevel::Chroma,
            noise_brightness: NoiseBrightness::Uniform,
            content_gain: ContentGain::Orientation,
            jpeg_qualities: JpegQualities::Range,
            // From visually clean to heavily blocky: a camera's quantizer is not known.
            h264_quantizer: [20, 40],
            adversarial_steps: 0,
            kernel_grid: KernelGrid::Lr,
            kernel_direction: KernelDirection::Spectrum,
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
            self.fit_patches >= 1 && self.fit_steps >= 0 && self.adversarial_steps >= 0,
            "networks.degradation.fit_patches {} must be positive, fit_steps {} and adversarial_steps {} not negative",
            self.fit_patches,
            self.fit_steps,
            self.adversarial_steps
        );
        if let Some([lo, hi]) = self.jpeg_quality {
            ensure!(
                1 <= lo && lo <= hi && hi <= 100,
                "networks.degradation.jpeg_quality [{lo}, {hi}] must be a range within 1..=100"
            );
        }
        let [lo, hi] = self.h264_quantizer;
        ensure!(
            lo <= hi && hi <= 50,
            "networks.degradation.h264_quantizer [{lo}, {hi}] must be a range within 0..=50"
        );
        Ok(())
    }

    /// Side of the kernel on its grid: `kernel` LR px, or the same extent in HR px at `scale`.
    pub fn kernel_side(&self, scale: i64) -> i64 {
        match self.kernel_grid {
            KernelGrid::Lr => self.kernel,
            KernelGrid::Hr => scale * (self.kernel - 1) + 1,
        }
    }

    /// The `scale` of an HR-grid kernel ([`ExplicitDegradation::hr_grid`]); None on the LR grid.
    pub fn hr_grid(&self, scale: i64) -> Option<i64> {
        (self.kernel_grid == KernelGrid::Hr).then_some(scale)
    }

    /// How G_s2r compresses a source stored as `lossless` with `codec`: none for lossless
    /// footage, H.264 for H.264 footage, JPEG otherwise where `jpeg_quality` is set.
    pub fn compression(&self, lossless: bool, codec: FootageCodec) -> Option<Compression> {
        match (lossless, codec) {
            (true, _) => None,
            (false, FootageCodec::H264) => Some(Compression::H264(self.h264_quantizer)),
            (false, FootageCodec::Jpeg) => self.jpeg_quality.map(Compression::Jpeg),
        }
    }
}

/// The codec G_s2r's output goes through, with the range its level is drawn from per image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// JPEG at a quality in `[lo, hi]` (or at one read from the footage).
    Jpeg([u8; 2]),
    /// H.264 intra at an x264 constant quantizer in `[lo, hi]`.
    H264([u8; 2]),
}

/// How one source's footage is stored, which decides what its fit can measure and how its
/// G_s2r compresses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SourceStorage {
    /// Marked `lossless` in `data.real_lr`: its chroma noise is intact.
    pub lossless: bool,
    /// How G_s2r's output is compressed; none: not at all.
    pub compression: Option<Compression>,
}

/// One camera's fitted degradation: `kernel` `[k, k]` (sums to 1, point-symmetric) and
/// `noise` `[T, 3, t, t]` (zero-mean tiles), and the codec its output goes through, if its
/// footage is compressed.
pub struct CameraDegradation {
    /// Index of its source in `data.real_lr`.
    pub source: usize,
    pub kernel: Tensor,
    pub noise: Tensor,
    /// `[N]`: the real patches' noise levels over the bank's ([`NoiseLevel::Chroma`]); each
    /// image's mosaic is multiplied by one drawn. None: the bank's level.
    pub noise_scales: Option<Tensor>,
    /// `[B]`: the noise level relative to the bank's at B brightnesses (luma) evenly spaced
    /// over [`TILE_MEAN_RANGE`], constant beyond ([`NoiseBrightness::Footage`]); each noise
    /// pixel is multiplied by it, read at the brightness of the pixel it lands on. None: the
    /// same level everywhere.
    pub noise_by_brightness: Option<Tensor>,
    pub compression: Option<Compression>,
    /// `[N]` qualities read from the footage ([`JpegQualities::Footage`]); one is drawn per
    /// image in place of the range. None: the range.
    pub jpeg_qualities: Option<Tensor>,
}

/// The explicit G_s2r: one degradation per real LR source (each camera has its own optics,
/// noise and compression); each synthetic patch is degraded by a camera drawn uniformly.
#[derive(Default)]
pub struct ExplicitDegradation {
    pub cameras: Vec<CameraDegradation>,
    /// Some(scale): the kernels blur the HR, which is then bicubic-downscaled by `scale`
    /// ([`KernelGrid::Hr`]); None: they blur the synthetic LR.
    pub hr_grid: Option<i64>,
}

/// Only tiles whose mean Y ([`rgb_to_y`], studio range: 16/255 is black) lies here are noise
/// candidates: near black or white (luma under 0.1 or over 0.9), clipping removes part of the
/// noise.
pub const TILE_MEAN_RANGE: (f64, f64) = (0.149, 0.835);

/// Upper edge of the band the content gain is measured on, in cycles per pixel.
const LOW_BAND_END: f64 = 0.1;

/// Low-band frequency bins [`ContentGain::Orientation`] needs: the four on the axes and the
/// four on the diagonals nearest the origin, which fit patches of at least 15 px hold.
const ORIENTATION_BINS: i64 = 8;

/// Seeds the adversarial refinement's draws and discriminator (with the camera's source).
const ADVERSARIAL_SEED: u64 = 0xAD5E;

/// What the fit of one camera ([`CameraDegradation::fit`]) reached, for logs.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct FitSummary {
    /// Candidate noise tiles and the residual σ (Y, code values) of the kept ones.
    pub candidate_tiles: i64,
    pub noise_sigma: f64,
    /// With [`NoiseLevel::Chroma`]: the 10th, 50th and 90th percentiles of the real patches'
    /// noise levels over the bank's.
    pub noise_scale_percentiles: Option<[f64; 3]>,
    /// Mean squared log-spectrum error before (identity kernel) and after the fit.
    pub log_spectrum_error_identity: f64,
    pub log_spectrum_error_fitted: f64,
    /// How much more texture the real patches' content has than the synthetic ones': the
    /// gain on the synthetic spectrum, measured on the low band.
    pub content_gain: f64,
    /// With [`ContentGain::Orientation`]: the ratio of its largest to its smallest gain over
    /// orientations. None where the fit patches were too small to measure it.
    pub content_anisotropy: Option<f64>,
    /// What the adversarial refinement reached; None without one.
    pub adversarial: Option<AdversarialSummary>,
    /// With [`KernelDirection::Edges`]: the real patches' extra blur over the synthetic ones,
    /// read from their step edges in LR px, whose anisotropy the kernel was held to.
    pub edge_blur: Option<ExtraBlur>,
}

impl ExplicitDegradation {
    /// Fits one camera per `(source, real patches)` against the same `input` patches (what
    /// G_s2r degrades: [`ExplicitDegradation::input`]); `storage` tells how each source is
    /// stored.
    pub fn fit(
        real: &[(usize, Tensor)],
        input: &Tensor,
        config: &DegradationConfig,
        storage: &dyn Fn(usize) -> SourceStorage,
    ) -> Result<(ExplicitDegradation, Vec<FitSummary>)> {
        let Some((_, first)) = real.first() else {
            bail!("no real LR source to fit stage 1 on");
        };
        let hr_grid = hr_grid_of(config, first, input)?;
        let mut cameras = Vec::new();
        let mut summaries = Vec::new();
        for (source, patches) in real {
            let (camera, summary) =
                CameraDegradation::fit(*source, patches, input, config, storage(*source))
                    .with_context(|| format!("data.real_lr source {source}"))?;
            cameras.push(camera);
            summaries.push(summary);
        }
        Ok((ExplicitDegradation { cameras, hr_grid }, summaries))
    }

    /// What G_s2r degrades: the synthetic LR, or with an HR-grid kernel the HR it was
    /// downscaled from.
    pub fn input<'a>(&self, hr: &'a Tensor, synthetic: &'a Tensor) -> &'a Tensor {
        if self.hr_grid.is_some() {
            hr
        } else {
            synthetic
        }
    }

    /// A camera's [`CameraDegradation::kernel_spread`] in LR pixels, whichever grid its
    /// kernel is on.
    pub fn kernel_spread_lr(&self, camera: &CameraDegradation) -> (f64, f64, f64) {
        let (major, minor, angle) = camera.kernel_spread();
        let pixel = self.hr_grid.unwrap_or(1) as f64;
        (major / pixel, minor / pixel, angle)
    }

    /// With `jpeg_qualities = "footage"`, each camera that compresses draws its qualities from
    /// those read from its own footage (`read(source)`) where the footage is JPEG. Returns what
    /// was read, per camera (None where nothing was read).
    pub fn read_footage_jpeg(
        &mut self,
        config: &DegradationConfig,
        read: &dyn Fn(usize) -> Result<FootageJpeg>,
    ) -> Result<Vec<Option<FootageJpeg>>> {
        self.cameras
            .iter_mut()
            .map(|cam| {
                let compresses_to_jpeg = matches!(cam.compression, Some(Compression::Jpeg(_)));
                if config.jpeg_qualities != JpegQualities::Footage || !compresses_to_jpeg {
                    return Ok(None);
                }
                let footage = read(cam.source).with_context(|| {
                    format!("reading the JPEG qualities of source {}", cam.source)
                })?;
                if footage.is_jpeg() {
                    let qualities: Vec<i64> =
                        footage.qualities.iter().map(|&q| i64::from(q)).collect();
                    cam.jpeg_qualities = Some(Tensor::from_slice(&qualities));
                }
                Ok(Some(footage))
            })
            .collect()
    }

    /// G_s2r(x) for `[B, 3, h, w]` images x, the synthetic LR or, with an HR-grid kernel, the
    /// HR ([`ExplicitDegradation::input`]): each image blurred by a camera drawn from `rng`
    /// (then downscaled, on the HR grid), plus a mosaic of that camera's noise tiles, clamped
    /// to [0, 1], then compressed by that camera's codec, if it has one.
    pub fn forward(&self, x: &Tensor, rng: &mut StdRng) -> Result<Tensor> {
        let size = x.size();
        ensure!(size.len() == 4, "expected [B, 3, h, w], got {size:?}");
        let (b, h, w) = (size[0], size[2], size[3]);
        if let Some(scale) = self.hr_grid {
            ensure!(
                h % scale == 0 && w % scale == 0,
                "an HR-grid G_s2r at ×{scale} needs HR sides that are multiples of {scale}, got {w}x{h}"
            );
        }
        let picks: Vec<&CameraDegradation> = (0..b)
            .map(|_| &self.cameras[rng.random_range(0..self.cameras.len())])
            .collect();
        let kernels = Tensor::stack(
            &picks
                .iter()
                .map(|cam| cam.kernel.shallow_clone())
                .collect::<Vec<_>>(),
            0,
        )
        .to_device(x.device());
        let blurred = match self.hr_grid {
            None => blur_by_convolution(x, &kernels),
            Some(scale) => imresize(&blur_by_fft(x, &kernels), 1.0 / scale as f64),
        };
        let (h, w) = (blurred.size()[2], blurred.size()[3]);
        let side = h.max(w);
        let noise = picks
            .iter()
            .enumerate()
            .map(|(i, cam)| {
                let mut noise = mosaic(&cam.noise, 1, side, rng)?
                    .narrow(2, 0, h)
                    .narrow(3, 0, w)
                    .to_device(x.device());
                if let Some(scales) = &cam.noise_scales {
                    noise *= draw_scales(scales, 1, rng).to_device(x.device());
                }
                // The level follows the image's brightness; it is not a lever for the kernel.
                if let Some(levels) = &cam.noise_by_brightness {
                    let luma = rgb_to_y(&blurred.get(i as i64).detach()).to_kind(Kind::Float);
                    noise *= level_at_brightness(levels, &luma);
                }
                Ok(noise)
            })
            .collect::<Result<Vec<_>>>()?;
        let noise = Tensor::cat(&noise, 0);
        let degraded = (blurred + noise).clamp(0.0, 1.0);
        if picks.iter().all(|cam| cam.compression.is_none()) {
            return Ok(degraded);
        }
        let images = picks
            .iter()
            .enumerate()
            .map(|(i, cam)| {
                let image = degraded.get(i as i64);
                let decoded = match cam.compression {
                    None => return Ok(image),
                    Some(Compression::Jpeg([lo, hi])) => {
                        let quality = match &cam.jpeg_qualities {
                            Some(read) => u8::try_from(
                                read.int64_value(&[rng.random_range(0..read.size()[0])]),
                            )?,
                            None => rng.random_range(lo..=hi),
                        };
                        jpeg_roundtrip(&Rgb8::from_tensor(&image)?, quality)
                            .with_context(|| format!("G_s2r's JPEG at quality {quality}"))?
                    }
                    Some(Compression::H264([lo, hi])) => {
                        let quantizer = rng.random_range(lo..=hi);
                        h264_roundtrip(&Rgb8::from_tensor(&image)?, u32::from(quantizer))
                            .with_context(|| format!("G_s2r's H.264 at quantizer {quantizer}"))?
                    }
                };
                Ok(decoded.to_tensor().to_device(x.device()))
            })
            .collect::<Result<Vec<_>>>()?;
        let compressed = Tensor::stack(&images, 0);
        // Codecs have no gradient: where one is asked for (the adversarial fit), it passes the
        // gradient on as the identity.
        Ok(if degraded.requires_grad() {
            &degraded + (compressed - &degraded).detach()
        } else {
            compressed
        })
    }

    /// Tensors for a training state: `<source>.kernel`, `<source>.noise` and, where they
    /// were measured, `<source>.noise_scales`, `<source>.noise_by_brightness` and
    /// `<source>.jpeg_qualities` of each camera.
    pub fn tensors(&self) -> Vec<(String, Tensor)> {
        self.cameras
            .iter()
            .flat_map(|cam| {
                let mut tensors = vec![
                    (format!("{}.kernel", cam.source), cam.kernel.shallow_clone()),
                    (format!("{}.noise", cam.source), cam.noise.shallow_clone()),
                ];
                if let Some(scales) = &cam.noise_scales {
                    tensors.push((
                        format!("{}.noise_scales", cam.source),
                        scales.shallow_clone(),
                    ));
                }
                if let Some(levels) = &cam.noise_by_brightness {
                    tensors.push((
                        format!("{}.noise_by_brightness", cam.source),
                        levels.shallow_clone(),
                    ));
                }
                if let Some(qualities) = &cam.jpeg_qualities {
                    tensors.push((
                        format!("{}.jpeg_qualities", cam.source),
                        qualities.shallow_clone(),
                    ));
                }
                tensors
            })
            .collect()
    }

    /// From the tensors of [`ExplicitDegradation::tensors`], checked, with each source's
    /// compression from `compression` (the state's options). Its kernels are on the LR grid;
    /// a state whose options say otherwise sets [`ExplicitDegradation::hr_grid`].
    pub fn from_tensors(
        mut tensors: std::collections::HashMap<String, Tensor>,
        compression: &dyn Fn(usize) -> Option<Compression>,
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
            let (kernel, noise) = (take("kernel")?, take("noise")?);
            let noise_scales = take("noise_scales").ok();
            let noise_by_brightness = take("noise_by_brightness").ok();
            let jpeg_qualities = take("jpeg_qualities").ok().map(|q| q.to_kind(Kind::Int64));
            let (ks, ns) = (kernel.size(), noise.size());
            ensure!(
                ks.len() == 2 && ks[0] == ks[1] && ks[0] % 2 == 1,
                "degradation kernel of camera {source} has shape {ks:?}, expected an odd square"
            );
            ensure!(
                ns.len() == 4 && ns[1] == 3 && ns[2] == ns[3] && ns[0] > 0,
                "noise bank of camera {source} has shape {ns:?}, expected [T, 3, t, t]"
            );
            if let Some(scales) = &noise_scales {
                ensure_vector(scales, "noise levels", source)?;
                ensure!(
                    f64::try_from(scales.min())? >= 0.0
                        && f64::try_from(scales.isfinite().all())? == 1.0,
                    "noise levels of camera {source} hold a negative or non-finite value"
                );
            }
            if let Some(levels) = &noise_by_brightness {
                ensure_vector(levels, "noise levels by brightness", source)?;
                ensure!(
                    levels.size()[0] >= 2
                        && f64::try_from(levels.min())? > 0.0
                        && f64::try_from(levels.isfinite().all())? == 1.0,
                    "noise levels by brightness of camera {source} must be two or more positive, finite values"
                );
            }
            if let Some(qualities) = &jpeg_qualities {
                ensure_vector(qualities, "JPEG qualities", source)?;
                ensure!(
                    i64::try_from(qualities.min())? >= 1 && i64::try_from(qualities.max())? <= 100,
                    "JPEG qualities of camera {source} hold a value outside 1..=100"
                );
            }
            cameras.push(CameraDegradation {
                source,
                kernel: kernel.to_kind(Kind::Float).to_device(device),
                noise: noise.to_kind(Kind::Float).to_device(device),
                noise_scales: noise_scales.map(|s| s.to_kind(Kind::Float).to_device(device)),
                noise_by_brightness: noise_by_brightness
                    .map(|l| l.to_kind(Kind::Float).to_device(device)),
                compression: compression(source),
                jpeg_qualities,
            });
        }
        let kernel_sizes: Vec<i64> = cameras.iter().map(|c| c.kernel.size()[0]).collect();
        ensure!(
            kernel_sizes.windows(2).all(|w| w[0] == w[1]),
            "degradation kernels of different sizes {kernel_sizes:?}"
        );
        Ok(ExplicitDegradation {
            cameras,
            hr_grid: None,
        })
    }
}

impl CameraDegradation {
    /// Fits one camera from its `real` LR patches `[N, 3, p, p]` in [0, 1] (`p` at least the
    /// kernel and the noise tile) and the unpaired `input` patches G_s2r degrades: synthetic
    /// LR `[M, 3, p, p]`, or with [`KernelGrid::Hr`] the HR `[M, 3, sp, sp]` they are the
    /// bicubic↓ of. Stored as `storage` says.
    pub fn fit(
        source: usize,
        real: &Tensor,
        input: &Tensor,
        config: &DegradationConfig,
        storage: SourceStorage,
    ) -> Result<(CameraDegradation, FitSummary)> {
        config.validate()?;
        let real = real.to_kind(Kind::Float);
        let input = input.to_kind(Kind::Float);
        let hr_grid = hr_grid_of(config, &real, &input)?;
        let synthetic = match hr_grid {
            Some(scale) => imresize(&input, 1.0 / scale as f64),
            None => input.shallow_clone(),
        };
        // A codec smooths flat regions more where they are bright or dark, so only footage
        // stored losslessly shows how its noise follows brightness.
        let by_brightness = config.noise_brightness == NoiseBrightness::Footage && storage.lossless;
        let (noise, candidate_tiles, noise_by_brightness) =
            noise_bank(&real, config, by_brightness)?;
        let noise_sigma = f64::try_from(rgb_to_y(&noise).std(true))? * 255.0;
        let noise_scales = match config.noise_level {
            NoiseLevel::Chroma if storage.lossless => {
                noise_scales(&real, &noise, noise_by_brightness.as_ref())?
            }
            _ => None,
        };

        // Spectra on Y; the noise's spectrum is that of the mosaics it is injected as.
        let p = real.size()[3];
        ensure!(
            p >= config.kernel,
            "LR patches of {p} px are smaller than the {}-px degradation kernel",
            config.kernel
        );
        let k = config.kernel_side(hr_grid.unwrap_or(1));
        let target = log_power(&mean_power_spectrum(&rgb_to_y(&real).to_kind(Kind::Float)));
        let mut rng = seeded(0);
        // A mosaic is a whole number of tiles: cut to the patches' side.
        let mut noise_patches = mosaic(&noise, real.size()[0], p, &mut rng)?
            .narrow(2, 0, p)
            .narrow(3, 0, p);
        if let Some(scales) = &noise_scales {
            noise_patches *= draw_scales(scales, real.size()[0], &mut rng);
        }
        if let Some(levels) = &noise_by_brightness {
            // At the brightness of the synthetic patches it will be added to.
            let picks = Tensor::arange(real.size()[0], (Kind::Int64, real.device()))
                .remainder(synthetic.size()[0]);
            let luma = rgb_to_y(&synthetic.index_select(0, &picks)).to_kind(Kind::Float);
            noise_patches *= level_at_brightness(levels, &luma);
        }
        let noise_power = mean_power_spectrum(&rgb_to_y(&noise_patches).to_kind(Kind::Float));
        let synthetic_power = mean_power_spectrum(&rgb_to_y(&synthetic).to_kind(Kind::Float));
        // Blur multiplies the spectrum by |K(f)|² (up to the window's smoothing of the
        // spectrum), so each step costs one FFT of the kernel, not a pass over the patches.
        let transfer = match hr_grid {
            None => LrTransfer::Lr { side: p },
            Some(scale) => LrTransfer::hr(&input, scale),
        };
        let error = |kernel: &Tensor, log_gain: &Tensor| {
            let blurred = transfer.power(kernel) * &synthetic_power * log_gain.exp();
            let simulated = log_power(&(blurred + &noise_power));
            // The DC bin is each patch's removed mean: no information.
            (simulated - &target)
                .square()
                .view(-1)
                .narrow(0, 1, p * p - 1)
                .mean(Kind::Float)
        };

        let vs = nn::VarStore::new(real.device());
        // On the HR grid the start is as near the identity in LR px, not in HR px: logits as
        // steep as the LR grid's per HR px leave the fit no reach beyond about 1 HR px.
        let pixel = hr_grid.unwrap_or(1) as f64;
        let start = near_identity(k, real.device()) / (pixel * pixel);
        let free = vs.root().var_copy("free", &start);
        // The content gain from the low band, where blurs of up to about 1 LR px keep most
        // of the power: fitted together with the kernel, it trades against blur.
        let low = radial_frequency(p, &synthetic_power)
            .gt(0.0)
            .logical_and(&radial_frequency(p, &synthetic_power).le(LOW_BAND_END));
        let clean_real_low = (target.exp() - &noise_power)
            .masked_select(&low)
            .sum(Kind::Float);
        let synthetic_low = synthetic_power.masked_select(&low).sum(Kind::Float);
        let scalar_log_gain =
            (clean_real_low.clamp_min(1e-12) / synthetic_low.clamp_min(1e-12)).log();
        let low_bins = i64::try_from(low.sum(Kind::Int64))?;
        let (log_gain, content_anisotropy) = match config.content_gain {
            ContentGain::Orientation if low_bins >= ORIENTATION_BINS => {
                let per_bin = ((target.exp() - &noise_power).clamp_min(1e-12)
                    / synthetic_power.clamp_min(1e-12))
                .log();
                let (harmonics, ratio) = orientation_gain(&per_bin, &low)?;
                (&scalar_log_gain + harmonics, Some(ratio))
            }
            // Patches under 15 px hold the low band's frequencies on the axes alone, where
            // cos 2θ and sin 2θ cannot be told apart: the gain stays scalar (the summary says so).
            ContentGain::Orientation | ContentGain::Scalar => {
                (scalar_log_gain.shallow_clone(), None)
            }
        };
        let mut opt = nn::Adam::default()
            .build(&vs, 0.05)
            .context("kernel optimiser")?;
        let none = Tensor::zeros([], (Kind::Float, real.device()));
        let identity = Tensor::zeros([k, k], (Kind::Float, real.device()));
        let _ = identity.get(k / 2).get(k / 2).fill_(1.0);
        let identity_error = f64::try_from(tch::no_grad(|| error(&identity, &none)))?;
        let edge_blur = match config.kernel_direction {
            KernelDirection::Spectrum => None,
            KernelDirection::Edges => Some(edge_blur_of_patches(&real, &synthetic)?),
        };
        let held = edge_blur.map(|blur| ShapeHold::new(blur, k, real.device()));
        for _ in 0..config.fit_steps {
            let kernel = symmetric_kernel(&free);
            let mut loss = error(&kernel, &log_gain);
            if let Some(held) = &held {
                loss += held.penalty(&kernel);
            }
            opt.backward_step(&loss);
        }
        let kernel = tch::no_grad(|| symmetric_kernel(&free)).detach();
        let fitted_error = f64::try_from(tch::no_grad(|| error(&kernel, &log_gain)))?;
        let noise_scale_percentiles = match &noise_scales {
            Some(scales) => Some(percentiles(scales, [0.1, 0.5, 0.9])?),
            None => None,
        };
        let camera = CameraDegradation {
            source,
            kernel,
            noise,
            noise_scales,
            noise_by_brightness,
            compression: storage.compression,
            jpeg_qualities: None,
        };
        let (camera, adversarial) = if config.adversarial_steps > 0 {
            let (camera, summary) = adversarial_fit::refine(
                camera,
                &free.detach(),
                &real,
                &input,
                hr_grid,
                config.adversarial_steps,
                ADVERSARIAL_SEED ^ source as u64,
            )?;
            (camera, Some(summary))
        } else {
            (camera, None)
        };
        Ok((
            camera,
            FitSummary {
                candidate_tiles,
                noise_sigma,
                noise_scale_percentiles,
                log_spectrum_error_identity: identity_error,
                log_spectrum_error_fitted: fitted_error,
                content_gain: f64::try_from(scalar_log_gain.exp())?,
                content_anisotropy,
                adversarial,
                edge_blur,
            },
        ))
    }

    /// The kernel's spread in the pixels of its grid: the standard deviations along its
    /// principal axes (major, minor) and the major axis's angle in degrees counter-clockwise
    /// from x, from its second moments.
    pub fn kernel_spread(&self) -> (f64, f64, f64) {
        let k = self.kernel.size()[0];
        let c = (k / 2) as f64;
        let values =
            Vec::<f32>::try_from(self.kernel.to_device(Device::Cpu).view(-1)).unwrap_or_default();
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
        let (major, minor, angle) = principal_axes(xx, yy, xy);
        let sd = |v: f64| v.max(0.0).sqrt();
        (sd(major), sd(minor), angle)
    }

    /// Residual σ of the noise bank on Y, in code values.
    pub fn noise_sigma(&self) -> f64 {
        f64::try_from(rgb_to_y(&self.noise).std(true)).unwrap_or(f64::NAN) * 255.0
    }

    /// With measured levels: the 10th, 50th and 90th percentiles of the noise σ G_s2r draws
    /// (Y, code values), the bank's [`CameraDegradation::noise_sigma`] times its scales.
    pub fn noise_sigma_percentiles(&self) -> Option<[f64; 3]> {
        let scales = self.noise_scales.as_ref()?;
        let bank = self.noise_sigma();
        percentiles(scales, [0.1, 0.5, 0.9])
            .ok()
            .map(|p| p.map(|scale| scale * bank))
    }

    /// The compression in words: none, the range, or the qualities read from the footage.
    pub fn describe_compression(&self) -> String {
        match (self.compression, &self.jpeg_qualities) {
            (None, _) => "no compression".to_string(),
            (Some(Compression::H264([lo, hi])), _) => {
                format!("H.264 intra at a quantizer drawn from {lo}–{hi}")
            }
            (Some(Compression::Jpeg(_)), Some(read)) => {
                let values = Vec::<i64>::try_from(read.to_device(Device::Cpu)).unwrap_or_default();
                let (lo, hi) = (values.iter().min(), values.iter().max());
                match (lo, hi) {
                    (Some(lo), Some(hi)) => format!(
                        "JPEG at the qualities read from {} of its images ({lo}–{hi})",
                        values.len()
                    ),
                    _ => "JPEG at the qualities read from its images".to_string(),
                }
            }
            (Some(Compression::Jpeg([lo, hi])), None) => {
                format!("JPEG at a quality drawn from {lo}–{hi}")
            }
        }
    }

    /// The noise in words: the bank, and the levels it is scaled to if any.
    pub fn describe_noise(&self) -> String {
        let bank = format!(
            "noise bank of {} tiles with σ {:.2} (Y, code values)",
            self.noise.size()[0],
            self.noise_sigma()
        );
        let bank = match self.noise_sigma_percentiles() {
            Some([lo, mid, hi]) => format!(
                "{bank} scaled per image to the footage's levels (σ {lo:.2}, {mid:.2}, {hi:.2} at its 10th, 50th and 90th percentiles)"
            ),
            None => bank,
        };
        match self.brightness_levels() {
            Some(levels) => {
                let levels: Vec<String> = levels.iter().map(|l| format!("{l:.2}")).collect();
                format!(
                    "{bank}, and per pixel by brightness (×{} from luma {:.2} to {:.2})",
                    levels.join(", "),
                    TILE_MEAN_RANGE.0,
                    TILE_MEAN_RANGE.1
                )
            }
            None => bank,
        }
    }

    /// The noise's level relative to the bank's at evenly spaced brightnesses, if it varies.
    pub fn brightness_levels(&self) -> Option<Vec<f64>> {
        let levels = self.noise_by_brightness.as_ref()?;
        let levels = Vec::<f32>::try_from(levels.to_device(Device::Cpu)).ok()?;
        Some(levels.into_iter().map(f64::from).collect())
    }
}

/// Checks that a camera's `what` in a state is a non-empty `[N]` vector.
fn ensure_vector(values: &Tensor, what: &str, source: usize) -> Result<()> {
    let size = values.size();
    ensure!(
        size.len() == 1 && size[0] > 0,
        "{what} of camera {source} have shape {size:?}, expected [N]"
    );
    Ok(())
}

/// A bank whose chroma noise σ is under this (code values) is greyscale: 8-bit rounding alone
/// gives colour footage about 0.3.
const GREY_CHROMA_LEVEL: f64 = 0.05;

/// Median of a χ² variable of one degree of freedom (the square of a unit Gaussian).
const CHI2_1_MEDIAN: f64 = 0.454_936;

/// Per-channel noise σ (code values, 0–255) of each of `[N, 3, h, w]` images in [0, 1],
/// `[N]`, measured where a scene's texture does not reach: Immerkær's operator
/// ([`immerkaer_operator`]) on R minus that on G, and on B minus G. Texture and edges are
/// nearly the same in the three channels and cancel; noise drawn per channel does not (the
/// difference of two channels of σ has 72σ² of variance through this operator). The median of
/// the squared differences keeps the few coloured edges out. Meaningless after a codec's chroma
/// subsampling, which removes chroma noise.
pub fn chroma_noise_sigma(images: &Tensor) -> Result<Tensor> {
    let (n, c, h, w) = images.size4()?;
    ensure!(c == 3, "chroma noise needs RGB images, got {c} channels");
    ensure!(
        h >= 3 && w >= 3,
        "a {w}x{h} image is too small for chroma noise"
    );
    let operator = immerkaer_operator((Kind::Float, images.device())).repeat([3, 1, 1, 1]);
    let response = (images.to_kind(Kind::Float) * 255.0).conv2d(
        &operator,
        None::<Tensor>,
        [1, 1],
        [0, 0],
        [1, 1],
        3,
    );
    let green = response.narrow(1, 1, 1);
    let differences = Tensor::cat(
        &[
            response.narrow(1, 0, 1) - &green,
            response.narrow(1, 2, 1) - &green,
        ],
        1,
    );
    let (median, _) = differences.square().view([n, -1]).median_dim(1, false);
    Ok((median / (CHI2_1_MEDIAN * 72.0)).sqrt())
}

/// `[N]` levels of the real patches' noise over the bank's, both from [`chroma_noise_sigma`]
/// (the bank's as the RMS over its tiles: a mosaic's power is its tiles' mean power). None
/// where the bank has no chroma noise to measure (greyscale footage, such as a surveillance
/// camera's infrared mode): its noise stays at the bank's level. With `by_brightness`, each
/// patch's level is divided by the RMS of that curve over its pixels: what is left is how
/// much louder the patch is than its brightness explains, which G_s2r multiplies back by the
/// curve at its own image's brightness.
fn noise_scales(
    real: &Tensor,
    bank: &Tensor,
    by_brightness: Option<&Tensor>,
) -> Result<Option<Tensor>> {
    let bank_level = f64::try_from(chroma_noise_sigma(bank)?.square().mean(Kind::Float).sqrt())?;
    if bank_level < GREY_CHROMA_LEVEL {
        return Ok(None);
    }
    let levels = chroma_noise_sigma(real)? / bank_level;
    Ok(Some(match by_brightness {
        Some(curve) => {
            let expected = level_at_brightness(curve, &rgb_to_y(real))
                .square()
                .mean_dim(&[1i64, 2, 3][..], false, Kind::Float)
                .sqrt();
            levels / expected
        }
        None => levels,
    }))
}

/// The orientation part of [`ContentGain::Orientation`] on the `[p, p]` FFT grid: the least-squares
/// fit of a + b·cos 2θ + c·sin 2θ to `log_ratio` on the bins of `band`, without a (the scalar
/// gain keeps the level), and exp(2·√(b² + c²)), its largest over its smallest gain. `band`
/// holds at least [`ORIENTATION_BINS`] bins.
fn orientation_gain(log_ratio: &Tensor, band: &Tensor) -> Result<(Tensor, f64)> {
    let p = log_ratio.size()[0];
    let options = (Kind::Float, log_ratio.device());
    let f = Tensor::fft_fftfreq(p, 1.0, options);
    let angle = f.unsqueeze(1).atan2(&f.unsqueeze(0)) * 2.0;
    let (cos, sin) = (angle.cos(), angle.sin());
    let design = Tensor::stack(
        &[
            Tensor::ones_like(&cos).masked_select(band),
            cos.masked_select(band),
            sin.masked_select(band),
        ],
        1,
    );
    let values = log_ratio.masked_select(band).unsqueeze(1);
    let normal = design.transpose(0, 1).matmul(&design);
    let coefficients = Tensor::linalg_solve(&normal, &design.transpose(0, 1).matmul(&values), true);
    let b = coefficients.get(1).squeeze();
    let c = coefficients.get(2).squeeze();
    let amplitude = f64::try_from((b.square() + c.square()).sqrt())?;
    Ok((cos * b + sin * c, (2.0f64 * amplitude).exp()))
}

/// `[count, 1, 1, 1]` scales drawn uniformly from `scales` `[N]`.
fn draw_scales(scales: &Tensor, count: i64, rng: &mut StdRng) -> Tensor {
    let n = scales.size()[0];
    let picks: Vec<i64> = (0..count).map(|_| rng.random_range(0..n)).collect();
    scales
        .index_select(0, &Tensor::from_slice(&picks).to_device(scales.device()))
        .view([count, 1, 1, 1])
}

/// The `quantiles` of a 1-d tensor, in order.
fn percentiles(values: &Tensor, quantiles: [f64; 3]) -> Result<[f64; 3]> {
    let mut sorted = Vec::<f32>::try_from(values.to_device(Device::Cpu).view(-1))?;
    ensure!(!sorted.is_empty(), "no values to take percentiles of");
    sorted.sort_by(f32::total_cmp);
    let last = (sorted.len() - 1) as f64;
    Ok(quantiles.map(|q| f64::from(sorted[(q * last).round() as usize])))
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

/// The real patches' extra blur over the synthetic ones, from the step edges of every patch.
fn edge_blur_of_patches(real: &Tensor, synthetic: &Tensor) -> Result<ExtraBlur> {
    let edges_of = |patches: &Tensor| -> Result<Vec<Edge>> {
        let mut all = Vec::new();
        for i in 0..patches.size()[0] {
            all.extend(edges(&patches.get(i).clamp(0.0, 1.0))?);
        }
        Ok(all)
    };
    extra_blur(&edges_of(real)?, &edges_of(synthetic)?)
        .context("kernel_direction = \"edges\": reading the footage's blur from its edges")
}

/// [`KernelDirection::Edges`]' hold on the kernel's shape.
struct ShapeHold {
    /// The edges' anisotropy: `(λ₁ − λ₂) / (|λ₁| + |λ₂|) · (cos 2θ, sin 2θ)` of their extra
    /// blur's principal values λ and direction θ.
    target: (f64, f64),
    /// The kernel's coordinates (y up, as [`CameraDegradation::kernel_spread`]), `[k, k]`.
    x: Tensor,
    y: Tensor,
}

impl ShapeHold {
    fn new(blur: ExtraBlur, k: i64, device: Device) -> ShapeHold {
        let signed_square = |s: f64| s * s.abs();
        let (major, minor) = (
            signed_square(blur.sigma_major),
            signed_square(blur.sigma_minor),
        );
        let anisotropy = ((major - minor) / (major.abs() + minor.abs()).max(1e-12)).min(1.0);
        let doubled = (2.0 * blur.angle_degrees).to_radians();
        let c = Tensor::arange(k, (Kind::Float, device)) - (k / 2) as f64;
        ShapeHold {
            target: (anisotropy * doubled.cos(), anisotropy * doubled.sin()),
            x: c.unsqueeze(0).expand([k, k], false),
            y: -c.unsqueeze(1).expand([k, k], false),
        }
    }

    /// The squared distance between the kernel's anisotropy (as `target`, from its second
    /// moments) and the edges': its size is left to the spectrum.
    fn penalty(&self, kernel: &Tensor) -> Tensor {
        let moment = |a: &Tensor, b: &Tensor| (kernel * a * b).sum(Kind::Float);
        let (xx, yy, xy) = (
            moment(&self.x, &self.x),
            moment(&self.y, &self.y),
            moment(&self.x, &self.y),
        );
        let total = (&xx + &yy).clamp_min(1e-12);
        let (cos, sin) = self.target;
        ((xx - yy) / &total - cos).square() + (xy * 2.0 / &total - sin).square()
    }
}

/// Logits of [`symmetric_kernel`] for a kernel close to the identity (93% of its weight at the
/// centre, σ about 0.2 px): where the fit starts.
pub fn near_identity(k: i64, device: Device) -> Tensor {
    let c = Tensor::arange(k, (Kind::Float, device)) - (k / 2) as f64;
    let r2 = c.unsqueeze(0).square() + c.unsqueeze(1).square();
    r2 * -4.0
}

/// `x` `[B, C, h, w]`, image i blurred by `kernels[i]` (`[B, k, k]`, k odd), borders replicated:
/// one grouped convolution.
fn blur_by_convolution(x: &Tensor, kernels: &Tensor) -> Tensor {
    let size = x.size();
    let (b, c, h, w) = (size[0], size[1], size[2], size[3]);
    let k = kernels.size()[1];
    let weight = kernels
        .view([b, 1, k, k])
        .repeat_interleave_self_int(c, 0, None);
    let pad = k / 2;
    x.reshape([1, b * c, h, w])
        .pad([pad, pad, pad, pad], "replicate", None)
        .conv2d(&weight, None::<Tensor>, [1, 1], [0, 0], [1, 1], b * c)
        .view([b, c, h, w])
}

/// [`blur_by_convolution`] through the FFT, for the HR grid's large kernels on large images
/// (a 33×33 kernel on 128-px patches: about 40 times faster, with its gradient, on one core).
/// The padded image is convolved circularly; the kernel's reach never wraps into the crop.
fn blur_by_fft(x: &Tensor, kernels: &Tensor) -> Tensor {
    let (h, w) = (x.size()[2], x.size()[3]);
    let k = kernels.size()[1];
    let pad = k / 2;
    let (ph, pw) = (h + 2 * pad, w + 2 * pad);
    let padded = x.pad([pad, pad, pad, pad], "replicate", None);
    let centred = kernels
        .pad([0, pw - k, 0, ph - k], "constant", Some(0.0))
        .roll([-pad, -pad], [1, 2]);
    let dims = [-2i64, -1];
    let product = padded.fft_rfft2(None::<&[i64]>, dims, "backward")
        * centred
            .fft_rfft2(None::<&[i64]>, dims, "backward")
            .unsqueeze(1);
    product
        .fft_irfft2(Some([ph, pw].as_slice()), dims, "backward")
        .narrow(2, pad, h)
        .narrow(3, pad, w)
}

/// The scale of an HR-grid fit, from the sides of its `real` LR and `input` HR patches;
/// None for an LR-grid one, whose input is LR.
fn hr_grid_of(config: &DegradationConfig, real: &Tensor, input: &Tensor) -> Result<Option<i64>> {
    let (p, side) = (real.size()[3], input.size()[3]);
    match config.kernel_grid {
        KernelGrid::Lr => {
            ensure!(
                side == p,
                "synthetic LR patches of {side} px and real ones of {p} px differ in size"
            );
            Ok(None)
        }
        KernelGrid::Hr => {
            ensure!(
                side > p && side % p == 0,
                "an HR-grid kernel is fitted on HR patches a whole multiple of the real LR's {p} px, got {side} px"
            );
            Ok(Some(side / p))
        }
    }
}

/// What a kernel does to the mean power spectrum of the synthetic LR `[p, p]`.
enum LrTransfer {
    /// An LR-grid kernel multiplies it by |K(f)|².
    Lr { side: i64 },
    /// An HR-grid kernel multiplies the HR's by |K(f)|² before the downscale, which weights
    /// it by the bicubic's |B(f)|² and folds every frequency above the LR's Nyquist onto one
    /// below: the ratio of the folded spectra with and without the kernel. Cross terms
    /// between folded frequencies average out over patches.
    Hr {
        scale: i64,
        /// |B(f)|² P_HR(f) on the HR's `[sp, sp]` grid, and its fold (no kernel).
        weighted_hr: Tensor,
        folded: Tensor,
    },
}

impl LrTransfer {
    fn hr(hr: &Tensor, scale: i64) -> LrTransfer {
        let side = hr.size()[3];
        let hr_power = mean_power_spectrum(&rgb_to_y(hr).to_kind(Kind::Float));
        let weighted_hr = bicubic_power(scale, side, hr) * hr_power;
        let folded = fold(&weighted_hr, scale).clamp_min(1e-12);
        LrTransfer::Hr {
            scale,
            weighted_hr,
            folded,
        }
    }

    fn power(&self, kernel: &Tensor) -> Tensor {
        match self {
            LrTransfer::Lr { side } => transfer_power(kernel, *side),
            LrTransfer::Hr {
                scale,
                weighted_hr,
                folded,
            } => {
                let side = weighted_hr.size()[0];
                fold(&(transfer_power(kernel, side) * weighted_hr), *scale) / folded
            }
        }
    }
}

/// Sums an `[sp, sp]` spectrum (unshifted FFT layout) onto the `[p, p]` grid of its ×1/s
/// sampling: HR frequency bin j lands on LR bin j mod p.
fn fold(spectrum: &Tensor, scale: i64) -> Tensor {
    let p = spectrum.size()[0] / scale;
    spectrum
        .view([scale, p, scale, p])
        .sum_dim_intlist(&[0i64, 2][..], false, Kind::Float)
}

/// |B(f)|² of the bicubic ×1/`scale` downscale's antialiasing filter ([`downscale_taps`]) on
/// the `[n, n]` FFT grid of [`mean_power_spectrum`], on `like`'s device.
fn bicubic_power(scale: i64, n: i64, like: &Tensor) -> Tensor {
    let taps: Vec<f32> = downscale_taps(scale).iter().map(|&w| w as f32).collect();
    let taps = Tensor::from_slice(&taps).to_device(like.device());
    let padded = taps.pad([0, n - taps.size()[0]], "constant", Some(0.0));
    let axis = padded
        .fft_fft(None, 0, "backward")
        .abs()
        .square()
        .to_kind(Kind::Float);
    axis.unsqueeze(1) * axis.unsqueeze(0)
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
/// from black and white, minus its least-squares plane per channel, and of those the
/// `noise_tiles` flattest (least residual variance: flat regions show noise alone). Also
/// returns the number of candidate tiles.
fn noise_bank(
    real: &Tensor,
    config: &DegradationConfig,
    by_brightness: bool,
) -> Result<(Tensor, i64, Option<Tensor>)> {
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
    let mean_y = mean_y.index_select(0, &usable);
    let residual = minus_plane(&tiles);
    let variance = residual
        .square()
        .mean_dim(&[1i64, 2, 3][..], false, Kind::Float);
    let keep = config.noise_tiles.min(candidates);
    if !by_brightness {
        let (_, flattest) = variance.topk(keep, 0, false, true);
        return Ok((residual.index_select(0, &flattest), candidates, None));
    }
    // The flattest tiles for their brightness, each brought to the bank's level: at their
    // brightness the footage's noise may be louder or quieter.
    let levels = noise_by_brightness(&mean_y, &variance)?;
    let level = level_at_brightness(&levels, &mean_y);
    let (_, flattest) = (variance / level.square()).topk(keep, 0, false, true);
    let bank =
        residual.index_select(0, &flattest) / level.index_select(0, &flattest).view([-1, 1, 1, 1]);
    Ok((bank, candidates, Some(levels)))
}

/// Brightnesses at which [`noise_by_brightness`] measures the footage's noise level, evenly
/// spaced over [`TILE_MEAN_RANGE`].
const BRIGHTNESS_NODES: i64 = 8;

/// Tiles a brightness bin needs for its level to be measured; bins with fewer take their
/// nearest measured neighbour's.
const TILES_PER_BRIGHTNESS: i64 = 100;

/// The share of each brightness bin's tiles, flattest first, below which its level is read.
/// Texture only adds variance, so the flattest tiles of each brightness are the ones that show
/// its noise; in footage of photos, tiles flatter than the 5th percentile are mostly noise,
/// the 13th already carries texture. A low quantile of noise-only variance reads the level a
/// little low, by about the same factor at every brightness, which the curve's normalisation
/// removes.
const BRIGHTNESS_QUANTILE: f64 = 0.05;

/// `[B]` noise levels at the [`BRIGHTNESS_NODES`], relative to their mean over the tiles, from
/// the candidate tiles' mean luma `[T]` and residual variance `[T]`: in each bin around a node,
/// the root of the [`BRIGHTNESS_QUANTILE`]-th variance.
pub fn noise_by_brightness(mean_y: &Tensor, variance: &Tensor) -> Result<Tensor> {
    let (lo, hi) = TILE_MEAN_RANGE;
    let step = (hi - lo) / (BRIGHTNESS_NODES - 1) as f64;
    let lumas = Vec::<f32>::try_from(mean_y.to_device(Device::Cpu).to_kind(Kind::Float))?;
    let variance = Vec::<f32>::try_from(variance.to_device(Device::Cpu).to_kind(Kind::Float))?;
    let mut bins = vec![Vec::new(); BRIGHTNESS_NODES as usize];
    for (&y, &v) in lumas.iter().zip(&variance) {
        let node = ((f64::from(y) - lo) / step)
            .round()
            .clamp(0.0, (BRIGHTNESS_NODES - 1) as f64);
        bins[node as usize].push(v);
    }
    let measured: Vec<(usize, f64)> = bins
        .iter_mut()
        .enumerate()
        .filter(|(_, bin)| bin.len() as i64 >= TILES_PER_BRIGHTNESS)
        .map(|(node, bin)| {
            bin.sort_by(f32::total_cmp);
            let at = (BRIGHTNESS_QUANTILE * (bin.len() - 1) as f64).round() as usize;
            (node, f64::from(bin[at]).max(0.0).sqrt())
        })
        .collect();
    let levels: Vec<f64> = (0..bins.len())
        .map(|node| {
            measured
                .iter()
                .min_by_key(|(measured_node, _)| measured_node.abs_diff(node))
                // Too few tiles at every brightness to tell a trend: one level everywhere.
                .map_or(1.0, |&(_, level)| level)
        })
        .collect();
    ensure!(
        levels.iter().all(|&l| l > 0.0 && l.is_finite()),
        "the footage's flattest tiles have no noise at some brightness (levels {levels:?}): it is too clean or too flat to measure"
    );
    let levels = Tensor::from_slice(&levels)
        .to_kind(Kind::Float)
        .to_device(mean_y.device());
    // Relative to the level the tiles see on average: the bank keeps its scale.
    let at_tiles = level_at_brightness(&levels, mean_y);
    Ok(&levels / at_tiles.mean(Kind::Float))
}

/// The level of `levels` (`[B]` at the [`BRIGHTNESS_NODES`]) at each luma of `luma`, linearly
/// interpolated between nodes and constant beyond the end ones; same shape as `luma`.
pub fn level_at_brightness(levels: &Tensor, luma: &Tensor) -> Tensor {
    let nodes = levels.size()[0];
    let (lo, hi) = TILE_MEAN_RANGE;
    let position = ((luma.to_kind(Kind::Float) - lo) * ((nodes - 1) as f64 / (hi - lo)))
        .clamp(0.0, (nodes - 1) as f64);
    let below = position.floor().clamp_max((nodes - 2) as f64);
    let fraction = &position - &below;
    let below = below.to_kind(Kind::Int64);
    let levels = levels.to_device(luma.device());
    let at = |index: &Tensor| levels.take(index);
    at(&below) * (1.0 - &fraction) + at(&(&below + 1)) * fraction
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
