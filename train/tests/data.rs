//! Data pipeline: MATLAB-compatible resizing, sources, the unpaired loader, paired sets.

mod common;

use std::path::{Path, PathBuf};

use common::{temp_dir, TestDir};
use cyclesr_train::data::{
    decode_video, imresize, imresize_to, save_png, DataOptions, FootageCodec, FrameRange, Loader,
    PairedSet, SourceSpec, TrainingData,
};
use cyclesr_train::degrade::Preset;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tch::{Device, Kind, Tensor};

/// A seeded random `[3, h, w]` image in [0, 1].
fn random_image(h: i64, w: i64, seed: u64) -> Tensor {
    let mut rng = StdRng::seed_from_u64(seed);
    let values: Vec<f32> = (0..3 * h * w).map(|_| rng.random()).collect();
    Tensor::from_slice(&values).view([3, h, w])
}

fn constant_image(h: i64, w: i64, value: f64) -> Tensor {
    Tensor::full([3, h, w], value, (Kind::Float, tch::Device::Cpu))
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

// ---------------------------------------------------------------------------------------------
// imresize

#[test]
fn imresize_keeps_constant_images_constant() {
    let img = constant_image(37, 53, 0.37);
    for scale in [0.25, 0.5, 1.0 / 3.0, 0.7, 2.0, 3.5] {
        let out = imresize(&img, scale);
        assert!(
            max_abs_diff(&out, &Tensor::full_like(&out, 0.37)) < 1e-6,
            "scale {scale}"
        );
    }
    let out = imresize_to(&img, 10, 80);
    assert_eq!(out.size(), [3, 10, 80]);
    assert!(max_abs_diff(&out, &Tensor::full_like(&out, 0.37)) < 1e-6);
}

#[test]
fn imresize_output_sizes_follow_matlab() {
    let img = constant_image(480, 481, 0.5);
    assert_eq!(imresize(&img, 1.0 / 3.0).size(), [3, 160, 161]);
    assert_eq!(imresize(&img, 0.25).size(), [3, 120, 121]);
    assert_eq!(imresize(&img.unsqueeze(0), 0.5).size(), [1, 3, 240, 241]);
    assert_eq!(imresize_to(&img, 7, 9).size(), [3, 7, 9]);
}

/// Halving the ramp 0..7: the antialiased kernel is 0.5·cubic(x/2), taps at distances ±0.5,
/// ±1.5, ±2.5, ±3.5, i.e. weights (−0.01171875, −0.03515625, 0.11328125, 0.43359375) and
/// mirror, normalised (they sum to 1). With MATLAB's mirrored border (index 0 → 1, −1 → 2,
/// ...) the first output reads values 2, 1, 0, 0, 1, 2, 3, 4, worked out by hand below.
#[test]
fn imresize_halves_a_ramp_like_matlab() {
    let ramp = Tensor::arange(8, (Kind::Double, tch::Device::Cpu))
        .view([1, 1, 8])
        .expand([1, 2, 8], false);
    let out = imresize(&ramp, 0.5);
    assert_eq!(out.size(), [1, 1, 4]);
    let expected = [0.44921875, 2.48828125, 4.51171875, 6.55078125];
    for (i, e) in expected.iter().enumerate() {
        let got = out.double_value(&[0, 0, i as i64]);
        assert!((got - e).abs() < 1e-12, "output {i}: {got} vs {e}");
    }
}

/// MATLAB's algorithm written out directly: for every output pixel, a 2-D sum over taps with
/// the border mirrored by walking back and forth.
fn reference_imresize(
    img: &[f64],
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    scale: f64,
) -> Vec<f64> {
    fn cubic(x: f64) -> f64 {
        let a = x.abs();
        if a <= 1.0 {
            1.5 * a.powi(3) - 2.5 * a * a + 1.0
        } else if a < 2.0 {
            -0.5 * a.powi(3) + 2.5 * a * a - 4.0 * a + 2.0
        } else {
            0.0
        }
    }
    fn reflect(mut j: i64, n: i64) -> usize {
        // 1-based index folded into 1..=n by repeated reflection (edge sample repeated).
        loop {
            if j < 1 {
                j = 1 - j;
            } else if j > n {
                j = 2 * n + 1 - j;
            } else {
                return (j - 1) as usize;
            }
        }
    }
    fn taps(out_index: usize, n: usize, scale: f64) -> Vec<(usize, f64)> {
        let (ks, width) = if scale < 1.0 {
            (scale, 4.0 / scale)
        } else {
            (1.0, 4.0)
        };
        let u = (out_index + 1) as f64 / scale + 0.5 * (1.0 - 1.0 / scale);
        let first = (u - width / 2.0).floor() as i64;
        let raw: Vec<(i64, f64)> = (first..=first + width.ceil() as i64 + 1)
            .map(|j| (j, ks * cubic(ks * (u - j as f64))))
            .collect();
        let total: f64 = raw.iter().map(|t| t.1).sum();
        raw.into_iter()
            .map(|(j, wt)| (reflect(j, n as i64), wt / total))
            .collect()
    }
    let mut out = vec![0.0; oh * ow];
    for i in 0..oh {
        let ti = taps(i, h, scale);
        for j in 0..ow {
            let tj = taps(j, w, scale);
            let mut acc = 0.0;
            for &(y, wy) in &ti {
                for &(x, wx) in &tj {
                    acc += wy * wx * img[y * w + x];
                }
            }
            out[i * ow + j] = acc;
        }
    }
    out
}

#[test]
fn imresize_matches_a_direct_reference() {
    // Axes longer than 512 samples are resampled in several blocks: cover both paths.
    for (h, w) in [(13usize, 17usize), (700, 9), (9, 700)] {
        let img = random_image(h as i64, w as i64, 7)
            .select(0, 0)
            .to_kind(Kind::Double);
        let values: Vec<f64> = Vec::try_from(&img.flatten(0, -1)).unwrap();
        for scale in [0.5, 0.25, 1.0 / 3.0, 0.3, 2.0, 1.7] {
            let out = imresize(&img.unsqueeze(0), scale).squeeze_dim(0);
            let (oh, ow) = (out.size()[0] as usize, out.size()[1] as usize);
            let expected_len = |n: usize| ((n as f64) * scale - 1e-9).ceil() as usize;
            assert_eq!((oh, ow), (expected_len(h), expected_len(w)));
            let expected = reference_imresize(&values, h, w, oh, ow, scale);
            let got: Vec<f64> = Vec::try_from(&out.flatten(0, -1)).unwrap();
            for (g, e) in got.iter().zip(&expected) {
                assert!(
                    (g - e).abs() < 1e-12,
                    "{h}x{w} at scale {scale}: {g} vs {e}"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The unpaired loader

/// HR folder with `n` random 64×64 images, real LR folder with `n` random 40×40 images, in
/// the returned test directory (deleted when it is dropped).
fn unpaired_folders(test: &str, n: u64) -> (TestDir, PathBuf, PathBuf) {
    let root = temp_dir(test);
    let (hr, real) = (root.join("hr"), root.join("real"));
    for i in 0..n {
        save_png(&random_image(64, 64, i), &hr.join(format!("h{i}.png"))).unwrap();
        save_png(
            &random_image(40, 40, 100 + i),
            &real.join(format!("r{i}.png")),
        )
        .unwrap();
    }
    (root, hr, real)
}

fn small_options(hr: &Path, real: &Path, workers: usize) -> DataOptions {
    DataOptions {
        hr: vec![hr.to_path_buf()],
        real_lr: vec![SourceSpec::from(real.to_path_buf())],
        lr_patch: 8,
        batch: 4,
        scale: 4,
        workers,
        prefetch: 3,
        ..DataOptions::default()
    }
}

fn same(a: &Tensor, b: &Tensor) -> bool {
    a.size() == b.size() && a.equal(b)
}

#[test]
fn loader_batches_are_a_function_of_seed_and_index() {
    let (_dir, hr, real) = unpaired_folders("determinism", 3);
    let opts = small_options(&hr, &real, 2);
    let mut threaded = Loader::new(&opts, 7, 0).unwrap();
    let batches: Vec<_> = (0..5).map(|_| threaded.next_batch().unwrap()).collect();
    for (i, b) in batches.iter().enumerate() {
        assert_eq!(b.index, i as u64);
        assert_eq!(b.real_lr.size(), [4, 3, 8, 8]);
        assert_eq!(b.syn_lr.size(), [4, 3, 8, 8]);
        assert_eq!(b.hr.size(), [4, 3, 32, 32]);
        assert!(b.paired_lr.is_none());
        assert!(max_abs_diff(&b.syn_lr, &imresize(&b.hr, 0.25)) < 1e-6);
    }
    // Resuming at 2 on the caller's thread gives batches 2, 3, 4 again.
    let mut resumed = Loader::new(&small_options(&hr, &real, 0), 7, 2).unwrap();
    for expected in &batches[2..] {
        let b = resumed.next_batch().unwrap();
        assert_eq!(b.index, expected.index);
        assert!(same(&b.hr, &expected.hr) && same(&b.real_lr, &expected.real_lr));
        assert!(same(&b.syn_lr, &expected.syn_lr));
    }
    assert!(!same(&batches[0].hr, &batches[1].hr));
    assert!(!same(&batches[0].real_lr, &batches[1].real_lr));
    let other_seed = Loader::new(&opts, 8, 0).unwrap().next_batch().unwrap();
    assert!(!same(&other_seed.hr, &batches[0].hr));
}

#[test]
fn loader_draws_the_domains_independently() {
    // Constant images: the value of a patch tells which image it came from.
    let root = temp_dir("independent");
    let (hr, real) = (root.join("hr"), root.join("real"));
    for i in 0..3 {
        save_png(
            &constant_image(40, 40, (i + 1) as f64 / 10.0),
            &hr.join(format!("h{i}.png")),
        )
        .unwrap();
        save_png(
            &constant_image(12, 12, (i + 5) as f64 / 10.0),
            &real.join(format!("r{i}.png")),
        )
        .unwrap();
    }
    let mut loader = Loader::new(&small_options(&hr, &real, 1), 3, 0).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let b = loader.next_batch().unwrap();
        for k in 0..4 {
            let h = (b.hr.double_value(&[k, 0, 0, 0]) * 10.0).round() as i64;
            let r = (b.real_lr.double_value(&[k, 0, 0, 0]) * 10.0).round() as i64;
            seen.insert((h, r));
        }
    }
    // Every HR image meets every real LR image: nothing ties one domain's draw to the other's.
    assert_eq!(seen.len(), 9, "combinations seen: {seen:?}");
}

#[test]
fn loader_skips_unreadable_and_small_images_with_a_warning() {
    let (_dir, hr, real) = unpaired_folders("skips", 1);
    std::fs::write(hr.join("broken.png"), b"not a png").unwrap();
    save_png(&random_image(16, 16, 9), &hr.join("tiny.png")).unwrap();
    std::fs::write(real.join("corrupt.jpg"), b"\xff\xd8 nope").unwrap();
    let loader = Loader::new(&small_options(&hr, &real, 0), 1, 0).unwrap();
    assert_eq!(loader.hr_images(), 1);
    assert_eq!(loader.real_lr_images(), 1);
    let warnings = loader.warnings().join("\n");
    for name in ["broken.png", "tiny.png", "corrupt.jpg"] {
        assert!(
            warnings.contains(name),
            "no warning about {name}: {warnings}"
        );
    }
}

#[test]
fn empty_domains_are_errors_naming_the_folders() {
    let (_dir, hr, real) = unpaired_folders("empty", 1);
    let empty = temp_dir("empty-domain");
    let error = Loader::new(&small_options(&empty, &real, 0), 1, 0).unwrap_err();
    let message = format!("{error:#}");
    assert!(message.contains(&empty.display().to_string()), "{message}");

    let corrupt_only = temp_dir("corrupt-domain");
    std::fs::write(corrupt_only.join("x.png"), b"garbage").unwrap();
    let error = Loader::new(&small_options(&hr, &corrupt_only, 0), 1, 0).unwrap_err();
    let message = format!("{error:#}");
    assert!(
        message.contains(&corrupt_only.display().to_string()),
        "{message}"
    );

    let missing = empty.join("does-not-exist");
    let error = Loader::new(&small_options(&missing, &real, 0), 1, 0).unwrap_err();
    assert!(format!("{error:#}").contains("does-not-exist"));
}

#[test]
fn paired_mode_crops_the_same_scene_in_lr_and_hr() {
    let root = temp_dir("paired-mode");
    let (hr, lr, real) = (root.join("hr"), root.join("lr"), root.join("real"));
    for i in 0..2 {
        // Smooth content, so quantisation is the only difference between the two LR versions.
        let img = imresize(&random_image(16, 16, i), 4.0).clamp(0.0, 1.0);
        save_png(&img, &hr.join(format!("p{i}.png"))).unwrap();
        save_png(&imresize(&img, 0.25), &lr.join(format!("p{i}.png"))).unwrap();
        save_png(
            &random_image(12, 12, 50 + i),
            &real.join(format!("r{i}.png")),
        )
        .unwrap();
    }
    let mut opts = small_options(&hr, &real, 0);
    opts.paired_lr = Some(lr.clone());
    let mut loader = Loader::new(&opts, 5, 0).unwrap();
    for _ in 0..3 {
        let b = loader.next_batch().unwrap();
        let paired = b.paired_lr.expect("paired mode");
        assert_eq!(paired.size(), [4, 3, 8, 8]);
        // Away from the patch edges (where the patch's own mirrored border differs from the
        // full image's content), the true LR patch is the HR patch downscaled.
        let inner = |t: &Tensor| t.narrow(2, 3, 2).narrow(3, 3, 2);
        let diff = max_abs_diff(&inner(&paired), &inner(&b.syn_lr));
        assert!(
            diff < 0.01,
            "paired LR differs from the downscaled HR crop by {diff}"
        );
    }

    std::fs::write(lr.join("unmatched.png"), b"").unwrap();
    let error = Loader::new(&opts, 5, 0).unwrap_err();
    assert!(format!("{error:#}").contains("unmatched"), "{error:#}");
}

/// With the `degradation.json` of `train degrade` beside the LR folder, each pair is aligned by
/// its image's pixel shift: the HR crop shows the scene the LR patch shows.
#[test]
fn paired_mode_undoes_each_pairs_recorded_shift() {
    let root = temp_dir("paired-shift");
    let (hr, lr, real) = (root.join("hr"), root.join("lr"), root.join("real"));
    let shifts = [(8i64, -4i64), (-4, 12)];
    let mut records = Vec::new();
    for (i, &(dy, dx)) in shifts.iter().enumerate() {
        let img = imresize(&random_image(16, 16, i as u64), 4.0).clamp(0.0, 1.0);
        save_png(&img, &hr.join(format!("p{i}.png"))).unwrap();
        // LR pixel (y, x) shows the scene at HR (4y − dy, 4x − dx).
        let shifted = img.roll([dy, dx], [1, 2]);
        save_png(&imresize(&shifted, 0.25), &lr.join(format!("p{i}.png"))).unwrap();
        save_png(
            &random_image(12, 12, 60 + i as u64),
            &real.join(format!("r{i}.png")),
        )
        .unwrap();
        records.push(serde_json::json!({
            "name": format!("p{i}"), "source": "test", "hr_size": [64, 64], "lr_size": [16, 16],
            "degradation": {"shift": [dy, dx], "motion_blur": null, "gaussian_blur": null,
                "scale": 4, "poisson_peak": null, "gaussian_noise": null, "jpeg_quality": null,
                "h264_qp": null},
        }));
    }
    let mut opts = small_options(&hr, &real, 0);
    opts.paired_lr = Some(lr.clone());
    let inner = |t: &Tensor| t.narrow(2, 3, 2).narrow(3, 3, 2);
    let worst = |opts: &_| {
        let mut loader = Loader::new(opts, 5, 0).unwrap();
        (0..3)
            .map(|_| {
                let b = loader.next_batch().unwrap();
                max_abs_diff(&inner(&b.paired_lr.unwrap()), &inner(&b.syn_lr))
            })
            .fold(0.0, f64::max)
    };
    let unaligned = worst(&opts);
    let manifest = serde_json::json!({"preset": "wild", "seed": 0, "scale": 4,
        "jpeg_downscale": false, "images": records});
    std::fs::write(root.join("degradation.json"), manifest.to_string()).unwrap();
    let aligned = worst(&opts);
    assert!(aligned < 0.01, "aligned pairs differ by {aligned}");
    assert!(unaligned > 0.05, "the shifts should matter: {unaligned}");
}

/// Pearson correlation of two tensors' values.
fn correlation(a: &Tensor, b: &Tensor) -> f64 {
    let (a, b) = (a - a.mean(Kind::Float), b - b.mean(Kind::Float));
    let covariance = (&a * &b).sum(Kind::Float).double_value(&[]);
    covariance
        / (a.square().sum(Kind::Float) * b.square().sum(Kind::Float))
            .sqrt()
            .double_value(&[])
}

/// `data.paired_preset` degrades every HR crop afresh: the LR patch shows the HR patch's scene
/// (the preset's shift left out), carries the preset's noise, and batches stay a function of
/// seed and index, with or without worker threads.
#[test]
fn paired_preset_cuts_aligned_pairs_from_a_fresh_degradation() {
    let root = temp_dir("paired-preset");
    let (hr, real) = (root.join("hr"), root.join("real"));
    for i in 0..2 {
        // Smooth content (features of about 4 LR px), where a sub-pixel shift shows.
        let img = imresize(&random_image(10, 10, i), 16.0).clamp(0.0, 1.0);
        save_png(&img, &hr.join(format!("p{i}.png"))).unwrap();
        save_png(
            &random_image(12, 12, 70 + i),
            &real.join(format!("r{i}.png")),
        )
        .unwrap();
    }
    // Large enough for an 8-px LR patch (32 HR px), not for its 24 LR px of context.
    save_png(&random_image(120, 120, 9), &hr.join("small.png")).unwrap();
    let mut opts = small_options(&hr, &real, 2);
    opts.paired_preset = Some(Preset::Mild);
    // One orientation, so a shift left in would always point the same way.
    opts.augment_degraded = false;
    let mut loader = Loader::new(&opts, 5, 0).unwrap();
    let warnings = loader.warnings().join("\n");
    assert!(
        warnings.contains("small.png: 120x120 is smaller than the 128x128 HR crop"),
        "{warnings}"
    );
    let batches: Vec<_> = (0..4).map(|_| loader.next_batch().unwrap()).collect();
    let inner = |t: &Tensor| t.narrow(2, 2, 4).narrow(3, 2, 4);
    let (mut lr, mut aligned, mut shifted) = (Vec::new(), Vec::new(), Vec::new());
    for b in &batches {
        let paired = b.paired_lr.as_ref().expect("paired mode");
        assert_eq!(paired.size(), [4, 3, 8, 8]);
        assert_eq!(b.hr.size(), [4, 3, 32, 32]);
        lr.push(inner(paired));
        aligned.push(inner(&b.syn_lr));
        // Where the LR would be with mild's shift of (2, -3) HR px kept.
        shifted.push(inner(&imresize(&b.hr.roll([2, -3], [2, 3]), 0.25)));
    }
    let (lr, aligned, shifted) = (
        Tensor::cat(&lr, 0),
        Tensor::cat(&aligned, 0),
        Tensor::cat(&shifted, 0),
    );
    let (with_aligned, with_shifted) = (correlation(&lr, &aligned), correlation(&lr, &shifted));
    assert!(
        with_aligned > with_shifted + 0.01,
        "LR against the aligned HR: {with_aligned}, against the shifted: {with_shifted}"
    );
    // Mild's Poisson noise (σ ≈ 6/255 at mid-grey) is there.
    let residual = (&lr - &aligned).std(true).double_value(&[]);
    assert!(residual > 3.0 / 255.0, "residual σ {residual}");
    // Resumed at 2 on the caller's thread: the same pairs.
    opts.workers = 0;
    let mut resumed = Loader::new(&opts, 5, 2).unwrap();
    for expected in &batches[2..] {
        let b = resumed.next_batch().unwrap();
        assert!(same(&b.hr, &expected.hr));
        assert!(same(
            b.paired_lr.as_ref().unwrap(),
            expected.paired_lr.as_ref().unwrap()
        ));
    }
}

#[test]
fn paired_set_matches_by_name() {
    let root = temp_dir("paired-set");
    let (hr, lr) = (root.join("hr"), root.join("lr"));
    for name in ["b", "a"] {
        let img = random_image(18, 22, 3);
        save_png(&img, &hr.join(format!("{name}.png"))).unwrap();
        save_png(&imresize_to(&img, 4, 5), &lr.join(format!("{name}.png"))).unwrap();
    }
    let set = PairedSet::load(&lr, &hr).unwrap();
    assert_eq!(set.scale, 4);
    let names: Vec<_> = set.items.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(set.items[0].lr.size(), [3, 4, 5]);
    assert_eq!(set.items[0].hr.size(), [3, 18, 22]);

    save_png(&random_image(4, 5, 1), &lr.join("only-lr.png")).unwrap();
    save_png(&random_image(16, 20, 1), &hr.join("only-hr.png")).unwrap();
    let message = format!("{:#}", PairedSet::load(&lr, &hr).unwrap_err());
    assert!(
        message.contains("only-lr") && message.contains("only-hr"),
        "{message}"
    );
}

#[test]
fn source_specs_accept_paths_and_tables() {
    let opts: DataOptions = toml::from_str(
        r#"
        hr = ["photos"]
        real_lr = ["clip.avi", { path = "cam.mp4", start_frame = 2, end_frame = 8, step = 3, codec = "h264" }, { path = "frames", lossless = true }]
        "#,
    )
    .unwrap();
    assert_eq!(opts.real_lr[0], SourceSpec::from(PathBuf::from("clip.avi")));
    assert!(!opts.real_lr[1].lossless && opts.real_lr[2].lossless);
    assert_eq!(opts.real_lr[0].codec, FootageCodec::Jpeg);
    assert_eq!(opts.real_lr[1].codec, FootageCodec::H264);
    // As a run's options.toml writes them, for --resume.
    let written: DataOptions = toml::from_str(&toml::to_string(&opts).unwrap()).unwrap();
    assert_eq!(written.real_lr, opts.real_lr);
    let range = opts.real_lr[1].range();
    assert_eq!(
        range,
        FrameRange {
            start: 2,
            end: Some(8),
            step: 3
        }
    );
    assert_eq!((opts.lr_patch, opts.batch, opts.scale), (120, 32, 4));
    assert!(opts.jpeg_downscale && opts.paired_lr.is_none());

    let error = toml::from_str::<DataOptions>(
        r#"
        hr = ["photos"]
        real_lr = [{ path = "cam.mp4", stride = 2 }]
        "#,
    )
    .unwrap_err();
    assert!(error.to_string().contains("stride"), "{error}");

    // Lossless footage went through no codec: both at once is a contradiction, named.
    let error = toml::from_str::<DataOptions>(
        r#"
        hr = ["photos"]
        real_lr = [{ path = "tape.mkv", lossless = true, codec = "h264" }]
        "#,
    )
    .unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("tape.mkv") && message.contains("`lossless` or `codec`"),
        "{message}"
    );
    let error = toml::from_str::<DataOptions>(
        r#"
        hr = ["photos"]
        real_lr = [{ path = "cam.mp4", codec = "vp9" }]
        "#,
    )
    .unwrap_err();
    assert!(error.to_string().contains("vp9"), "{error}");
}

// ---------------------------------------------------------------------------------------------
// Video

/// A 10-frame H.264 MP4 of a moving ball, or None when x264enc or an H.264 decoder is missing.
fn test_video(dir: &Path) -> Option<PathBuf> {
    gst::init().unwrap();
    for element in ["x264enc", "mp4mux", "avdec_h264"] {
        if gst::ElementFactory::find(element).is_none() {
            println!("skipping the video test: GStreamer element {element} is missing");
            return None;
        }
    }
    let path = dir.join("ball.mp4");
    common::run_to_eos(
        &format!(
            "videotestsrc num-buffers=10 pattern=ball ! video/x-raw,width=64,height=48,framerate=10/1 \
             ! x264enc ! mp4mux ! filesink location={}",
            path.display()
        ),
        30,
    );
    Some(path)
}

#[test]
fn video_frames_honour_range_and_step() {
    let dir = temp_dir("video");
    let Some(video) = test_video(&dir) else {
        return;
    };
    let all = decode_video(&video, FrameRange::ALL).unwrap();
    assert_eq!(all.len(), 10);
    assert_eq!((all[0].width, all[0].height), (64, 48));
    assert_ne!(all[0], all[1]);
    let some = decode_video(
        &video,
        FrameRange {
            start: 2,
            end: Some(8),
            step: 2,
        },
    )
    .unwrap();
    assert_eq!(some, vec![all[2].clone(), all[4].clone(), all[6].clone()]);
    let tail = decode_video(
        &video,
        FrameRange {
            start: 7,
            end: None,
            step: 1,
        },
    )
    .unwrap();
    assert_eq!(tail, all[7..].to_vec());

    // As a real LR source, next to a file that is no video (skipped with a warning).
    let fake = dir.join("fake.mp4");
    std::fs::write(&fake, b"this is not a video").unwrap();
    let (_dir, hr, _) = unpaired_folders("video-loader", 1);
    let mut opts = small_options(&hr, &dir, 0);
    opts.real_lr = vec![
        SourceSpec {
            path: video,
            start_frame: 1,
            end_frame: Some(9),
            step: 4,
            lossless: false,
            codec: FootageCodec::Jpeg,
        },
        SourceSpec::from(fake),
    ];
    let mut loader = Loader::new(&opts, 2, 0).unwrap();
    assert_eq!(loader.real_lr_images(), 2);
    assert!(
        loader.warnings().iter().any(|w| w.contains("fake.mp4")),
        "{:?}",
        loader.warnings()
    );
    assert_eq!(loader.next_batch().unwrap().real_lr.size(), [4, 3, 8, 8]);
}

/// With `augment_degraded = false`, real LR patches keep their source's orientation (a ramp
/// rising to the right and downwards stays so); with the default, some are flipped.
#[test]
fn augment_degraded_off_keeps_real_lr_orientation() {
    let root = temp_dir("augment-degraded");
    let (hr, real) = (root.join("hr"), root.join("real"));
    save_png(&random_image(64, 64, 1), &hr.join("h.png")).unwrap();
    let x = Tensor::arange(40, (Kind::Float, Device::Cpu)) / 80.0;
    let ramp = (x.view([1, 1, 40]) + x.view([1, 40, 1]) * 0.5).expand([3, 40, 40], false);
    save_png(&ramp, &real.join("ramp.png")).unwrap();
    let rises = |p: &Tensor| {
        let right = (p.narrow(2, 1, 7) - p.narrow(2, 0, 7)).mean(Kind::Float);
        let down = (p.narrow(1, 1, 7) - p.narrow(1, 0, 7)).mean(Kind::Float);
        right.double_value(&[]) > 0.0 && down.double_value(&[]) > 0.0
    };
    let count_upright = |augment_degraded: bool| {
        let opts = DataOptions {
            augment_degraded,
            ..small_options(&hr, &real, 0)
        };
        let mut loader = Loader::new(&opts, 9, 0).unwrap();
        (0..5)
            .flat_map(|_| loader.next_batch().unwrap().real_lr.unbind(0))
            .filter(|p| rises(p))
            .count()
    };
    assert_eq!(count_upright(false), 20);
    assert!(count_upright(true) < 20);
}

/// Stage 1's fitting patches come per real LR source (one camera each), skipping a source
/// with no usable image, and are reproducible from the seed.
#[test]
fn fitting_patches_come_per_source() {
    let (_dir, hr, real) = unpaired_folders("fitting-per-source", 3);
    let root = hr.parent().unwrap().to_path_buf();
    let bright = root.join("bright");
    let tiny = root.join("tiny");
    save_png(&constant_image(24, 24, 0.9), &bright.join("b.png")).unwrap();
    save_png(&constant_image(4, 4, 0.5), &tiny.join("t.png")).unwrap();
    let options = DataOptions {
        real_lr: vec![
            SourceSpec::from(real),
            SourceSpec::from(tiny),
            SourceSpec::from(bright),
        ],
        ..small_options(&hr, &root.join("unused"), 1)
    };
    let data = TrainingData::load(&options).unwrap();
    let (per_source, hr) = data.fitting_patches(7, 5, 32).unwrap();
    // The tiny source is smaller than a patch: skipped, and the indices stay those of
    // data.real_lr.
    let sources: Vec<usize> = per_source.iter().map(|(s, _)| *s).collect();
    assert_eq!(sources, [0, 2]);
    // Patches are at most the training LR patch (8 here).
    for (_, patches) in &per_source {
        assert_eq!(patches.size(), [5, 3, 8, 8]);
    }
    assert_eq!(hr.size(), [5, 3, 32, 32]);
    let bright_mean = per_source[1].1.mean(Kind::Double).double_value(&[]);
    assert!((bright_mean - 0.9).abs() < 0.01, "{bright_mean}");
    let (again, hr_again) = data.fitting_patches(7, 5, 32).unwrap();
    assert!(same(&per_source[0].1, &again[0].1) && same(&hr, &hr_again));
}
