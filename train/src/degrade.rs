//! `train degrade`: realistic LR/HR benchmark pairs made from HR photos, seeded.
//!
//! The paper's protocol for data without ground truth (NTIRE 2018 "realistic" tracks): degrade
//! real HR photos with what a camera does, score on held-out ones. The chain, in the order a
//! camera applies it:
//!
//! 1. integer pixel shift of the scene (HR px, edges repeated): misregistration between the
//!    LR and HR views, which scoring must search for (`eval --max-shift`);
//! 2. blur on the HR image, i.e. before sampling: motion blur (a line of `length` HR px at
//!    `angle` degrees) and optionally optical Gaussian blur (σ along and across `angle`, HR px);
//! 3. ×`scale` downscale with MATLAB-bicubic [`imresize`] (the sensor's sampling);
//! 4. noise at LR resolution, where the sensor's pixels are: Poisson shot noise with `peak`
//!    photons at full white (noise σ at mid-grey = sqrt(0.5 / peak)), then Gaussian read noise
//!    (σ in [0, 1] units);
//! 5. 8-bit quantisation, then compression: JPEG at a quality, or H.264 intra-coded by x264 at
//!    a constant quantizer (each image is its own one-frame stream, since photos differ in size).
//!
//! Presets: `mild` uses the same levels for every image (as NTIRE 2018 "mild"), `wild` draws
//! levels per image (as "wild"), `codec` is `wild` followed by H.264, `camera` replaces step 4
//! with a raw sensor pipeline ([`Sensor`]) and ends with JPEG, as a phone or webcam does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{bail, ensure, Context, Result};
use gst::prelude::*;
use gstcyclesr::model::color::{downsample_chroma, upsample_chroma, YuvEncoding};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::data::{
    i420_planes, imresize, load_rgb8_for_training, make_element, named_images, run_to_appsink,
    save_png, Rgb8,
};
use crate::eval::Translator;

/// Degradation levels of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// Fixed levels for every image: shift (2, -3) HR px, motion blur of 6 HR px at 30°,
    /// Poisson noise with a peak of 800 photons (σ ≈ 6/255 at mid-grey).
    Mild,
    /// Levels drawn per image: shift in [-6, 6]² HR px; motion blur of 2–12 HR px at any angle;
    /// with probability 1/2 a Gaussian blur with σ in [0.4, 1.6] HR px per axis at any angle;
    /// Poisson peak log-uniform in [100, 2000] photons; Gaussian read noise σ in [0, 3/255].
    Wild,
    /// `wild`, then H.264 intra coding at a constant quantizer in [24, 38] (x264's 0–51 scale;
    /// 24 is visually clean, 38 heavily blocky).
    Codec,
    /// A camera pipeline after Brooks et al. ("Unprocessing Images for Learned Raw Denoising",
    /// CVPR 2019), levels drawn per image: shift in [-6, 6]² HR px; optics blur, a Gaussian with
    /// σ in [0.8, 2.0] HR px per axis at any angle; at LR scale the [`Sensor`]: shot noise
    /// variance log-uniform in [1e-4, 5e-3] (linear raw units) with Brooks' read noise for it,
    /// white-balance gains red [1.9, 2.4] and blue [1.5, 1.9]; then JPEG at quality [60, 90].
    /// Frozen before any tuning on it.
    Camera,
}

/// A part of the chain that `train degrade --without` leaves out, the rest drawn as before:
/// ablations that tell what blur, noise and compression each contribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Part {
    /// The motion and optical blur (the downscale's own antialiasing stays).
    Blur,
    /// Poisson and Gaussian noise; the `camera` preset's sensor keeps its mosaic and colour
    /// processing without shot or read noise.
    Noise,
    /// JPEG and H.264.
    Compression,
}

impl Degradation {
    /// This degradation without `part`.
    pub fn without(mut self, part: Part) -> Degradation {
        match part {
            Part::Blur => {
                self.motion_blur = None;
                self.gaussian_blur = None;
            }
            Part::Noise => {
                self.poisson_peak = None;
                self.gaussian_noise = None;
                if let Some(sensor) = &mut self.sensor {
                    sensor.shot = 0.0;
                    sensor.read = 0.0;
                }
            }
            Part::Compression => {
                self.jpeg_quality = None;
                self.h264_qp = None;
            }
        }
        self
    }
}

