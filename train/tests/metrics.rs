//! PSNR, SSIM, luma and the NTIRE scoring protocol; `evaluate` on a tiny paired set.

mod common;

use common::temp_dir;
use cyclesr_train::data::{imresize, save_png, PairedSet};
use cyclesr_train::eval::{evaluate, evaluate_tiled, DEFAULT_TILING};
use cyclesr_train::metrics::{noise_sigma, psnr, rgb_to_y, ssim, NtireProtocol};
use gstcyclesr::model::arch::SrConfig;
use gstcyclesr::model::checkpoint::SrModel;
use gstcyclesr::model::device::Precision;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tch::{Device, Kind, Tensor};

fn random_image(h: i64, w: i64, seed: u64) -> Tensor {
    let mut rng = StdRng::seed_from_u64(seed);
    let values: Vec<f32> = (0..3 * h * w).map(|_| rng.random()).collect();
    Tensor::from_slice(&values).view([3, h, w])
}

/// Random but smooth content (a bicubic upscale of a coarse random field), like a photo.
fn smooth_image(h: i64, w: i64, seed: u64) -> Tensor {
    imresize(&random_image(h / 4, w / 4, seed), 4.0).clamp(0.0, 1.0)
}

#[test]
fn psnr_by_hand() {
    let a = Tensor::zeros([3, 2, 2], (Kind::Float, Device::Cpu));
    let b = a.copy();
    let _ = b.get(1).get(0).get(1).fill_(0.1);
    // MSE = 0.1² / 12 elements; PSNR = 10·log10(1 / MSE) = 10·log10(1200).
    let expected = 10.0 * 1200f64.log10();
    assert!((psnr(&a, &b) - expected).abs() < 1e-6, "{}", psnr(&a, &b));
    assert_eq!(psnr(&a, &a), f64::INFINITY);
}

#[test]
fn ssim_of_identical_images_is_one() {
    let a = random_image(32, 24, 1);
    assert!((ssim(&a, &a) - 1.0).abs() < 1e-9);
    let y = rgb_to_y(&a);
    assert_eq!(y.size(), [1, 32, 24]);
    assert!((ssim(&y, &y) - 1.0).abs() < 1e-9);
    let noisy = (&a + random_image(32, 24, 2) * 0.6 - 0.3).clamp(0.0, 1.0);
    let s = ssim(&a, &noisy);
    assert!(s < 0.95 && s > 0.0, "{s}");
    assert!((s - ssim(&noisy, &a)).abs() < 1e-9, "SSIM is symmetric");
}

#[test]
fn ssim_of_flat_images_by_hand() {
    // One 11×11 window, no variance: SSIM = (2·μx·μy + C1) / (μx² + μy² + C1).
    let a = Tensor::full([3, 11, 11], 0.5, (Kind::Float, Device::Cpu));
    let b = Tensor::full([3, 11, 11], 0.25, (Kind::Float, Device::Cpu));
    let c1 = 0.01f64.powi(2);
    let expected = (2.0 * 0.5 * 0.25 + c1) / (0.25 + 0.0625 + c1);
    assert!((ssim(&a, &b) - expected).abs() < 1e-9, "{}", ssim(&a, &b));
}

#[test]
fn luma_is_bt601_limited_range() {
    let colours =
        Tensor::from_slice(&[1.0f32, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0]).view([3, 1, 3]);
    // Pixels: white, black, red.
    let y = rgb_to_y(&colours);
    let expected = [235.0 / 255.0, 16.0 / 255.0, (16.0 + 65.481) / 255.0];
    for (i, e) in expected.iter().enumerate() {
        let got = y.double_value(&[0, 0, i as i64]);
        assert!((got - e).abs() < 1e-9, "pixel {i}: {got} vs {e}");
    }
}

#[test]
fn score_finds_a_known_shift() {
    let scene = smooth_image(96, 96, 3);
    // HR is the scene at (20, 20); the output shows it displaced by (3, -2): output pixel
    // (y + 3, x - 2) holds HR pixel (y, x).
    let hr = scene.narrow(1, 20, 48).narrow(2, 20, 48);
    let sr = scene.narrow(1, 17, 48).narrow(2, 22, 48);
    let protocol = NtireProtocol {
        border: 2,
        max_shift: 5,
        crop: None,
    };
    let score = protocol.score(&sr, &hr).unwrap();
    assert_eq!(score.shift, (3, -2));
    assert_eq!(score.psnr_y, f64::INFINITY);
    assert!((score.ssim_rgb - 1.0).abs() < 1e-9);

    // With noise and a centre crop, the shift is still found and scores become finite.
    let noisy = (&sr + (random_image(48, 48, 4) - 0.5) * 0.05).clamp(0.0, 1.0);
    let cropped = NtireProtocol {
        crop: Some(20),
        ..protocol
    };
    let score = cropped.score(&noisy, &hr).unwrap();
    assert_eq!(score.shift, (3, -2));
    assert!(
        score.psnr_rgb.is_finite() && score.psnr_rgb > 30.0,
        "{score:?}"
    );
    assert!(score.ssim_y < 1.0);

    // Without a shift search, the misaligned output scores far lower.
    let aligned = NtireProtocol {
        max_shift: 0,
        ..cropped
    };
    let unsearched = aligned.score(&noisy, &hr).unwrap();
    assert_eq!(unsearched.shift, (0, 0));
    assert!(
        unsearched.psnr_y < score.psnr_y - 5.0,
        "{unsearched:?} vs {score:?}"
    );
}

