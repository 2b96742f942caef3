//! The explicit G_s2r and the power spectra it is fitted and judged on.

mod common;

use common::{
    args, assert_same_state, ellipse_scene, eval_args, explicit_overrides, final_state, gaussian,
    report, temp_dir, tiny_options, write_images, Ellipse,
};
use cyclesr_train::archs::adversarial_fit;
use cyclesr_train::archs::degradation::{
    chroma_noise_sigma, level_at_brightness, near_identity, symmetric_kernel, CameraDegradation,
    Compression, DegradationConfig, ExplicitDegradation, KernelGrid, NoiseBrightness, NoiseLevel,
    SourceStorage, TILE_MEAN_RANGE,
};
use cyclesr_train::data::{downscale_taps, imresize, FootageCodec, Rgb8};
use cyclesr_train::degrade::{gaussian_kernel, h264_roundtrip, jpeg_roundtrip};
use cyclesr_train::eval::{run, EvalArgs};
use cyclesr_train::metrics::rgb_to_y;
use cyclesr_train::spectrum::{high_band_energy, mean_power_spectrum};
use cyclesr_train::trainer::{fit, FitArgs, LATEST};
use rand::SeedableRng;
use tch::{Device, Kind, Tensor};

const CPU: (Kind, Device) = (Kind::Float, Device::Cpu);

fn uniform(shape: &[i64], seed: u64) -> Tensor {
    use rand::Rng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let count: i64 = shape.iter().product();
    let values: Vec<f32> = (0..count).map(|_| rng.random::<f32>()).collect();
    Tensor::from_slice(&values).view(shape)
}

#[test]
fn symmetric_kernel_is_a_point_symmetric_blur_and_starts_near_the_identity() {
    let free = gaussian(&[5, 5], 1) * 3.0;
    let k = symmetric_kernel(&free);
    assert!((k.sum(Kind::Double).double_value(&[]) - 1.0).abs() < 1e-6);
    assert!(k.min().double_value(&[]) >= 0.0);
    let asymmetry = (&k - k.flip([0, 1])).abs().max().double_value(&[]);
    assert!(asymmetry < 1e-7, "{asymmetry}");

    // exp(-4) relative weight on the 4 neighbours, exp(-8) on the diagonals.
    let start = symmetric_kernel(&near_identity(5, Device::Cpu));
    let centre = 1.0 / (1.0 + 4.0 * (-4f64).exp() + 4.0 * (-8f64).exp() + 4.0 * (-16f64).exp());
    assert!(
        (start.double_value(&[2, 2]) - centre).abs() < 1e-4,
        "{start}"
    );
    assert!(centre > 0.93);
}

#[test]
fn white_noise_has_a_flat_spectrum_at_its_variance() {
    let sigma = 0.1;
    let noise = gaussian(&[512, 1, 32, 32], 2) * sigma;
    let spectrum = mean_power_spectrum(&noise);
    // Bins are chi-square with 2·512 degrees of freedom, less the windowing: within 15%.
    let (low, high) = (
        spectrum.min().double_value(&[]),
        spectrum.max().double_value(&[]),
    );
    let mean = spectrum.mean(Kind::Double).double_value(&[]);
    assert!((mean / (sigma * sigma) - 1.0).abs() < 0.05, "mean {mean}");
    // The DC bin is removed with each patch's mean; every other bin is near σ².
    let others = spectrum.view(-1).narrow(0, 1, 32 * 32 - 1);
    let worst = (others / (sigma * sigma) - 1.0)
        .abs()
        .max()
        .double_value(&[]);
    assert!(worst < 0.3, "bins from {low} to {high}");

    // On an image, in Y code values²: blur lowers the high band, noise raises it.
    let image = Tensor::full([3, 64, 64], 0.5, CPU) + gaussian(&[1, 64, 64], 3) * 0.02;
    let flat = Tensor::full([3, 64, 64], 0.5, CPU);
    let noisy = high_band_energy(&image).unwrap();
    // Y = 16 + 219·luma: grey noise of σ 0.02 has σ_Y = 219 · 0.02 = 4.38 code values.
    assert!((noisy / 4.38f64.powi(2) - 1.0).abs() < 0.15, "{noisy}");
    assert!(high_band_energy(&flat).unwrap() < 1e-6);
    let kernel = gaussian_kernel(1.0, 1.0, 0.0);
    let blurred = image
        .unsqueeze(0)
        .conv2d(
            &kernel.view([1, 1, 7, 7]).repeat([3, 1, 1, 1]),
            None::<Tensor>,
            [1, 1],
            [3, 3],
            [1, 1],
            3,
        )
        .squeeze_dim(0);
    assert!(high_band_energy(&blurred.narrow(1, 4, 56).narrow(2, 4, 56)).unwrap() < noisy / 10.0);
}

/// `[n, 3, 32, 32]` patches with a natural image's 1/f amplitude spectrum, a quarter of them
/// flat (a sky or a wall), in [0, 1].
fn natural_patches(n: i64, seed: u64) -> Tensor {
    oriented_patches(n, seed, 0.0)
}

/// Like [`natural_patches`] (a quarter flat), with `exp(tilt · cos 2θ)` times more power at
/// orientation θ in the textured ones: scenes with more structure one way than the other.
fn oriented_patches(n: i64, seed: u64, tilt: f64) -> Tensor {
    textured_patches(n, seed, tilt, 32)
}

/// [`oriented_patches`] of `side` px.
fn textured_patches(n: i64, seed: u64, tilt: f64, side: i64) -> Tensor {
    let white = gaussian(&[n, 1, side, side], seed);
    let f = Tensor::fft_fftfreq(side, 1.0, CPU);
    let (fy, fx) = (f.unsqueeze(1), f.unsqueeze(0));
    let radius = (fy.square() + fx.square())
        .sqrt()
        .clamp_min(1.0 / side as f64);
    let power = ((fy.atan2(&fx) * 2.0).cos() * tilt).exp();
    let field = (white.fft_fft2(None::<&[i64]>, [-2i64, -1], "backward") * power.sqrt() / radius)
        .fft_ifft2(None::<&[i64]>, [-2i64, -1], "backward")
        .real();
    let field = &field / field.std(true) * 0.1;
    let textured = (field.repeat([1, 3, 1, 1]) + 0.5).clamp(0.0, 1.0);
    let flat_count = n / 4;
    let flat = uniform(&[flat_count, 3, 1, 1], seed + 1) * 0.4 + 0.3;
    Tensor::cat(
        &[
            textured.narrow(0, 0, n - flat_count),
            flat.expand([flat_count, 3, side, side], false).contiguous(),
        ],
        0,
    )
}