/// Motion blur: a uniform line through the kernel's centre.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MotionBlur {
    /// HR pixels.
    pub length: f64,
    /// Degrees, counter-clockwise from the x axis.
    pub angle: f64,
}

/// Anisotropic Gaussian blur.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GaussianBlur {
    /// Standard deviation along `angle`, HR pixels.
    pub sigma_x: f64,
    /// Standard deviation across `angle`, HR pixels.
    pub sigma_y: f64,
    /// Degrees, counter-clockwise from the x axis.
    pub angle: f64,
}

/// Everything done to one image (see the module documentation for the order).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Degradation {
    /// `(dy, dx)` in HR pixels: LR content at `(y, x)` shows the scene at `(y - dy, x - dx)`,
    /// so `eval` finds its best shift at `(dy, dx)`.
    pub shift: (i64, i64),
    pub motion_blur: Option<MotionBlur>,
    pub gaussian_blur: Option<GaussianBlur>,
    pub scale: i64,
    /// Photons at full white for Poisson noise.
    pub poisson_peak: Option<f64>,
    /// Standard deviation of Gaussian noise, [0, 1] units.
    pub gaussian_noise: Option<f64>,
    /// JPEG quality 1–100.
    pub jpeg_quality: Option<u8>,
    /// x264 constant quantizer 0–50.
    pub h264_qp: Option<u32>,
    /// A raw sensor pipeline at LR scale, instead of the Poisson and Gaussian noise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensor: Option<Sensor>,
}

/// A camera's raw pipeline at LR scale (Brooks et al. 2019): the sRGB image is unprocessed to
/// linear raw (inverse gamma 2.2, inverse smoothstep tone curve, inverse white balance),
/// mosaicked on an RGGB Bayer grid, given signal-dependent noise of variance
/// `shot · x + read`, demosaicked bilinearly and processed back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sensor {
    /// Shot-noise factor and read-noise variance, linear raw units in [0, 1].
    pub shot: f64,
    pub read: f64,
    /// White-balance gains of the red and blue channels.
    pub red_gain: f64,
    pub blue_gain: f64,
}

impl Preset {
    /// The degradation of one image; `mild` draws nothing from `rng`.
    pub fn sample(self, scale: i64, rng: &mut StdRng) -> Degradation {
        match self {
            Preset::Mild => Degradation {
                shift: (2, -3),
                motion_blur: Some(MotionBlur {
                    length: 6.0,
                    angle: 30.0,
                }),
                gaussian_blur: None,
                scale,
                poisson_peak: Some(800.0),
                gaussian_noise: None,
                jpeg_quality: None,
                h264_qp: None,
                sensor: None,
            },
            Preset::Wild => {
                let shift = (rng.random_range(-6..=6), rng.random_range(-6..=6));
                let motion_blur = Some(MotionBlur {
                    length: rng.random_range(2.0..=12.0),
                    angle: rng.random_range(0.0..180.0),
                });
                let gaussian_blur = rng.random_bool(0.5).then(|| GaussianBlur {
                    sigma_x: rng.random_range(0.4..=1.6),
                    sigma_y: rng.random_range(0.4..=1.6),
                    angle: rng.random_range(0.0..180.0),
                });
                let log_peak = rng.random_range(100f64.ln()..=2000f64.ln());
                Degradation {
                    shift,
                    motion_blur,
                    gaussian_blur,
                    scale,
                    poisson_peak: Some(log_peak.exp()),
                    gaussian_noise: Some(rng.random_range(0.0..=3.0) / 255.0),
                    jpeg_quality: None,
                    h264_qp: None,
                    sensor: None,
                }
            }
            Preset::Codec => Degradation {
                h264_qp: Some(rng.random_range(24..=38)),
                ..Preset::Wild.sample(scale, rng)
            },
            Preset::Camera => {
                let shift = (rng.random_range(-6..=6), rng.random_range(-6..=6));
                let gaussian_blur = Some(GaussianBlur {
                    sigma_x: rng.random_range(0.8..=2.0),
                    sigma_y: rng.random_range(0.8..=2.0),
                    angle: rng.random_range(0.0..180.0),
                });
                let log_shot = rng.random_range(1e-4f64.ln()..=5e-3f64.ln());
                // Brooks et al.'s read noise for a shot-noise level (their fit over cameras).
                let log_read = 2.18 * log_shot + 1.20 + 0.26 * standard_normal(rng);
                Degradation {
                    shift,
                    motion_blur: None,
                    gaussian_blur,
                    scale,
                    poisson_peak: None,
                    gaussian_noise: None,
                    jpeg_quality: Some(rng.random_range(60..=90)),
                    h264_qp: None,
                    sensor: Some(Sensor {
                        shot: log_shot.exp(),
                        read: log_read.exp(),
                        red_gain: rng.random_range(1.9..=2.4),
                        blue_gain: rng.random_range(1.5..=1.9),
                    }),
                }
            }
        }
    }
}