#[test]
fn score_without_shift_is_psnr_inside_the_border() {
    let hr = random_image(20, 30, 5);
    let sr = random_image(20, 30, 6);
    let protocol = NtireProtocol {
        border: 3,
        max_shift: 0,
        crop: None,
    };
    let score = protocol.score(&sr, &hr).unwrap();
    let inner = |t: &Tensor| t.narrow(1, 3, 14).narrow(2, 3, 24);
    assert!((score.psnr_rgb - psnr(&inner(&sr), &inner(&hr))).abs() < 1e-9);
    assert!((score.ssim_y - ssim(&rgb_to_y(&inner(&sr)), &rgb_to_y(&inner(&hr)))).abs() < 1e-9);
}

#[test]
fn score_rejects_bad_input() {
    let hr = random_image(20, 20, 7);
    let too_far = NtireProtocol {
        border: 4,
        max_shift: 6,
        crop: None,
    };
    let message = too_far.score(&hr, &hr).unwrap_err().to_string();
    assert!(message.contains("too small"), "{message}");
    let grey = Tensor::zeros([1, 20, 20], (Kind::Float, Device::Cpu));
    let fine = NtireProtocol {
        border: 0,
        max_shift: 0,
        crop: None,
    };
    assert!(fine.score(&grey, &hr).is_err());
}

#[test]
fn evaluate_scores_bicubic_and_a_model() {
    let root = temp_dir("evaluate");
    let (lr, hr) = (root.join("lr"), root.join("hr"));
    for (i, name) in ["one", "two"].iter().enumerate() {
        let img = smooth_image(48, 40, 10 + i as u64);
        save_png(&img, &hr.join(format!("{name}.png"))).unwrap();
        save_png(&imresize(&img, 0.25), &lr.join(format!("{name}.png"))).unwrap();
    }
    let set = PairedSet::load(&lr, &hr).unwrap();
    let protocol = NtireProtocol {
        border: 4,
        max_shift: 2,
        crop: None,
    };
    let report = evaluate(None, &set, &protocol).unwrap();
    assert!(!report.with_model);
    assert_eq!(report.images.len(), 2);
    assert_eq!(report.images[0].model, report.images[0].bicubic);
    assert!(report.mean.bicubic.psnr_y > 20.0, "{report}");

    let config = SrConfig {
        blocks: 1,
        features: 8,
        ..SrConfig::SRRESNET_16X64
    };
    let model = SrModel::new(config, Device::Cpu).unwrap();
    let report = evaluate(Some(&model), &set, &protocol).unwrap();
    assert!(report.with_model);
    assert!(report.mean.model.psnr_rgb.is_finite());
    let table = report.to_string();
    assert!(
        table.contains("one") && table.contains("mean (2)"),
        "{table}"
    );

    // `train eval --precision bf16` scores the model as the element runs it in bf16: its
    // output moves, by far less than a model's worth.
    let bf16 = evaluate_tiled(
        Some(&model),
        &set,
        &protocol,
        DEFAULT_TILING,
        Precision::Bf16,
    )
    .unwrap();
    let (full, reduced) = (report.mean.model.psnr_y, bf16.mean.model.psnr_y);
    assert!(
        full != reduced && (full - reduced).abs() < 0.5,
        "fp32 {full} dB, bf16 {reduced} dB"
    );
    assert_eq!(bf16.mean.bicubic, report.mean.bicubic);
}

/// Immerkær's estimate finds no noise in a smooth ramp and the σ of Gaussian noise added to a
/// flat grey image (the same noise in R, G and B, so Y's σ is 8 × (65.481 + 128.553 + 24.966)
/// / 255 code values).
#[test]
fn noise_sigma_of_a_ramp_and_of_gaussian_noise() {
    let ramp = Tensor::linspace(0.2, 0.8, 64, (Kind::Double, Device::Cpu))
        .view([1, 1, 64])
        .expand([3, 48, 64], false);
    assert!(noise_sigma(&ramp) < 1e-9, "{}", noise_sigma(&ramp));

    tch::manual_seed(5);
    let noise = Tensor::randn([1, 256, 256], (Kind::Double, Device::Cpu)) * (8.0 / 255.0);
    let noisy = (noise + 0.5).expand([3, 256, 256], false);
    let expected = 8.0 * (65.481 + 128.553 + 24.966) / 255.0;
    let got = noise_sigma(&noisy);
    assert!(
        (got - expected).abs() < 0.05 * expected,
        "σ {got}, expected {expected}"
    );
}