/// Footage whose scenes hold more structure at one orientation than the photos', and no blur:
/// a scalar content gain lets the kernel take the difference for a direction of blur; the
/// orientation gain measures it and leaves the kernel near the identity.
#[test]
fn orientation_gain_keeps_content_direction_out_of_the_kernel() {
    use cyclesr_train::archs::degradation::ContentGain;
    let real = oriented_patches(512, 31, 0.7) + gaussian(&[512, 3, 32, 32], 32) * (1.0 / 255.0);
    let synthetic = natural_patches(512, 33);
    let fit = |content_gain| {
        let config = DegradationConfig {
            noise_tiles: 64,
            fit_steps: 200,
            content_gain,
            ..DegradationConfig::default()
        };
        CameraDegradation::fit(0, &real, &synthetic, &config, SourceStorage::default()).unwrap()
    };
    let (scalar, _) = fit(ContentGain::Scalar);
    let (oriented, summary) = fit(ContentGain::Orientation);
    let (major, minor, _) = scalar.kernel_spread();
    let (o_major, o_minor, _) = oriented.kernel_spread();
    // Power e^0.7 against e^-0.7 at the two extreme orientations: a gain ratio of 4.06.
    let anisotropy = summary.content_anisotropy.unwrap();
    assert!((2.5..6.0).contains(&anisotropy), "anisotropy {anisotropy}");
    assert!(
        major - minor > 0.2,
        "scalar gain: kernel σ {major} x {minor}"
    );
    assert!(
        o_major - o_minor < (major - minor) / 2.0,
        "orientation gain: {o_major} x {o_minor}"
    );

    // 12-px patches hold the low band on the axes alone: the gain stays scalar, and says so.
    let crop = |t: &Tensor| t.narrow(2, 0, 12).narrow(3, 0, 12);
    let small = |content_gain| {
        let config = DegradationConfig {
            kernel: 5,
            noise_tile: 4,
            noise_tiles: 64,
            fit_steps: 50,
            content_gain,
            ..DegradationConfig::default()
        };
        CameraDegradation::fit(
            0,
            &crop(&real),
            &crop(&synthetic),
            &config,
            SourceStorage::default(),
        )
        .unwrap()
    };
    let ((scalar, _), (oriented, summary)) =
        (small(ContentGain::Scalar), small(ContentGain::Orientation));
    assert!(summary.content_anisotropy.is_none());
    assert!(scalar.kernel.equal(&oriented.kernel));
}

#[test]
fn fit_recovers_a_known_blur_and_the_real_noise() {
    let sigma = 4.0 / 255.0;
    let kernel = gaussian_kernel(1.0, 1.0, 0.0);
    let real_clean = natural_patches(1024, 3)
        .pad([3, 3, 3, 3], "replicate", None)
        .conv2d(
            &kernel.view([1, 1, 7, 7]).repeat([3, 1, 1, 1]),
            None::<Tensor>,
            [1, 1],
            [0, 0],
            [1, 1],
            3,
        );
    let real = &real_clean + gaussian(&[1024, 3, 32, 32], 4) * sigma;
    let synthetic = natural_patches(1024, 5);

    let config = DegradationConfig {
        noise_tiles: 256,
        fit_steps: 400,
        ..DegradationConfig::default()
    };
    let (degradation, summary) =
        CameraDegradation::fit(0, &real, &synthetic, &config, SourceStorage::default()).unwrap();
    // i.i.d. RGB noise of σ: σ_Y = 219 · σ · |(0.299, 0.587, 0.114)| = 2.30 code values.
    let expected_sigma =
        219.0 * sigma * (0.299f64.powi(2) + 0.587f64.powi(2) + 0.114f64.powi(2)).sqrt();
    assert!(
        (degradation.noise_sigma() / expected_sigma - 1.0).abs() < 0.1,
        "noise σ {} against {expected_sigma}",
        degradation.noise_sigma()
    );
    assert!((summary.noise_sigma - degradation.noise_sigma()).abs() < 1e-9);
    assert!(
        summary.log_spectrum_error_fitted < summary.log_spectrum_error_identity / 5.0,
        "{summary:?}"
    );
    let (major, minor, _) = degradation.kernel_spread();
    assert!(
        (0.75..=1.25).contains(&minor) && (0.75..=1.25).contains(&major),
        "kernel σ {major} x {minor}"
    );

    // G_s2r(synthetic) has the real patches' high-band energy and noise.
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let kernel = degradation.kernel.shallow_clone();
    let explicit = ExplicitDegradation {
        cameras: vec![degradation],
        hr_grid: None,
    };
    let translated = explicit.forward(&synthetic, &mut rng).unwrap();
    let ratio = mosaic_high_band(&translated, 24) / mosaic_high_band(&real, 24);
    assert!((ratio - 1.0).abs() < 0.15, "high-band ratio {ratio}");

    // Point-symmetric kernels do not move the image: a pseudo pair stays aligned.
    assert!(
        (&kernel - kernel.flip([0, 1]))
            .abs()
            .max()
            .double_value(&[])
            < 1e-7
    );
}

#[test]
fn fit_names_footage_it_cannot_measure() {
    let dark = Tensor::zeros([16, 3, 32, 32], CPU);
    let e = ExplicitDegradation::fit(
        &[(2, dark)],
        &natural_patches(16, 1),
        &DegradationConfig::default(),
        &|_| SourceStorage::default(),
    )
    .err()
    .unwrap();
    let text = format!("{e:#}");
    assert!(
        text.contains("source 2") && text.contains("too dark or too bright"),
        "{text}"
    );
    let e = DegradationConfig {
        kernel: 4,
        ..DegradationConfig::default()
    }
    .validate()
    .unwrap_err();
    assert!(e.to_string().contains("networks.degradation.kernel"), "{e}");
    let e = DegradationConfig {
        jpeg_quality: Some([90, 30]),
        ..DegradationConfig::default()
    }
    .validate()
    .unwrap_err();
    assert!(e.to_string().contains("jpeg_quality [90, 30]"), "{e}");
}