/// Normalised `[k, k]` kernel of a line of `length` pixels at `angle` degrees through the
/// centre, anti-aliased by bilinear splatting of dense samples. Point-symmetric, so it blurs
/// without displacing the image.
pub fn motion_kernel(length: f64, angle: f64) -> Tensor {
    let half = length.max(0.0) / 2.0;
    let k = 2 * (half.ceil() as usize + 1) + 1;
    let centre = (k / 2) as f64;
    let (sin, cos) = angle.to_radians().sin_cos();
    let samples = (length * 8.0).ceil().max(1.0) as usize + 1;
    let mut kernel = vec![0f64; k * k];
    for i in 0..samples {
        let t = if samples == 1 {
            0.0
        } else {
            -half + length * i as f64 / (samples - 1) as f64
        };
        // Image rows grow downwards: a counter-clockwise angle moves up.
        let (x, y) = (centre + t * cos, centre - t * sin);
        let (x0, y0) = (x.floor(), y.floor());
        let (fx, fy) = (x - x0, y - y0);
        for (dy, wy) in [(0, 1.0 - fy), (1, fy)] {
            for (dx, wx) in [(0, 1.0 - fx), (1, fx)] {
                let (yy, xx) = (y0 as usize + dy, x0 as usize + dx);
                if yy < k && xx < k {
                    kernel[yy * k + xx] += wy * wx;
                }
            }
        }
    }
    normalised(kernel, k)
}

/// Normalised `[k, k]` Gaussian with standard deviations `sigma_x` along `angle` (degrees) and
/// `sigma_y` across it; `k` covers 3σ.
pub fn gaussian_kernel(sigma_x: f64, sigma_y: f64, angle: f64) -> Tensor {
    let (sx, sy) = (sigma_x.max(1e-3), sigma_y.max(1e-3));
    let half = (3.0 * sx.max(sy)).ceil() as i64;
    let k = (2 * half + 1) as usize;
    let (sin, cos) = angle.to_radians().sin_cos();
    let mut kernel = Vec::with_capacity(k * k);
    for row in -half..=half {
        for col in -half..=half {
            // Coordinates along and across the angle (rows grow downwards).
            let (x, y) = (col as f64, -row as f64);
            let u = x * cos + y * sin;
            let v = -x * sin + y * cos;
            kernel.push((-0.5 * (u * u / (sx * sx) + v * v / (sy * sy))).exp());
        }
    }
    normalised(kernel, k)
}

fn normalised(kernel: Vec<f64>, k: usize) -> Tensor {
    let total: f64 = kernel.iter().sum();
    let values: Vec<f32> = kernel.iter().map(|v| (v / total) as f32).collect();
    Tensor::from_slice(&values).view([k as i64, k as i64])
}

