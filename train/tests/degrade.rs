//! `train degrade`: reproducibility, sizes, preset levels, kernels and codecs, and pairs made
//! by a trained stage 1.

mod common;

use std::path::{Path, PathBuf};

use common::{temp_dir, TestDir};
use cyclesr_train::data::{imresize, load_rgb8, save_png, Rgb8};
use cyclesr_train::degrade::{
    degrade, gaussian_kernel, h264_roundtrip, image_rng, jpeg_roundtrip, motion_kernel, run,
    Degradation, DegradeArgs, DegradeManifest, Part, Preset,
};
use cyclesr_train::eval::Translator;
use cyclesr_train::metrics::{psnr, rgb_to_y, NtireProtocol};
use cyclesr_train::trainer::{fit, FitArgs, LATEST};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tch::Tensor;

/// Smooth random content, like a photo.
fn smooth_image(h: i64, w: i64, seed: u64) -> Tensor {
    let mut rng = StdRng::seed_from_u64(seed);
    let (ch, cw) = (h / 4 + 1, w / 4 + 1);
    let values: Vec<f32> = (0..3 * ch * cw).map(|_| rng.random()).collect();
    let coarse = Tensor::from_slice(&values).view([3, ch, cw]);
    imresize(&coarse, 4.0)
        .narrow(1, 0, h)
        .narrow(2, 0, w)
        .clamp(0.0, 1.0)
}

/// Three HR photos of 50×42 (not multiples of 4) in `photos/` of the returned test directory.
fn input_folder(test: &str) -> (TestDir, PathBuf) {
    let root = temp_dir(test);
    let dir = root.join("photos");
    for i in 0..3 {
        save_png(&smooth_image(42, 50, i), &dir.join(format!("photo{i}.png"))).unwrap();
    }
    (root, dir)
}

fn args(input: &Path, out: &Path, preset: Preset, seed: u64) -> DegradeArgs {
    DegradeArgs {
        inputs: vec![input.to_path_buf()],
        out: out.to_path_buf(),
        preset,
        stage1: None,
        seed,
        scale: 4,
        jpeg_quality: None,
        without: Vec::new(),
        jpeg_downscale: true,
    }
}

fn manifest(out: &Path) -> DegradeManifest {
    serde_json::from_slice(&std::fs::read(out.join("degradation.json")).unwrap()).unwrap()
}

#[test]
fn same_seed_same_output() {
    let (_root, input) = input_folder("seed");
    let root = input.parent().unwrap();
    let (a, b, c) = (root.join("a"), root.join("b"), root.join("c"));
    run(&args(&input, &a, Preset::Wild, 11)).unwrap();
    run(&args(&input, &b, Preset::Wild, 11)).unwrap();
    run(&args(&input, &c, Preset::Wild, 12)).unwrap();
    let read = |dir: &Path| std::fs::read(dir.join("lr/photo1.png")).unwrap();
    assert_eq!(read(&a), read(&b));
    assert_ne!(read(&a), read(&c));
    assert_eq!(manifest(&a), manifest(&b));
}

#[test]
fn outputs_have_the_scaled_sizes() {
    let (_root, input) = input_folder("sizes");
    let out = input.parent().unwrap().join("out");
    let mut args = args(&input, &out, Preset::Mild, 0);
    args.jpeg_quality = Some(60);
    run(&args).unwrap();
    for i in 0..3 {
        let hr = load_rgb8(&out.join(format!("hr/photo{i}.png"))).unwrap();
        let lr = load_rgb8(&out.join(format!("lr/photo{i}.png"))).unwrap();
        assert_eq!(
            (hr.width, hr.height),
            (48, 40),
            "HR cropped to a multiple of 4"
        );
        assert_eq!((lr.width, lr.height), (12, 10));
    }
    let m = manifest(&out);
    assert_eq!(m.images.len(), 3);
    assert_eq!(m.images[0].hr_size, [40, 48]);
    assert_eq!(m.images[0].lr_size, [10, 12]);
    assert!(m
        .images
        .iter()
        .all(|r| r.degradation.as_ref().unwrap().jpeg_quality == Some(60)));
}