/// With `jpeg_quality`, G_s2r's output is the JPEG round trip of its uncompressed output at a
/// quality drawn from the range, which removes high-band energy.
#[test]
fn compression_follows_blur_and_noise() {
    let identity = Tensor::ones([1, 1], CPU);
    let silent = Tensor::zeros([1, 3, 16, 16], CPU);
    let camera = |compression| CameraDegradation {
        source: 0,
        kernel: identity.shallow_clone(),
        noise: silent.shallow_clone(),
        noise_scales: None,
        noise_by_brightness: None,
        compression,
        jpeg_qualities: None,
    };
    let x = natural_patches(4, 11).narrow(2, 0, 24);
    let plain = ExplicitDegradation {
        cameras: vec![camera(None)],
        hr_grid: None,
    };
    let compressed = ExplicitDegradation {
        cameras: vec![camera(Some(Compression::Jpeg([20, 20])))],
        hr_grid: None,
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let out = compressed.forward(&x, &mut rng).unwrap();
    assert_eq!(out.size(), x.size());
    let uncompressed = plain
        .forward(&x, &mut rand::rngs::StdRng::seed_from_u64(3))
        .unwrap();
    for i in 0..4 {
        let expected = jpeg_roundtrip(&Rgb8::from_tensor(&uncompressed.get(i)).unwrap(), 20)
            .unwrap()
            .to_tensor();
        assert!(out.get(i).equal(&expected), "image {i}");
    }
    let energy = |t: &Tensor| -> f64 { (0..4).map(|i| high_band_energy(&t.get(i)).unwrap()).sum() };
    assert!(energy(&out) < 0.8 * energy(&uncompressed));

    // H.264 footage: x264's intra round trip at a quantizer from the range.
    let h264 = ExplicitDegradation {
        cameras: vec![camera(Some(Compression::H264([36, 36])))],
        hr_grid: None,
    };
    assert_eq!(
        h264.cameras[0].describe_compression(),
        "H.264 intra at a quantizer drawn from 36–36"
    );
    let out = h264
        .forward(&x, &mut rand::rngs::StdRng::seed_from_u64(3))
        .unwrap();
    assert_eq!(out.size(), x.size());
    for i in 0..4 {
        let expected = h264_roundtrip(&Rgb8::from_tensor(&uncompressed.get(i)).unwrap(), 36)
            .unwrap()
            .to_tensor();
        assert!(out.get(i).equal(&expected), "image {i}");
    }
    assert!(energy(&out) < 0.8 * energy(&uncompressed));
}

/// Each source's codec as it is stored: none when lossless, H.264 at `h264_quantizer` when
/// marked so, JPEG at `jpeg_quality` otherwise (none without a range).
#[test]
fn compression_follows_how_the_footage_is_stored() {
    let config = DegradationConfig {
        jpeg_quality: Some([30, 95]),
        ..DegradationConfig::default()
    };
    assert_eq!(config.h264_quantizer, [20, 40]);
    assert_eq!(config.compression(true, FootageCodec::Jpeg), None);
    assert_eq!(config.compression(true, FootageCodec::H264), None);
    assert_eq!(
        config.compression(false, FootageCodec::Jpeg),
        Some(Compression::Jpeg([30, 95]))
    );
    assert_eq!(
        config.compression(false, FootageCodec::H264),
        Some(Compression::H264([20, 40]))
    );
    let no_jpeg = DegradationConfig::default();
    assert_eq!(no_jpeg.compression(false, FootageCodec::Jpeg), None);
    assert_eq!(
        no_jpeg.compression(false, FootageCodec::H264),
        Some(Compression::H264([20, 40]))
    );
    for bad in [[30, 20], [40, 51]] {
        let e = DegradationConfig {
            h264_quantizer: bad,
            ..DegradationConfig::default()
        }
        .validate()
        .unwrap_err();
        let [lo, hi] = bad;
        assert!(
            e.to_string()
                .contains(&format!("h264_quantizer [{lo}, {hi}]")),
            "{e}"
        );
    }
}

/// Mode `explicit` fits stage 1 once, keeps it in the state (resume does not refit; the JPEG
/// qualities drawn resume too) and `eval --translator` reports it, with its kernel on either
/// grid.
#[test]
fn explicit_mode_fits_once_resumes_exactly_and_is_reported() {
    for (grid, kernel) in [
        ("lr", "5x5 kernel with"),
        ("hr", "17x17 kernel on the HR grid"),
    ] {
        explicit_mode_on_grid(grid, kernel);
    }
}

fn explicit_mode_on_grid(grid: &str, kernel: &str) {
    let overrides = [
        explicit_overrides(),
        vec![format!("networks.degradation.kernel_grid=\"{grid}\"")],
    ]
    .concat();
    let straight = temp_dir(&format!("explicit-straight-{grid}"));
    fit(&FitArgs {
        overrides: overrides.clone(),
        ..args(tiny_options(&straight, "explicit", 4))
    })
    .unwrap();
    assert!(straight.join("run/degradation-fit.json").exists());

    let split = temp_dir(&format!("explicit-split-{grid}"));
    let options = tiny_options(&split, "explicit", 4);
    fit(&FitArgs {
        overrides: overrides.clone(),
        max_iterations: Some(3),
        ..args(options.clone())
    })
    .unwrap();
    fit(&FitArgs {
        overrides: overrides.clone(),
        resume: Some("latest".into()),
        ..args(options)
    })
    .unwrap();
    let (a, b) = (final_state(&straight), final_state(&split));
    assert!(a.contains_key("degradation/0.kernel") && a.contains_key("degradation/0.noise"));
    assert!(!a.keys().any(|k| k.starts_with("translators/")));
    assert_same_state(&a, &b);

    write_images(&straight.join("bench/hr"), 2, 44, 36, 5);
    write_images(&straight.join("bench/lr"), 2, 11, 9, 5);
    run(&EvalArgs {
        translator: Some(straight.join("run/checkpoints").join(LATEST)),
        ..eval_args(&straight)
    })
    .unwrap();
    let report = report(&straight);
    // No G_r2s: only bicubic is scored.
    assert_eq!(report["with_model"], false);
    let d = &report["degradation"];
    assert!(
        d["stage1"]
            .as_str()
            .unwrap()
            .starts_with(&format!("explicit G_s2r, source 0: {kernel}")),
        "{d}"
    );
    assert!(
        d["stage1"]
            .as_str()
            .unwrap()
            .ends_with("JPEG at a quality drawn from 30–95"),
        "{d}"
    );
    for key in [
        "high_band_synthetic",
        "high_band_translated",
        "high_band_real",
        "noise_translated",
    ] {
        let v = d[key].as_f64().unwrap();
        assert!(v.is_finite() && v >= 0.0, "{key} = {v}");
    }
    assert_eq!(d["draws"], 1);

    // Several draws of the random G_s2r: the means move, the photos' own figures do not.
    run(&EvalArgs {
        translator: Some(straight.join("run/checkpoints").join(LATEST)),
        translator_draws: 4,
        ..eval_args(&straight)
    })
    .unwrap();
    let drawn = common::report(&straight)["degradation"].clone();
    assert_eq!(drawn["draws"], 4);
    for key in [
        "noise_synthetic",
        "noise_real",
        "high_band_real",
        "psnr_synthetic",
    ] {
        assert_eq!(drawn[key], d[key], "{key}");
    }
    assert_ne!(drawn["noise_translated"], d["noise_translated"]);
}

/// Each real LR source is its own camera: two sources of different noise give two banks, and
/// a batch mixes them.
#[test]
fn each_source_is_fitted_as_its_own_camera() {
    let clean = natural_patches(256, 7);
    let quiet = &clean + gaussian(&[256, 3, 32, 32], 8) * (2.0 / 255.0);
    let loud = &clean + gaussian(&[256, 3, 32, 32], 9) * (8.0 / 255.0);
    let config = DegradationConfig {
        noise_tiles: 64,
        fit_steps: 50,
        ..DegradationConfig::default()
    };
    let (explicit, summaries) = ExplicitDegradation::fit(
        &[(0, quiet), (3, loud)],
        &natural_patches(256, 10),
        &config,
        &|source| SourceStorage {
            lossless: false,
            compression: (source == 3).then_some(Compression::Jpeg([50, 90])),
        },
    )
    .unwrap();
    assert_eq!(explicit.cameras[0].compression, None);
    assert_eq!(
        explicit.cameras[1].compression,
        Some(Compression::Jpeg([50, 90]))
    );
    assert_eq!(summaries.len(), 2);
    let sources: Vec<usize> = explicit.cameras.iter().map(|c| c.source).collect();
    assert_eq!(sources, [0, 3]);
    let ratio = explicit.cameras[1].noise_sigma() / explicit.cameras[0].noise_sigma();
    assert!((3.0..5.0).contains(&ratio), "noise ratio {ratio}");

    // Flat grey in: the output's noise per image is one camera's or the other's.
    let flat = Tensor::full([16, 3, 32, 32], 0.5, CPU);
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let out = explicit.forward(&flat, &mut rng).unwrap();
    let sigmas: Vec<f64> = (0..16)
        .map(|i| out.get(i).std(true).double_value(&[]) * 255.0)
        .collect();
    assert!(
        sigmas.iter().any(|&s| s < 3.5) && sigmas.iter().any(|&s| s > 6.0),
        "{sigmas:?}"
    );

    // The state round trip keeps both cameras.
    let tensors = explicit.tensors().into_iter().collect();
    let lossless_first = |source: usize| (source != 0).then_some(Compression::H264([24, 38]));
    let back = ExplicitDegradation::from_tensors(tensors, &lossless_first, Device::Cpu).unwrap();
    assert_eq!(back.cameras[0].compression, None);
    assert_eq!(
        back.cameras[1].compression,
        Some(Compression::H264([24, 38]))
    );
    assert_eq!(back.cameras.len(), 2);
    assert_eq!(back.cameras[1].source, 3);
}

/// Texture shared by the three channels cancels in the chroma estimate; the Y estimate the
/// stage-1 report uses reads it as noise.
#[test]
fn chroma_noise_sigma_sees_the_noise_through_texture() {
    use cyclesr_train::metrics::noise_sigma;
    let sigma = 3.0;
    let textured = natural_patches(64, 21).narrow(0, 0, 48);
    // A coloured scene: the channels carry the texture at different gains.
    let tinted = &textured * Tensor::from_slice(&[0.9f32, 1.0, 1.1]).view([1, 3, 1, 1]);
    let noisy = &tinted + gaussian(&[48, 3, 32, 32], 22) * (sigma / 255.0);
    let levels = chroma_noise_sigma(&noisy).unwrap();
    assert_eq!(levels.size(), [48]);
    let mean = levels.mean(Kind::Float).double_value(&[]);
    assert!(
        (mean / sigma - 1.0).abs() < 0.1,
        "chroma σ {mean} against {sigma}"
    );
    let worst = (levels / sigma - 1.0).abs().max().double_value(&[]);
    assert!(worst < 0.3, "a patch off by {worst}");
    // Y's Laplacian on the same patches: σ_Y of the noise alone is 219/255 · 3 · 0.67 = 1.73.
    let y_sigma = noise_sigma(&noisy.narrow(0, 0, 1).squeeze_dim(0));
    assert!(
        y_sigma > 3.0,
        "the Y estimate {y_sigma} should read the texture"
    );

    let e = chroma_noise_sigma(&Tensor::zeros([2, 1, 8, 8], CPU)).unwrap_err();
    assert!(e.to_string().contains("1 channels"), "{e}");
}

/// With `noise_level = "chroma"` a camera whose footage is half quiet, half loud draws both
/// levels, where the bank alone has only the quiet one; compressed cameras keep the bank's;
/// the levels survive the state round trip and bad ones are refused.
#[test]
fn chroma_noise_levels_follow_the_loud_footage() {
    let quiet = natural_patches(128, 23) + gaussian(&[128, 3, 32, 32], 24) * (2.0 / 255.0);
    let loud = natural_patches(128, 28) + gaussian(&[128, 3, 32, 32], 25) * (8.0 / 255.0);
    let real = Tensor::cat(&[quiet, loud], 0);
    let synthetic = natural_patches(256, 26);
    let config = DegradationConfig {
        noise_tiles: 64,
        fit_steps: 50,
        noise_level: NoiseLevel::Chroma,
        ..DegradationConfig::default()
    };
    let lossless = SourceStorage {
        lossless: true,
        compression: None,
    };
    let (camera, summary) =
        CameraDegradation::fit(0, &real, &synthetic, &config, lossless).unwrap();
    // The flattest tiles are the quiet half's.
    let bank = camera.noise_sigma() / (219.0 * 0.67 / 255.0);
    assert!((bank / 2.0 - 1.0).abs() < 0.25, "bank σ {bank} (RGB)");
    let [lo, _, hi] = summary.noise_scale_percentiles.unwrap();
    assert!(
        (0.8..1.25).contains(&lo) && (3.0..5.0).contains(&hi),
        "scales {lo}..{hi}"
    );

    let flat = Tensor::full([32, 3, 32, 32], 0.5, CPU);
    let sigmas = |explicit: &ExplicitDegradation| -> Vec<f64> {
        let out = explicit
            .forward(&flat, &mut rand::rngs::StdRng::seed_from_u64(27))
            .unwrap();
        (0..32)
            .map(|i| out.get(i).std(true).double_value(&[]) * 255.0)
            .collect()
    };
    let scaled = ExplicitDegradation {
        cameras: vec![camera],
        hr_grid: None,
    };
    let drawn = sigmas(&scaled);
    assert!(
        drawn.iter().any(|&s| s < 3.0) && drawn.iter().any(|&s| s > 6.0),
        "{drawn:?}"
    );

    // SourceStorage not marked lossless may have lost its chroma noise to a codec: the bank's level.
    let compressed = SourceStorage {
        lossless: false,
        compression: Some(Compression::Jpeg([90, 90])),
    };
    let (compressed, summary) =
        CameraDegradation::fit(0, &real, &synthetic, &config, compressed).unwrap();
    assert!(compressed.noise_scales.is_none() && summary.noise_scale_percentiles.is_none());

    // Greyscale footage has no chroma noise to measure: the bank's level stays.
    let grey = rgb_to_y(&real).repeat([1, 3, 1, 1]);
    let (grey, summary) = CameraDegradation::fit(0, &grey, &synthetic, &config, lossless).unwrap();
    assert!(grey.noise_scales.is_none() && summary.noise_scale_percentiles.is_none());

    let tensors: std::collections::HashMap<String, Tensor> = scaled.tensors().into_iter().collect();
    assert!(tensors.contains_key("0.noise_scales"));
    let back = ExplicitDegradation::from_tensors(tensors, &|_| None, Device::Cpu).unwrap();
    assert_eq!(sigmas(&back), drawn);
    let mut bad: std::collections::HashMap<String, Tensor> = scaled.tensors().into_iter().collect();
    bad.insert("0.noise_scales".into(), Tensor::from_slice(&[1.0f32, -0.5]));
    let e = ExplicitDegradation::from_tensors(bad, &|_| None, Device::Cpu)
        .err()
        .unwrap();
    assert!(e.to_string().contains("negative or non-finite"), "{e}");
}

/// Flat grey patches, one level per patch drawn from [0.2, 0.8], with noise of σ
/// `sigma_at_half` · √(level / 0.5) in each channel: a sensor's shot noise.
fn shot_noise_patches(n: i64, sigma_at_half: f64, seed: u64) -> Tensor {
    let levels = uniform(&[n, 1, 1, 1], seed) * 0.6 + 0.2;
    let sigma = (&levels / 0.5).sqrt() * sigma_at_half;
    &levels + gaussian(&[n, 3, 32, 32], seed + 1) * sigma
}

/// The luma of an RGB grey `level`, as the brightness nodes read it (studio range).
fn grey_luma(level: f64) -> f64 {
    (16.0 + 219.0 * level) / 255.0
}

/// Piecewise linear between evenly spaced nodes over the tiles' brightness range, constant
/// beyond, checked by hand on three nodes.
#[test]
fn noise_level_is_read_between_brightness_nodes() {
    let (lo, hi) = TILE_MEAN_RANGE;
    let levels = Tensor::from_slice(&[1.0f32, 2.0, 4.0]);
    let quarter = lo + (hi - lo) / 4.0;
    let three_quarters = lo + 3.0 * (hi - lo) / 4.0;
    let luma = Tensor::from_slice(&[0.0, lo, quarter, (lo + hi) / 2.0, three_quarters, hi, 1.0])
        .to_kind(Kind::Float);
    let read = Vec::<f32>::try_from(level_at_brightness(&levels, &luma)).unwrap();
    let expected = [1.0, 1.0, 1.5, 2.0, 3.0, 4.0, 4.0];
    for (r, e) in read.iter().zip(expected) {
        assert!(
            (f64::from(*r) - e).abs() < 1e-5,
            "{read:?} against {expected:?}"
        );
    }
}

/// With `noise_brightness = "footage"`, footage whose noise grows as the root of brightness
/// gives a curve that grows so, and G_s2r's noise on a flat grey follows it; compressed
/// footage and the default keep one level; the curve survives the state and bad ones are
/// refused.
#[test]
fn noise_follows_brightness_as_the_footage_does() {
    let real = shot_noise_patches(512, 8.0 / 255.0, 61);
    let synthetic = natural_patches(512, 62);
    let config = DegradationConfig {
        noise_tiles: 256,
        fit_steps: 20,
        noise_level: NoiseLevel::Bank,
        noise_brightness: NoiseBrightness::Footage,
        ..DegradationConfig::default()
    };
    let lossless = SourceStorage {
        lossless: true,
        compression: None,
    };
    let (camera, _) = CameraDegradation::fit(0, &real, &synthetic, &config, lossless).unwrap();
    let curve = camera.noise_by_brightness.as_ref().expect("a curve");
    let at = |level: f64| {
        level_at_brightness(curve, &Tensor::from_slice(&[grey_luma(level) as f32]))
            .double_value(&[0])
    };
    let ratio = at(0.8) / at(0.2);
    assert!(
        (ratio / 2.0 - 1.0).abs() < 0.15,
        "curve ratio {ratio}, expected 2"
    );
    assert!(camera.describe_noise().contains("by brightness"));

    let noise_sigma = |explicit: &ExplicitDegradation, level: f64| -> f64 {
        let flat = Tensor::full([16, 3, 32, 32], level, CPU);
        let out = explicit
            .forward(&flat, &mut rand::rngs::StdRng::seed_from_u64(63))
            .unwrap();
        (out - level).std(true).double_value(&[]) * 255.0
    };
    let explicit = ExplicitDegradation {
        cameras: vec![camera],
        hr_grid: None,
    };
    let (dark, bright) = (noise_sigma(&explicit, 0.2), noise_sigma(&explicit, 0.8));
    assert!(
        (bright / dark / 2.0 - 1.0).abs() < 0.15,
        "σ {dark} at 0.2 and {bright} at 0.8, expected twice"
    );
    assert!(
        (bright / (8.0 * 0.8f64.sqrt() / 0.5f64.sqrt()) - 1.0).abs() < 0.2,
        "σ {bright} at 0.8"
    );

    // A codec smooths flat regions unevenly: compressed footage keeps one level, as does the
    // default.
    let compressed = SourceStorage {
        lossless: false,
        compression: Some(Compression::Jpeg([90, 90])),
    };
    let (camera, _) = CameraDegradation::fit(0, &real, &synthetic, &config, compressed).unwrap();
    assert!(camera.noise_by_brightness.is_none());
    let uniform_config = DegradationConfig {
        noise_brightness: NoiseBrightness::Uniform,
        ..config
    };
    let (camera, _) =
        CameraDegradation::fit(0, &real, &synthetic, &uniform_config, lossless).unwrap();
    assert!(camera.noise_by_brightness.is_none());

    let tensors: std::collections::HashMap<String, Tensor> =
        explicit.tensors().into_iter().collect();
    assert!(tensors.contains_key("0.noise_by_brightness"));
    let back = ExplicitDegradation::from_tensors(tensors, &|_| None, Device::Cpu).unwrap();
    assert_eq!(noise_sigma(&back, 0.8), bright);
    for bad in [
        Tensor::from_slice(&[1.0f32]),
        Tensor::from_slice(&[1.0f32, 0.0]),
    ] {
        let mut tensors: std::collections::HashMap<String, Tensor> =
            explicit.tensors().into_iter().collect();
        tensors.insert("0.noise_by_brightness".into(), bad);
        let e = ExplicitDegradation::from_tensors(tensors, &|_| None, Device::Cpu)
            .err()
            .unwrap();
        assert!(e.to_string().contains("noise levels by brightness"), "{e}");
    }
}

/// SR_blind's degradations: reproducible from the RNG, different for each image, and strong.
#[test]
fn blind_degradations_follow_the_rng_and_vary_per_image() {
    use cyclesr_train::data::blind_degrade;
    use cyclesr_train::metrics::psnr;
    let x = natural_patches(8, 11);
    let run = |seed| blind_degrade(&x, &mut rand::rngs::StdRng::seed_from_u64(seed)).unwrap();
    let (a, b) = (run(1), run(1));
    assert_eq!(a.size(), x.size());
    assert!(a.equal(&b));
    assert!(!a.equal(&run(2)));
    let psnrs: Vec<f64> = (0..6).map(|i| psnr(&a.get(i), &x.get(i))).collect();
    assert!(psnrs.iter().all(|&p| p < 40.0), "{psnrs:?}");
    let (low, high) = psnrs
        .iter()
        .fold((f64::MAX, f64::MIN), |(l, h), &p| (l.min(p), h.max(p)));
    assert!(high - low > 1.0, "levels do not vary: {psnrs:?}");
}

/// A camera fresh from a spectral fit, as [`adversarial_fit::refine`] takes it: the identity's
/// kernel and a bank of Gaussian tiles of `sigma`.
fn camera_with_bank(sigma: f64, compression: Option<Compression>) -> CameraDegradation {
    CameraDegradation {
        source: 0,
        kernel: symmetric_kernel(&near_identity(5, Device::Cpu)),
        noise: gaussian(&[256, 3, 8, 8], 41) * sigma,
        noise_scales: None,
        noise_by_brightness: None,
        compression,
        jpeg_qualities: None,
    }
}

/// The bank at half the footage's noise: the discriminator sees the grain, and the refinement
/// raises the level towards the footage's. Same seed, same result.
#[test]
fn adversarial_refinement_raises_a_quiet_bank_towards_the_footage() {
    let sigma = 6.0 / 255.0;
    let crop = |t: Tensor| t.narrow(2, 0, 16).narrow(3, 0, 16);
    let real = crop(natural_patches(512, 42) + gaussian(&[512, 3, 32, 32], 43) * sigma);
    let synthetic = crop(natural_patches(512, 44));
    let free = near_identity(5, Device::Cpu);
    let refine = |steps| {
        adversarial_fit::refine(
            camera_with_bank(sigma / 2.0, None),
            &free,
            &real,
            &synthetic,
            None,
            steps,
            7,
        )
        .unwrap()
    };
    let (camera, summary) = refine(300);
    assert_eq!(summary.steps, 300);
    assert!(
        (1.4..2.6).contains(&summary.noise_gain),
        "noise gain {} for a bank at half the footage's level",
        summary.noise_gain
    );
    let bank = camera_with_bank(sigma / 2.0, None).noise;
    assert!(camera
        .noise
        .allclose(&(bank * summary.noise_gain), 1e-5, 1e-7, false));
    assert!((camera.kernel.sum(Kind::Double).double_value(&[]) - 1.0).abs() < 1e-5);

    let ((a, sa), (b, sb)) = (refine(20), refine(20));
    assert!(a.kernel.equal(&b.kernel) && a.noise.equal(&b.noise));
    assert_eq!(sa.noise_gain, sb.noise_gain);

    // Through the fit's options; patches too small for the discriminator are named.
    let config = DegradationConfig {
        kernel: 5,
        noise_tile: 4,
        noise_tiles: 64,
        fit_steps: 10,
        adversarial_steps: 2,
        ..DegradationConfig::default()
    };
    let (_, summary) =
        CameraDegradation::fit(0, &real, &synthetic, &config, SourceStorage::default()).unwrap();
    assert_eq!(summary.adversarial.map(|a| a.steps), Some(2));
    let crop6 = |t: &Tensor| t.narrow(2, 0, 6).narrow(3, 0, 6);
    let e = CameraDegradation::fit(
        0,
        &crop6(&real),
        &crop6(&synthetic),
        &config,
        SourceStorage::default(),
    )
    .err()
    .unwrap();
    assert!(format!("{e:#}").contains("6-px"), "{e:#}");
}

/// G_s2r's JPEG has no gradient of its own: with a kernel that asks for one, the output is
/// still the JPEG round trip, and the kernel gets the gradient of the uncompressed output.
#[test]
fn jpeg_passes_the_gradient_straight_through() {
    let synthetic = natural_patches(4, 45);
    let free = near_identity(5, Device::Cpu).set_requires_grad(true);
    let degraded = |kernel: Tensor| {
        let explicit = ExplicitDegradation {
            cameras: vec![CameraDegradation {
                kernel,
                ..camera_with_bank(2.0 / 255.0, Some(Compression::Jpeg([50, 50])))
            }],
            hr_grid: None,
        };
        explicit
            .forward(&synthetic, &mut rand::rngs::StdRng::seed_from_u64(3))
            .unwrap()
    };
    let with_gradient = degraded(symmetric_kernel(&free));
    let without = tch::no_grad(|| degraded(symmetric_kernel(&free)));
    assert!(!without.requires_grad());
    assert!((&with_gradient - &without).abs().max().double_value(&[]) < 1e-6);
    (with_gradient * &synthetic).sum(Kind::Float).backward();
    let grad = free.grad();
    assert!(
        grad.abs().max().double_value(&[]) > 0.0 && grad.isfinite().all().int64_value(&[]) == 1
    );
}

/// [`high_band_energy`] of the first `rows · 32` of `[N, 3, 32, 32]` patches laid out as one
/// image of `rows` rows of 32.
fn mosaic_high_band(patches: &Tensor, rows: i64) -> f64 {
    let image = patches
        .narrow(0, 0, rows * 32)
        .view([rows, 32, 3, 32, 32])
        .permute([2, 0, 3, 1, 4])
        .reshape([3, rows * 32, 1024]);
    high_band_energy(&image).unwrap()
}

/// `x` `[N, 3, h, w]` blurred by `kernel` `[k, k]` (odd), borders replicated.
fn blurred(x: &Tensor, kernel: &Tensor) -> Tensor {
    let k = kernel.size()[0];
    x.pad([k / 2; 4], "replicate", None).conv2d(
        &kernel.view([1, 1, k, k]).repeat([3, 1, 1, 1]),
        None::<Tensor>,
        [1, 1],
        [0, 0],
        [1, 1],
        3,
    )
}

/// The bicubic downscale's filter: the cubic stretched to 4·scale input px (its ends are
/// zeros: 4·scale taps between them at even scales, one centred on the output and 4·scale − 2
/// around it at odd ones), symmetric, summing to 1.
#[test]
fn downscale_taps_are_the_bicubic_antialiasing_filter() {
    for scale in [2, 3, 4] {
        let taps = downscale_taps(scale);
        let first = taps.iter().position(|&w| w != 0.0).unwrap();
        let last = taps.iter().rposition(|&w| w != 0.0).unwrap();
        let inner = &taps[first..=last];
        assert_eq!(
            inner.len() as i64,
            4 * scale - scale % 2,
            "×1/{scale}: {taps:?}"
        );
        assert!((taps.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        for (a, b) in inner.iter().zip(inner.iter().rev()) {
            assert!((a - b).abs() < 1e-12, "×1/{scale}: {taps:?}");
        }
    }
}

/// With the identity kernel, an HR-grid G_s2r is the LR-grid one on bicubic↓HR: the same
/// image and the same noise draws. HR sides it cannot downscale are refused.
#[test]
fn hr_grid_with_the_identity_kernel_is_the_lr_grid_on_the_downscale() {
    let hr = textured_patches(4, 9, 0.0, 64);
    let camera = |k: i64| {
        let kernel = Tensor::zeros([k, k], CPU);
        let _ = kernel.get(k / 2).get(k / 2).fill_(1.0);
        CameraDegradation {
            source: 0,
            kernel,
            noise: gaussian(&[8, 3, 4, 4], 1) * 0.02,
            noise_scales: None,
            noise_by_brightness: None,
            compression: None,
            jpeg_qualities: None,
        }
    };
    let on_lr = ExplicitDegradation {
        cameras: vec![camera(3)],
        hr_grid: None,
    };
    let on_hr = ExplicitDegradation {
        cameras: vec![camera(5)],
        hr_grid: Some(2),
    };
    let synthetic = imresize(&hr, 0.5);
    let draw = |g: &ExplicitDegradation| {
        g.forward(
            g.input(&hr, &synthetic),
            &mut rand::rngs::StdRng::seed_from_u64(3),
        )
        .unwrap()
    };
    let (a, b) = (draw(&on_lr), draw(&on_hr));
    assert_eq!(b.size(), [4, 3, 32, 32]);
    assert!(a.allclose(&b, 1e-6, 1e-6, false));

    let odd = hr.narrow(3, 0, 63);
    let message = on_hr
        .forward(&odd, &mut rand::rngs::StdRng::seed_from_u64(3))
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("multiples of 2") && message.contains("63x64"),
        "{message}"
    );
}

/// An HR-grid G_s2r is the bicubic downscale of the HR blurred by its kernel (borders
/// replicated), whatever way it convolves.
#[test]
fn hr_grid_blurs_the_hr_then_downscales_it() {
    let hr = textured_patches(2, 11, 0.0, 64);
    let kernel = gaussian_kernel(2.0, 0.7, 30.0);
    let k = kernel.size()[0];
    let on_hr = ExplicitDegradation {
        cameras: vec![CameraDegradation {
            source: 0,
            kernel: kernel.shallow_clone(),
            noise: Tensor::zeros([1, 3, 4, 4], CPU),
            noise_scales: None,
            noise_by_brightness: None,
            compression: None,
            jpeg_qualities: None,
        }],
        hr_grid: Some(4),
    };
    let out = on_hr
        .forward(&hr, &mut rand::rngs::StdRng::seed_from_u64(1))
        .unwrap();
    let expected = imresize(&blurred(&hr, &kernel), 0.25).clamp(0.0, 1.0);
    assert_eq!((k, out.size()), (13, vec![2, 3, 16, 16]));
    assert!(out.allclose(&expected, 1e-5, 1e-5, false));
}

/// A blur made on the HR before the downscale, as a camera's optics make it: the HR-grid fit
/// reads its width (2.5 HR px, 0.625 LR px at ×4), and its G_s2r has the footage's high band.
/// The LR grid's patches are refused as its input.
#[test]
fn hr_grid_fit_recovers_a_blur_made_before_the_downscale() {
    let sigma = 4.0 / 255.0;
    let clean = imresize(
        &blurred(
            &textured_patches(512, 3, 0.0, 128),
            &gaussian_kernel(2.5, 2.5, 0.0),
        ),
        0.25,
    );
    let real = clean + gaussian(&[512, 3, 32, 32], 4) * sigma;
    let hr = textured_patches(512, 5, 0.0, 128);
    let config = DegradationConfig {
        noise_tiles: 256,
        fit_steps: 400,
        kernel: 5,
        kernel_grid: KernelGrid::Hr,
        ..DegradationConfig::default()
    };
    let sources = [(0, real.shallow_clone())];
    let (degradation, summaries) =
        ExplicitDegradation::fit(&sources, &hr, &config, &|_| SourceStorage::default()).unwrap();
    assert_eq!(degradation.hr_grid, Some(4));
    let camera = &degradation.cameras[0];
    assert_eq!(camera.kernel.size(), [17, 17], "5 LR px at ×4");
    assert!(
        summaries[0].log_spectrum_error_fitted < summaries[0].log_spectrum_error_identity / 5.0,
        "{:?}",
        summaries[0]
    );
    let (major, minor, _) = degradation.kernel_spread_lr(camera);
    assert!(
        (0.5..=0.75).contains(&minor) && (0.5..=0.75).contains(&major),
        "kernel σ {major} x {minor} LR px"
    );

    let synthetic = imresize(&hr, 0.25);
    let translated = degradation
        .forward(
            degradation.input(&hr, &synthetic),
            &mut rand::rngs::StdRng::seed_from_u64(1),
        )
        .unwrap();
    let ratio = mosaic_high_band(&translated, 12) / mosaic_high_band(&real, 12);
    assert!((ratio - 1.0).abs() < 0.15, "high-band ratio {ratio}");

    let message = format!(
        "{:#}",
        ExplicitDegradation::fit(&sources, &synthetic, &config, &|_| SourceStorage::default())
            .err()
            .unwrap()
    );
    assert!(
        message.contains("whole multiple of the real LR's 32 px"),
        "{message}"
    );
}

/// `[n, 3, 32, 32]` LR patches cut from scenes of hard-edged ellipses, rendered at 4× and
/// downscaled by the bicubic: `elongation` 1 gives disks (edges of every direction), more
/// gives ellipses stretched along `angle` degrees (counter-clockwise), whose edges mostly face
/// across it, so the scenes' spectrum holds more power across it.
fn ellipse_patches(n: i64, seed: u64, elongation: f64, angle: f64) -> Tensor {
    use rand::Rng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut patches = Vec::new();
    while (patches.len() as i64) < n {
        let shapes: Vec<Ellipse> = (0..30)
            .map(|_| {
                let centre = (rng.random_range(0.0..512.0), rng.random_range(0.0..512.0));
                let across = rng.random_range(12.0..40.0);
                Ellipse {
                    centre,
                    along: across * elongation,
                    across,
                    angle,
                    level: rng.random_range(0.5..0.9) as f32,
                }
            })
            .collect();
        let lr = ellipse_scene(512, 0.2, &shapes);
        for row in 0..4 {
            for col in 0..4 {
                patches.push(lr.narrow(1, row * 32, 32).narrow(2, col * 32, 32));
            }
        }
    }
    Tensor::stack(&patches, 0).narrow(0, 0, n)
}

/// Footage of stretched scenes, blurred across their stretch: the spectrum alone cannot tell
/// the scenes' direction from the blur's, so a fit to it turns the kernel towards the scenes';
/// held to the footage's step edges (`kernel_direction = "edges"`), the kernel keeps the blur's
/// direction, and the summary says what the edges read.
#[test]
fn edges_hold_the_kernel_to_the_blur_where_the_scenes_turn_the_spectrum() {
    use cyclesr_train::archs::degradation::{ContentGain, KernelDirection};
    let blur = gaussian_kernel(1.0, 0.4, 90.0);
    let real = blurred(&ellipse_patches(768, 41, 3.0, 0.0), &blur)
        + gaussian(&[768, 3, 32, 32], 42) * (1.0 / 255.0);
    let synthetic = ellipse_patches(768, 43, 1.0, 0.0);
    let fit = |kernel_direction| {
        let config = DegradationConfig {
            noise_tiles: 64,
            fit_steps: 300,
            content_gain: ContentGain::Scalar,
            kernel_direction,
            ..DegradationConfig::default()
        };
        CameraDegradation::fit(0, &real, &synthetic, &config, SourceStorage::default()).unwrap()
    };
    let (spectrum, spectrum_summary) = fit(KernelDirection::Spectrum);
    let (held, summary) = fit(KernelDirection::Edges);
    let (major, minor, angle) = spectrum.kernel_spread();
    let (h_major, h_minor, h_angle) = held.kernel_spread();
    let read = summary.edge_blur.unwrap();
    println!("spectrum {major:.2} x {minor:.2} at {angle:.0}; edges read {read}; held {h_major:.2} x {h_minor:.2} at {h_angle:.0}");
    assert!(spectrum_summary.edge_blur.is_none());
    let off_vertical = |a: f64| (a.abs() - 90.0).abs();
    assert!(off_vertical(read.angle_degrees) < 10.0, "{read:?}");
    assert!(
        off_vertical(h_angle) < 10.0 && h_major - h_minor > 0.2,
        "held: {h_major} x {h_minor} at {h_angle}"
    );
    assert!(
        off_vertical(angle) > 30.0 || major - minor < 0.1,
        "spectrum: {major} x {minor} at {angle}"
    );
}

/// Footage without step edges has no direction to read: the fit says so, naming the option.
#[test]
fn edges_hold_refuses_footage_without_edges() {
    use cyclesr_train::archs::degradation::KernelDirection;
    let config = DegradationConfig {
        noise_tiles: 64,
        fit_steps: 10,
        kernel_direction: KernelDirection::Edges,
        ..DegradationConfig::default()
    };
    let Err(error) = CameraDegradation::fit(
        0,
        &natural_patches(256, 51),
        &natural_patches(256, 52),
        &config,
        SourceStorage::default(),
    ) else {
        panic!("fitted a direction on footage without edges");
    };
    let message = format!("{error:#}");
    assert!(
        message.contains("kernel_direction = \"edges\"") && message.contains("too few step edges"),
        "{message}"
    );
}