/// The blur of `d` as one kernel (motion ∗ Gaussian), or none.
fn blur_kernel(d: &Degradation) -> Option<Tensor> {
    let motion = d
        .motion_blur
        .as_ref()
        .map(|m| motion_kernel(m.length, m.angle));
    let gaussian = d
        .gaussian_blur
        .as_ref()
        .map(|g| gaussian_kernel(g.sigma_x, g.sigma_y, g.angle));
    match (motion, gaussian) {
        (Some(a), Some(b)) => {
            // Full convolution of two symmetric kernels: one pass over the image instead of two.
            let (ka, kb) = (a.size()[0], b.size()[0]);
            Some(
                a.view([1, 1, ka, ka])
                    .conv2d(
                        &b.view([1, 1, kb, kb]),
                        None::<Tensor>,
                        [1, 1],
                        [kb - 1, kb - 1],
                        [1, 1],
                        1,
                    )
                    .view([ka + kb - 1, ka + kb - 1]),
            )
        }
        (a, b) => a.or(b),
    }
}

/// `[3, H, W]` convolved with a `[k, k]` kernel per channel, edges replicated (same size).
pub(crate) fn blur(image: &Tensor, kernel: &Tensor) -> Tensor {
    let k = kernel.size()[0];
    let weight = kernel
        .to_device(image.device())
        .to_kind(image.kind())
        .view([1, 1, k, k])
        .repeat([3, 1, 1, 1]);
    let pad = k / 2;
    image
        .unsqueeze(0)
        .pad([pad, pad, pad, pad], "replicate", None)
        .conv2d(&weight, None::<Tensor>, [1, 1], [0, 0], [1, 1], 3)
        .squeeze_dim(0)
}

/// Degrades `hr` (`[3, H, W]` in [0, 1], H and W multiples of the scale for an exact
/// `H/scale × W/scale` result) by `d`; noise is drawn from `noise_seed`. Returns the 8-bit LR.
pub fn degrade(hr: &Tensor, d: &Degradation, noise_seed: u64) -> Result<Rgb8> {
    ensure!(d.scale >= 1, "scale must be positive, got {}", d.scale);
    let size = hr.size();
    ensure!(
        size.len() == 3 && size[0] == 3,
        "expected an RGB image [3, H, W], got shape {size:?}"
    );
    let (h, w) = (size[1], size[2]);
    let x = hr.to_kind(Kind::Float);
    let (dy, dx) = d.shift;
    let rows = (Tensor::arange(h, (Kind::Int64, x.device())) - dy).clamp(0, h - 1);
    let cols = (Tensor::arange(w, (Kind::Int64, x.device())) - dx).clamp(0, w - 1);
    let mut x = x.index_select(1, &rows).index_select(2, &cols);
    if let Some(kernel) = blur_kernel(d) {
        x = blur(&x, &kernel);
    }
    let lr = imresize(&x, 1.0 / d.scale as f64).clamp(0.0, 1.0);
    let lr = match &d.sensor {
        Some(sensor) => sensor_pipeline(&lr, sensor, noise_seed)?,
        None => add_noise(&lr, d, noise_seed)?,
    };
    let mut lr = Rgb8::from_tensor(&lr)?;
    if let Some(qp) = d.h264_qp {
        lr = h264_roundtrip(&lr, qp)?;
    }
    if let Some(quality) = d.jpeg_quality {
        lr = jpeg_roundtrip(&lr, quality)?;
    }
    Ok(lr)
}

/// Poisson then Gaussian noise, drawn in Rust from `seed` (libtorch's generator is global to
/// the process, so it would not give reproducible results under concurrency).
fn add_noise(lr: &Tensor, d: &Degradation, seed: u64) -> Result<Tensor> {
    if d.poisson_peak.is_none() && d.gaussian_noise.is_none() {
        return Ok(lr.shallow_clone());
    }
    let shape = lr.size();
    let mut values: Vec<f32> = Vec::try_from(&lr.flatten(0, -1))?;
    let mut rng = StdRng::seed_from_u64(seed);
    for v in &mut values {
        let mut x = f64::from(*v);
        if let Some(peak) = d.poisson_peak {
            x = poisson(&mut rng, x * peak) / peak;
        }
        if let Some(sigma) = d.gaussian_noise {
            x += sigma * standard_normal(&mut rng);
        }
        *v = x.clamp(0.0, 1.0) as f32;
    }
    Ok(Tensor::from_slice(&values).view(shape.as_slice()))
}