/// `--without noise --without compression` on the camera preset: the same draws less those
/// parts (recorded), and the LR is exactly the chain of the recorded levels, no noise drawn.
#[test]
fn without_leaves_parts_out_and_draws_the_rest_alike() {
    let (_root, input) = input_folder("without");
    let root = input.parent().unwrap();
    let (full, clean) = (root.join("full"), root.join("clean"));
    run(&args(&input, &full, Preset::Camera, 4)).unwrap();
    run(&DegradeArgs {
        without: vec![Part::Noise, Part::Compression],
        ..args(&input, &clean, Preset::Camera, 4)
    })
    .unwrap();
    let (full, clean_manifest) = (manifest(&full), manifest(&clean));
    assert_eq!(clean_manifest.without, [Part::Noise, Part::Compression]);
    for (f, c) in full.images.iter().zip(&clean_manifest.images) {
        let (f, d) = (
            f.degradation.as_ref().unwrap(),
            c.degradation.as_ref().unwrap(),
        );
        assert_eq!(
            *d,
            f.clone().without(Part::Noise).without(Part::Compression)
        );
        assert!(f.jpeg_quality.is_some() && d.jpeg_quality.is_none());
        let sensor = d.sensor.as_ref().unwrap();
        assert_eq!((sensor.shot, sensor.read), (0.0, 0.0));
        assert!(d.gaussian_blur.is_some(), "the blur stays");
        let hr = load_rgb8(&clean.join(format!("hr/{}.png", c.name)))
            .unwrap()
            .to_tensor();
        let lr = load_rgb8(&clean.join(format!("lr/{}.png", c.name))).unwrap();
        assert_eq!(lr, degrade(&hr, d, 12345).unwrap());
    }
}

#[test]
fn mild_levels_are_fixed_and_wild_levels_vary() {
    let (_root, input) = input_folder("levels");
    let root = input.parent().unwrap();
    let (mild, wild, codec) = (root.join("mild"), root.join("wild"), root.join("codec"));
    run(&args(&input, &mild, Preset::Mild, 3)).unwrap();
    run(&args(&input, &wild, Preset::Wild, 3)).unwrap();
    let mild = manifest(&mild);
    assert!(mild
        .images
        .iter()
        .all(|r| r.degradation == mild.images[0].degradation));
    let wild = manifest(&wild);
    let params: Vec<_> = wild
        .images
        .iter()
        .map(|r| r.degradation.as_ref().unwrap())
        .collect();
    assert!(params[0] != params[1] && params[1] != params[2] && params[0] != params[2]);
    assert!(params.iter().all(|d| d.h264_qp.is_none()));

    // The same photos through the codec preset, when H.264 is available.
    if has_h264() {
        run(&args(&input, &codec, Preset::Codec, 3)).unwrap();
        let codec = manifest(&codec);
        assert!(codec
            .images
            .iter()
            .all(|r| r.degradation.as_ref().unwrap().h264_qp.is_some()));
    }
}

#[test]
fn blur_kernels_are_normalised_and_centred() {
    for kernel in [
        motion_kernel(7.0, 30.0),
        motion_kernel(0.0, 0.0),
        gaussian_kernel(2.0, 0.7, 45.0),
    ] {
        let k = kernel.size()[0];
        assert_eq!(kernel.size(), [k, k]);
        assert_eq!(k % 2, 1);
        assert!((kernel.sum(tch::Kind::Double).double_value(&[]) - 1.0).abs() < 1e-6);
        // The centroid sits on the centre pixel: blurring does not move the image.
        let coords = Tensor::arange(k, (tch::Kind::Float, tch::Device::Cpu)) - (k / 2) as f64;
        let cy = (&kernel * coords.view([k, 1]))
            .sum(tch::Kind::Double)
            .double_value(&[]);
        let cx = (&kernel * coords.view([1, k]))
            .sum(tch::Kind::Double)
            .double_value(&[]);
        assert!(cy.abs() < 1e-5 && cx.abs() < 1e-5, "centroid ({cy}, {cx})");
    }
    // A horizontal line of 7 pixels lies in the middle row.
    let line = motion_kernel(7.0, 0.0);
    let k = line.size()[0];
    let middle = line.get(k / 2).sum(tch::Kind::Double).double_value(&[]);
    assert!((middle - 1.0).abs() < 1e-6);
}

#[test]
fn the_recorded_shift_is_the_one_scoring_finds() {
    let hr = smooth_image(64, 64, 9);
    let d = common::shift_and_downscale((2, -3), 1);
    let lr = degrade(&hr, &d, 0).unwrap().to_tensor();
    let protocol = NtireProtocol {
        border: 0,
        max_shift: 5,
        crop: None,
    };
    assert_eq!(protocol.score(&lr, &hr).unwrap().shift, (2, -3));
}

