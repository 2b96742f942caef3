//! Blind synthetic degradations in the style of Real-ESRGAN (Wang et al., ICCVW 2021): two
//! rounds of blur, resize, noise and JPEG with random levels, on the bicubic-downscaled HR
//! patch, with no real LR at all. The alternative a practitioner tries first (mode `sr-blind`):
//! learning a camera is worth it only where it beats this.
//!
//! Real-ESRGAN degrades 256² HR patches at HR scale; here the chain runs at LR scale on
//! bicubic↓HR (its final ×1/4 resize), with Real-ESRGAN's HR blur σ and resize ranges divided
//! by the scale. Every random draw comes from the caller's RNG, so a batch is a pure function
//! of the run's seed and its iteration (resume stays exact).

use anyhow::{Context, Result};
use rand::rngs::StdRng;
use rand::Rng;
use tch::{Device, Kind, Tensor};

use super::source::Rgb8;
use crate::degrade::{blur, gaussian_kernel, jpeg_roundtrip, standard_normal};

/// The levels of one round.
struct Round {
    /// Probability of blurring, and the range of the blur's σ per axis, LR pixels.
    blur_probability: f64,
    blur_sigma: (f64, f64),
    /// Range of the down-then-up resize factor (1 = none).
    resize: (f64, f64),
    /// Gaussian noise σ range (code values), and the signal-dependent (Poisson-like) noise's
    /// σ at full white (code values); each drawn with probability 1/2.
    gaussian_sigma: (f64, f64),
    poisson_sigma: (f64, f64),
    /// JPEG quality range.
    jpeg_quality: (u8, u8),
}

/// Real-ESRGAN's first and second rounds (its HR σ ranges [0.2, 3] and [0.2, 1.5] over the
/// scale 4; noise σ [1, 30] and [1, 25]; JPEG [30, 95]).
const ROUNDS: [Round; 2] = [
    Round {
        blur_probability: 1.0,
        blur_sigma: (0.05, 0.75),
        resize: (0.5, 1.0),
        gaussian_sigma: (1.0, 30.0),
        poisson_sigma: (2.0, 25.0),
        jpeg_quality: (30, 95),
    },
    Round {
        blur_probability: 0.8,
        blur_sigma: (0.05, 0.375),
        resize: (0.75, 1.0),
        gaussian_sigma: (1.0, 25.0),
        poisson_sigma: (2.0, 20.0),
        jpeg_quality: (30, 95),
    },
];

/// Degrades each image of `[B, 3, h, w]` (in [0, 1], any device) by its own random two-round
/// chain; returns the result on the input's device.
pub fn blind_degrade(x: &Tensor, rng: &mut StdRng) -> Result<Tensor> {
    let device = x.device();
    let images: Vec<Tensor> = (0..x.size()[0])
        .map(|i| {
            let mut image = x.get(i).to_device(Device::Cpu).to_kind(Kind::Float);
            for round in &ROUNDS {
                image = degrade_once(&image, round, rng)?;
            }
            Ok(image)
        })
        .collect::<Result<_>>()?;
    Ok(Tensor::stack(&images, 0).to_device(device))
}

/// One round on a `[3, h, w]` CPU image.
fn degrade_once(image: &Tensor, round: &Round, rng: &mut StdRng) -> Result<Tensor> {
    let (h, w) = (image.size()[1], image.size()[2]);
    let mut x = image.shallow_clone();
    if rng.random_bool(round.blur_probability) {
        let kernel = gaussian_kernel(
            rng.random_range(round.blur_sigma.0..=round.blur_sigma.1),
            rng.random_range(round.blur_sigma.0..=round.blur_sigma.1),
            rng.random_range(0.0..180.0),
        );
        x = blur(&x, &kernel);
    }
    let factor = rng.random_range(round.resize.0..=round.resize.1);
    let (sh, sw) = (
        ((h as f64 * factor).round() as i64).max(1),
        ((w as f64 * factor).round() as i64).max(1),
    );
    if (sh, sw) != (h, w) {
        // Real-ESRGAN draws the interpolation among area, bilinear and bicubic.
        let down = match rng.random_range(0..3) {
            0 => x.unsqueeze(0).adaptive_avg_pool2d([sh, sw]),
            1 => x
                .unsqueeze(0)
                .upsample_bilinear2d([sh, sw], false, None, None),
            _ => x
                .unsqueeze(0)
                .upsample_bicubic2d([sh, sw], false, None, None),
        };
        x = down
            .upsample_bilinear2d([h, w], false, None, None)
            .squeeze_dim(0);
    }
    let x = add_noise(&x.clamp(0.0, 1.0), round, rng)?;
    let quality = rng.random_range(round.jpeg_quality.0..=round.jpeg_quality.1);
    let compressed = jpeg_roundtrip(&Rgb8::from_tensor(&x)?, quality).context("blind JPEG")?;
    Ok(compressed.to_tensor())
}

/// Gaussian noise (colour, or grey with probability 0.4 as in Real-ESRGAN) or signal-dependent
/// noise of σ ∝ √x, drawn from `rng`.
fn add_noise(x: &Tensor, round: &Round, rng: &mut StdRng) -> Result<Tensor> {
    let shape = x.size();
    let plane = (shape[1] * shape[2]) as usize;
    let mut values: Vec<f32> = Vec::try_from(&x.flatten(0, -1))?;
    let gaussian = rng.random_bool(0.5);
    let (low, high) = if gaussian {
        round.gaussian_sigma
    } else {
        round.poisson_sigma
    };
    let sigma = rng.random_range(low..=high) / 255.0;
    let grey = rng.random_bool(0.4);
    let draws: Vec<f64> = (0..if grey { plane } else { values.len() })
        .map(|_| standard_normal(rng))
        .collect();
    for (i, v) in values.iter_mut().enumerate() {
        let n = draws[if grey { i % plane } else { i }];
        let scale = if gaussian {
            sigma
        } else {
            sigma * f64::from(*v).max(0.0).sqrt()
        };
        *v = (f64::from(*v) + scale * n).clamp(0.0, 1.0) as f32;
    }
    Ok(Tensor::from_slice(&values).view(shape.as_slice()))
}