/// [`Sensor`]'s pipeline on an LR image `[3, h, w]` in [0, 1]; noise drawn in Rust from `seed`.
fn sensor_pipeline(lr: &Tensor, sensor: &Sensor, seed: u64) -> Result<Tensor> {
    let (h, w) = (lr.size()[1], lr.size()[2]);
    let device = lr.device();
    let gains = Tensor::from_slice(&[sensor.red_gain as f32, 1.0, sensor.blue_gain as f32])
        .to_device(device)
        .view([3, 1, 1]);
    // Unprocess: inverse gamma, inverse smoothstep, inverse white balance.
    let linear = lr
        .to_kind(Kind::Float)
        .clamp(1e-8, 1.0)
        .pow_tensor_scalar(2.2);
    let untoned = -((-(linear * 2.0) + 1.0).asin() / 3.0).sin() + 0.5;
    let raw = untoned / &gains;
    // RGGB mosaic: one channel per pixel.
    let rows = Tensor::arange(h, (Kind::Int64, device))
        .remainder(2)
        .view([h, 1]);
    let cols = Tensor::arange(w, (Kind::Int64, device))
        .remainder(2)
        .view([1, w]);
    let red = rows.eq(0).logical_and(&cols.eq(0));
    let blue = rows.eq(1).logical_and(&cols.eq(1));
    let green = red.logical_or(&blue).logical_not();
    let masks = Tensor::stack(&[red, green, blue], 0).to_kind(Kind::Float); // [3, h, w]
    let mosaic = (&raw * &masks).sum_dim_intlist(0, false, Kind::Float); // [h, w]
                                                                         // Signal-dependent noise, reproducibly from `seed`.
    let shape = [h, w];
    let mut values: Vec<f32> = Vec::try_from(&mosaic.flatten(0, -1))?;
    let mut rng = StdRng::seed_from_u64(seed);
    for v in &mut values {
        let x = f64::from(*v);
        let sigma = (sensor.shot * x.max(0.0) + sensor.read).sqrt();
        *v = (x + sigma * standard_normal(&mut rng)).clamp(0.0, 1.0) as f32;
    }
    let noisy = Tensor::from_slice(&values).view(shape).to_device(device);
    // Bilinear demosaicking by normalised convolution; known samples are kept.
    let kernel = Tensor::from_slice(&[1.0f32, 2.0, 1.0, 2.0, 4.0, 2.0, 1.0, 2.0, 1.0])
        .to_device(device)
        .view([1, 1, 3, 3])
        .repeat([3, 1, 1, 1]);
    let spread = |t: &Tensor| {
        t.unsqueeze(0)
            .pad([1, 1, 1, 1], "reflect", None)
            .conv2d(&kernel, None::<Tensor>, [1, 1], [0, 0], [1, 1], 3)
            .squeeze_dim(0)
    };
    let sampled = &masks * noisy.unsqueeze(0);
    let interpolated = spread(&sampled) / spread(&masks);
    let demosaicked = &sampled + interpolated * (-&masks + 1.0);
    // Process: white balance, smoothstep tone curve, gamma.
    let balanced = (demosaicked * &gains).clamp(0.0, 1.0);
    let toned = balanced.square() * 3.0 - balanced.pow_tensor_scalar(3) * 2.0;
    Ok(toned
        .clamp(1e-8, 1.0)
        .pow_tensor_scalar(1.0 / 2.2)
        .clamp(0.0, 1.0))
}

/// Box–Muller.
pub(crate) fn standard_normal(rng: &mut StdRng) -> f64 {
    let u1 = 1.0 - rng.random::<f64>(); // (0, 1]: ln stays finite
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A Poisson sample: exact (Knuth's product of uniforms) below 30, the normal approximation
/// above, where its skewness (< 0.18) is invisible in an image.
fn poisson(rng: &mut StdRng, lambda: f64) -> f64 {
    if lambda <= 0.0 {
        0.0
    } else if lambda < 30.0 {
        let limit = (-lambda).exp();
        let mut product = rng.random::<f64>();
        let mut k = 0.0;
        while product > limit {
            product *= rng.random::<f64>();
            k += 1.0;
        }
        k
    } else {
        (lambda + lambda.sqrt() * standard_normal(rng))
            .round()
            .max(0.0)
    }
}

/// JPEG encode and decode with the `image` crate.
pub fn jpeg_roundtrip(img: &Rgb8, quality: u8) -> Result<Rgb8> {
    use image::ImageEncoder;
    ensure!(
        (1..=100).contains(&quality),
        "JPEG quality {quality} is outside 1..=100"
    );
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, quality)
        .write_image(
            &img.data,
            img.width as u32,
            img.height as u32,
            image::ExtendedColorType::Rgb8,
        )
        .context("JPEG encoding")?;
    let decoded = image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg)
        .context("JPEG decoding")?
        .into_rgb8();
    Ok(Rgb8 {
        height: img.height,
        width: img.width,
        data: decoded.into_raw(),
    })
}