#[test]
fn noise_follows_the_seed() {
    let hr = smooth_image(32, 32, 1);
    let d = Preset::Wild.sample(4, &mut StdRng::seed_from_u64(0));
    assert_eq!(degrade(&hr, &d, 5).unwrap(), degrade(&hr, &d, 5).unwrap());
    assert_ne!(degrade(&hr, &d, 5).unwrap(), degrade(&hr, &d, 6).unwrap());
}

#[test]
fn jpeg_round_trip_keeps_size_and_content() {
    let img = Rgb8::from_tensor(&smooth_image(21, 13, 2)).unwrap();
    let back = jpeg_roundtrip(&img, 90).unwrap();
    assert_eq!((back.width, back.height), (13, 21));
    assert!(psnr(&back.to_tensor(), &img.to_tensor()) > 30.0);
}

fn has_h264() -> bool {
    gst::init().unwrap();
    let missing: Vec<_> = ["x264enc", "h264parse", "avdec_h264"]
        .into_iter()
        .filter(|e| gst::ElementFactory::find(e).is_none())
        .collect();
    if !missing.is_empty() {
        println!("skipping the H.264 check: GStreamer elements {missing:?} are missing");
    }
    missing.is_empty()
}

#[test]
fn h264_round_trip_keeps_size_and_content() {
    if !has_h264() {
        return;
    }
    // Odd sizes exercise the padding to 4:2:0.
    let img = Rgb8::from_tensor(&smooth_image(37, 23, 3)).unwrap();
    let clean = h264_roundtrip(&img, 18).unwrap();
    assert_eq!((clean.width, clean.height), (23, 37));
    // On luma, which 4:2:0 keeps at full resolution, the codec's quantizer decides.
    let luma_psnr = |out: &Rgb8| psnr(&rgb_to_y(&out.to_tensor()), &rgb_to_y(&img.to_tensor()));
    let clean_psnr = luma_psnr(&clean);
    let coarse_psnr = luma_psnr(&h264_roundtrip(&img, 45).unwrap());
    assert!(clean_psnr > 40.0, "qp 18: {clean_psnr} dB");
    assert!(
        coarse_psnr < clean_psnr - 6.0,
        "qp 45: {coarse_psnr} dB, qp 18: {clean_psnr} dB"
    );
    // Grey levels survive exactly at the finest quantizer (no colour conversion bias).
    let grey = Rgb8::from_tensor(&Tensor::full(
        [3, 8, 8],
        0.5,
        (tch::Kind::Float, tch::Device::Cpu),
    ))
    .unwrap();
    assert_eq!(h264_roundtrip(&grey, 0).unwrap(), grey);
    assert_eq!(
        h264_roundtrip(&img, 30).unwrap(),
        h264_roundtrip(&img, 30).unwrap()
    );
}

#[test]
fn camera_levels_are_drawn_in_their_ranges() {
    let mut rng = StdRng::seed_from_u64(4);
    for _ in 0..50 {
        let d = Preset::Camera.sample(4, &mut rng);
        let sensor = d.sensor.as_ref().unwrap();
        assert!((1e-4..=5e-3).contains(&sensor.shot), "{sensor:?}");
        assert!(sensor.read > 0.0 && sensor.read < 1e-3, "{sensor:?}");
        assert!((1.9..=2.4).contains(&sensor.red_gain) && (1.5..=1.9).contains(&sensor.blue_gain));
        let blur = d.gaussian_blur.as_ref().unwrap();
        assert!((0.8..=2.0).contains(&blur.sigma_x) && (0.8..=2.0).contains(&blur.sigma_y));
        assert!((60..=90).contains(&d.jpeg_quality.unwrap()));
        assert!(d.motion_blur.is_none() && d.poisson_peak.is_none() && d.h264_qp.is_none());
    }
}