/// H.264 encode and decode through GStreamer: `appsrc ! x264enc (constant quantizer `qp`, one
/// thread for reproducible output) ! h264parse ! avdec_h264 ! appsink`. The image is one
/// intra-coded frame in 4:2:0, as cameras stream. The BT.601 limited-range conversion and the
/// chroma subsampling happen here, with the element's own colour code, rather than in
/// `videoconvert`, whose 8-bit fast paths shift grey levels by a few codes.
pub fn h264_roundtrip(img: &Rgb8, qp: u32) -> Result<Rgb8> {
    ensure!(qp <= 50, "H.264 quantizer {qp} is outside 0..=50");
    gst::init()?;
    // 4:2:0 needs even sizes: repeat the last row/column, cropped off after decoding.
    let (h, w) = (img.height as i64, img.width as i64);
    let rgb = img.to_tensor();
    let rgb = rgb.pad([0, w % 2, 0, h % 2], "replicate", None);
    let (height, width) = (h + h % 2, w + w % 2);
    let info =
        gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, width as u32, height as u32)
            .fps(gst::Fraction::new(1, 1))
            .colorimetry(&gst_video::VideoColorimetry::from_str("bt601").context("colorimetry")?)
            .build()
            .context("video format")?;
    let (y, cb, cr) = YuvEncoding::BT601_LIMITED.from_rgb(&rgb);
    let planes = [y, downsample_chroma(&cb), downsample_chroma(&cr)];
    let mut data = vec![0u8; info.size()];
    for (p, plane) in planes.iter().enumerate() {
        let codes = plane
            .round()
            .clamp(0.0, 255.0)
            .to_kind(Kind::Uint8)
            .contiguous();
        let (rows, cols) = (codes.size()[0] as usize, codes.size()[1] as usize);
        let mut values = vec![0u8; rows * cols];
        codes.f_copy_data(&mut values, rows * cols)?;
        let (offset, stride) = (info.offset()[p], info.stride()[p] as usize);
        for (r, line) in values.chunks_exact(cols).enumerate() {
            data[offset + r * stride..offset + r * stride + cols].copy_from_slice(line);
        }
    }

    let pipeline = gst::Pipeline::new();
    let src = gst_app::AppSrc::builder()
        .caps(&info.to_caps().context("video caps")?)
        .format(gst::Format::Time)
        .build();
    let encoder = make_element("x264enc").context("install gstreamer1.0-plugins-ugly")?;
    encoder.set_property_from_str("pass", "quant");
    encoder.set_property("quantizer", qp);
    encoder.set_property("threads", 1u32);
    let parse = make_element("h264parse").context("install gstreamer1.0-plugins-bad")?;
    let decoder = make_element("avdec_h264").context("install gstreamer1.0-libav")?;
    let sink = gst_app::AppSink::builder()
        .caps(
            &gst_video::VideoCapsBuilder::new()
                .format(gst_video::VideoFormat::I420)
                .build(),
        )
        .sync(false)
        .build();
    let chain = [
        src.upcast_ref(),
        &encoder,
        &parse,
        &decoder,
        sink.upcast_ref(),
    ];
    pipeline.add_many(chain)?;
    gst::Element::link_many(chain)?;

    let mut buffer = gst::Buffer::from_mut_slice(data);
    {
        let buffer = buffer.get_mut().context("new buffer")?;
        buffer.set_pts(gst::ClockTime::ZERO);
        buffer.set_duration(gst::ClockTime::SECOND);
    }
    src.push_buffer(buffer).context("pushing the frame")?;
    src.end_of_stream().context("ending the stream")?;
    let mut decoded = None;
    run_to_appsink(&pipeline, &sink, |sample| {
        decoded = Some(i420_planes(sample)?);
        Ok(false)
    })
    .context("H.264 round trip")?;
    let Some([y, cb, cr]) = decoded else {
        bail!("H.264 round trip: no frame came out of the decoder");
    };
    ensure!(
        y.size() == [height, width],
        "H.264 round trip: {width}x{height} came back as {:?}",
        y.size()
    );
    let rgb = YuvEncoding::BT601_LIMITED.to_rgb(
        &y,
        &upsample_chroma(&cb, height, width),
        &upsample_chroma(&cr, height, width),
    );
    Rgb8::from_tensor(&rgb.narrow(1, 0, h).narrow(2, 0, w))
}

#[derive(clap::Args, Clone, Debug)]
pub struct DegradeArgs {
    /// Folders (searched recursively) or files of HR photos.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Output folder: lr/<name>.png, hr/<name>.png and degradation.json.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, value_enum, default_value_t = Preset::Mild)]
    pub preset: Preset,
    /// Instead of a preset, degrade with stage 1 of this training state (`train fit`'s
    /// checkpoint): LR = G_s2r(bicubic ↓scale of the photo), or for an explicit stage 1 with
    /// its kernel on the HR grid the photo blurred, then downscaled, then G_s2r's noise and
    /// codec: the pseudo-pairs CycleSR's indirect path trains G_l2h on, here as files for any
    /// SR trainer.
    #[arg(long, conflicts_with_all = ["preset", "jpeg_quality"])]
    pub stage1: Option<PathBuf>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// With --stage1, it must be the state's `data.scale`.
    #[arg(long, default_value_t = 4)]
    pub scale: i64,
    /// Also JPEG-compress every LR image at this quality (1–100), last (replaces the `camera`
    /// preset's own quality).
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub jpeg_quality: Option<u8>,
    /// Leave this part of the preset's chain out (repeatable); every other level is drawn as
    /// without it, so the same seed gives the same shift, blur and noise levels.
    #[arg(long, value_enum, conflicts_with = "stage1")]
    pub without: Vec<Part>,
    /// Halve JPEG inputs first, washing out their blocking (DATA.md).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub jpeg_downscale: bool,
}

/// One line of `degradation.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DegradeRecord {
    pub name: String,
    pub source: PathBuf,
    /// `[height, width]` of the HR written (after JPEG halving and cropping to the scale).
    pub hr_size: [usize; 2],
    pub lr_size: [usize; 2],
    /// The preset's draw; None where a stage 1 degraded the image (its LR is aligned with
    /// the HR: no shift).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub degradation: Option<Degradation>,
}

impl DegradeRecord {
    /// See [`Degradation::shift`].
    pub fn shift(&self) -> (i64, i64) {
        self.degradation.as_ref().map_or((0, 0), |d| d.shift)
    }
}

/// The stage 1 that degraded a set (`train degrade --stage1`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage1Record {
    /// The training state.
    pub state: PathBuf,
    /// What its G_s2r is, with an explicit one's kernel, noise and codec.
    pub description: String,
}

/// `degradation.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DegradeManifest {
    /// One of the two degraded the set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<Preset>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage1: Option<Stage1Record>,
    /// The parts of the preset's chain left out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub without: Vec<Part>,
    pub seed: u64,
    pub scale: i64,
    pub jpeg_downscale: bool,
    pub images: Vec<DegradeRecord>,
}

/// The RNG of one image: from the run's seed and the image's name (not its position), so
/// adding photos does not change the others' degradations.
pub fn image_rng(seed: u64, name: &str) -> StdRng {
    // FNV-1a: stable across builds, unlike std's hasher.
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    StdRng::seed_from_u64(seed ^ hash.rotate_left(17))
}