/// Unprocessing and processing invert each other: without noise, the sensor pipeline returns
/// the image up to bilinear demosaicking and 8-bit rounding; its noise grows with the shot
/// factor.
#[test]
fn sensor_pipeline_round_trips_and_adds_its_noise() {
    // Content smooth at the Bayer grid's scale, which bilinear demosaicking reconstructs.
    let hr = imresize(&smooth_image(16, 16, 3), 8.0).clamp(0.0, 1.0);
    let sensor = |shot: f64, read: f64| Degradation {
        sensor: Some(cyclesr_train::degrade::Sensor {
            shot,
            read,
            red_gain: 2.1,
            blue_gain: 1.7,
        }),
        ..common::shift_and_downscale((0, 0), 1)
    };
    let clean = degrade(&hr, &sensor(0.0, 0.0), 1).unwrap().to_tensor();
    let exact = psnr(
        &clean.narrow(1, 2, 124).narrow(2, 2, 124),
        &hr.narrow(1, 2, 124).narrow(2, 2, 124),
    );
    assert!(exact > 38.0, "noise-free sensor pipeline at {exact} dB");
    let quiet = degrade(&hr, &sensor(1e-4, 1e-6), 1).unwrap().to_tensor();
    let loud = degrade(&hr, &sensor(4e-3, 1e-5), 1).unwrap().to_tensor();
    let (quiet, loud) = (psnr(&quiet, &hr), psnr(&loud, &hr));
    assert!(
        quiet < exact && loud < quiet - 8.0,
        "{exact} {quiet} {loud}"
    );
}

/// `train degrade --stage1`, with an explicit stage 1 on either grid and a CycleGAN one: each
/// LR file is G_s2r(bicubic ↓4 of the photo) drawn from the image's own seed (an HR-grid
/// G_s2r blurs the photo before its downscale), the manifest names the state and records no
/// preset and no shift, and a scale other than the state's is refused.
#[test]
fn stage_1_of_a_training_state_makes_the_pairs() {
    let hr_grid = [
        common::explicit_overrides(),
        vec!["networks.degradation.kernel_grid=\"hr\"".to_string()],
    ]
    .concat();
    for (label, mode, overrides) in [
        ("explicit", "explicit", common::explicit_overrides()),
        ("explicit-hr", "explicit", hr_grid),
        ("cyclegan", "cyclegan", Vec::new()),
    ] {
        let dir = temp_dir(&format!("stage1-{label}"));
        fit(&FitArgs {
            overrides,
            ..common::args(common::tiny_options(&dir, mode, 1))
        })
        .unwrap();
        let state = dir.join("run/checkpoints").join(LATEST);
        common::write_images(&dir.join("photos"), 2, 50, 42, 7);
        let degrade_args = |scale| DegradeArgs {
            inputs: vec![dir.join("photos")],
            out: dir.join("pairs"),
            preset: Preset::Mild,
            stage1: Some(state.clone()),
            seed: 5,
            scale,
            jpeg_quality: None,
            without: Vec::new(),
            jpeg_downscale: true,
        };
        run(&degrade_args(4)).unwrap();

        let translator = Translator::load(&state, tch::Device::Cpu).unwrap();
        let m = manifest(&dir.join("pairs"));
        assert_eq!(m.preset, None);
        let stage1 = m.stage1.as_ref().unwrap();
        assert_eq!(stage1.state, state);
        assert_eq!(stage1.description, translator.describe());
        assert_eq!(
            stage1.description.contains("17x17 kernel on the HR grid"),
            label == "explicit-hr",
            "5 LR px at ×4: {}",
            stage1.description
        );
        assert_eq!(m.images.len(), 2);
        for record in &m.images {
            assert_eq!(
                (record.degradation.as_ref(), record.shift()),
                (None, (0, 0))
            );
            assert_eq!(record.hr_size, [40, 48], "cropped to a multiple of 4");
            let hr = load_rgb8(&dir.join(format!("pairs/hr/{}.png", record.name)))
                .unwrap()
                .to_tensor();
            let synthetic = imresize(&hr, 0.25).clamp(0.0, 1.0);
            let expected = translator
                .degrade(&hr, &synthetic, image_rng(5, &record.name).random())
                .unwrap();
            let written = load_rgb8(&dir.join(format!("pairs/lr/{}.png", record.name))).unwrap();
            assert_eq!(written, Rgb8::from_tensor(&expected).unwrap(), "{label}");
            assert_ne!(written, Rgb8::from_tensor(&synthetic).unwrap(), "{label}");
        }

        let message = format!("{:#}", run(&degrade_args(2)).unwrap_err());
        assert!(
            message.contains("--scale is 2")
                && message.contains(&state.display().to_string())
                && message.contains("data.scale 4"),
            "{message}"
        );
    }
}