/// `train degrade`. Unreadable inputs are skipped with a warning; images smaller than the
/// scale are skipped too.
pub fn run(args: &DegradeArgs) -> Result<()> {
    ensure!(
        args.scale >= 1,
        "--scale must be positive, got {}",
        args.scale
    );
    let scale = args.scale as usize;
    let mut inputs = BTreeMap::new();
    for input in &args.inputs {
        for (name, path) in named_images(input)? {
            if let Some(previous) = inputs.insert(name.clone(), path.clone()) {
                bail!(
                    "{} and {} would both be written as '{name}.png'",
                    previous.display(),
                    path.display()
                );
            }
        }
    }
    ensure!(
        !inputs.is_empty(),
        "no images found in {}",
        args.inputs
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let translator = match &args.stage1 {
        Some(state) => {
            let translator = Translator::load(state, Device::Cpu)?;
            ensure!(
                translator.scale == args.scale,
                "--scale is {} but training state {} was trained at data.scale {}",
                args.scale,
                state.display(),
                translator.scale
            );
            Some(translator)
        }
        None => None,
    };
    let (lr_dir, hr_dir) = (args.out.join("lr"), args.out.join("hr"));
    for dir in [&lr_dir, &hr_dir] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut records = Vec::new();
    let count = inputs.len();
    for (i, (name, path)) in inputs.into_iter().enumerate() {
        let hr = match load_hr(&path, args.jpeg_downscale, scale) {
            Ok(hr) => hr,
            Err(e) => {
                eprintln!("warning: skipping {}: {e:#}", path.display());
                continue;
            }
        };
        let mut rng = image_rng(args.seed, &name);
        let (lr, degradation) = match &translator {
            Some(translator) => {
                let synthetic = imresize(&hr, 1.0 / args.scale as f64).clamp(0.0, 1.0);
                let lr = translator
                    .degrade(&hr, &synthetic, rng.random())
                    .and_then(|lr| Rgb8::from_tensor(&lr))
                    .with_context(|| format!("stage 1 on {}", path.display()))?;
                (lr, None)
            }
            None => {
                let mut degradation = args.preset.sample(args.scale, &mut rng);
                if args.jpeg_quality.is_some() {
                    degradation.jpeg_quality = args.jpeg_quality;
                }
                for &part in &args.without {
                    degradation = degradation.without(part);
                }
                let lr = degrade(&hr, &degradation, rng.random())
                    .with_context(|| format!("degrading {}", path.display()))?;
                (lr, Some(degradation))
            }
        };
        save_png(&hr, &hr_dir.join(format!("{name}.png")))?;
        save_png(&lr.to_tensor(), &lr_dir.join(format!("{name}.png")))?;
        let hr_size = [hr.size()[1] as usize, hr.size()[2] as usize];
        eprintln!(
            "[{}/{count}] {name}: {}x{} -> {}x{}",
            i + 1,
            hr_size[1],
            hr_size[0],
            lr.width,
            lr.height
        );
        records.push(DegradeRecord {
            name,
            source: path,
            hr_size,
            lr_size: [lr.height, lr.width],
            degradation,
        });
    }
    ensure!(!records.is_empty(), "every input image was skipped");
    let manifest = DegradeManifest {
        preset: translator.is_none().then_some(args.preset),
        stage1: args
            .stage1
            .as_ref()
            .zip(translator.as_ref())
            .map(|(state, translator)| Stage1Record {
                state: state.clone(),
                description: translator.describe(),
            }),
        without: args.without.clone(),
        seed: args.seed,
        scale: args.scale,
        jpeg_downscale: args.jpeg_downscale,
        images: records,
    };
    let json = serde_json::to_string_pretty(&manifest)?;
    gstcyclesr::model::checkpoint::write_atomically(
        &args.out.join("degradation.json"),
        json.as_bytes(),
    )
}

/// The HR image as written: JPEGs optionally halved, cropped (top-left) to a multiple of the
/// scale.
fn load_hr(path: &Path, jpeg_downscale: bool, scale: usize) -> Result<Tensor> {
    let img = load_rgb8_for_training(path, jpeg_downscale)?.to_tensor();
    let (h, w) = (img.size()[1] as usize, img.size()[2] as usize);
    let (hc, wc) = (h / scale * scale, w / scale * scale);
    ensure!(
        hc > 0 && wc > 0,
        "{w}x{h} is smaller than the scale {scale}"
    );
    Ok(img.narrow(1, 0, hc as i64).narrow(2, 0, wc as i64))
}
