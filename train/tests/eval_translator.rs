//! `train eval --translator`: the CycleGAN column, bicubic(G_r2s(LR)), from a training state.

mod common;

use common::{
    args, eval_args, explicit_overrides, report, shift_and_downscale, temp_dir, tiny_options,
    write_downscaled_pairs, write_images,
};

use cyclesr_train::eval::{run, EvalArgs};
use cyclesr_train::trainer::{fit, FitArgs, LATEST};

#[test]
fn translator_of_a_cyclegan_state_is_scored() {
    let dir = temp_dir("eval-translator");
    fit(&args(tiny_options(&dir, "cyclegan", 3))).unwrap();
    let state = dir.join("run/checkpoints").join(LATEST);
    // A benchmark with odd LR sizes (the translator pads to multiples of 4 and crops back).
    write_images(&dir.join("bench/hr"), 2, 44, 36, 5);
    write_images(&dir.join("bench/lr"), 2, 11, 9, 5);

    run(&EvalArgs {
        translator: Some(state),
        ..eval_args(&dir)
    })
    .unwrap();
    let with = report(&dir);
    assert_eq!(with["with_model"], true);
    assert_eq!(with["images"].as_array().unwrap().len(), 2);
    let (model, bicubic) = (&with["mean"]["model"], &with["mean"]["bicubic"]);
    for key in ["psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb"] {
        let v = model[key].as_f64().unwrap();
        assert!(v.is_finite() && v > 0.0, "{key} = {v}");
    }

    // Stage 1's imitation of the degradation is measured.
    let degradation = &with["degradation"];
    for key in [
        "noise_synthetic",
        "noise_translated",
        "noise_real",
        "psnr_synthetic",
        "psnr_translated",
    ] {
        let v = degradation[key].as_f64().unwrap();
        assert!(v.is_finite() && v > 0.0, "{key} = {v}");
    }
    // 12x16-px LR images hold no step edge a profile fits in: no edge blur, said as such.
    for key in ["edge_blur_over_synthetic", "edge_blur_over_translated"] {
        assert!(degradation[key].is_null(), "{key}: {}", degradation[key]);
    }
    // Nor a whole 32-px tile for the pairs' response.
    assert!(
        degradation["response"].is_null(),
        "{}",
        degradation["response"]
    );

    // Bicubic alone gives the same bicubic scores: only the "model" column changed.
    run(&eval_args(&dir)).unwrap();
    assert_eq!(report(&dir)["mean"]["bicubic"], *bicubic);
}

#[test]
fn translator_needs_a_state_with_a_stage_1() {
    let dir = temp_dir("eval-translator-sr-syn");
    fit(&args(tiny_options(&dir, "sr-syn", 2))).unwrap();
    write_images(&dir.join("bench/hr"), 1, 32, 32, 5);
    write_images(&dir.join("bench/lr"), 1, 8, 8, 5);
    let state = dir.join("run/checkpoints").join(LATEST);
    let e = run(&EvalArgs {
        translator: Some(state.clone()),
        ..eval_args(&dir)
    })
    .unwrap_err();
    let message = format!("{e:#}");
    assert!(
        message.contains(&state.display().to_string()) && message.contains("trains no stage 1"),
        "{message}"
    );
}

/// With LR images of whole 32-px tiles, the report reads the real LR's linear response to the
/// synthetic LR from the pairs: here the real LR is the bicubic↓ of the HR, 8-bit, so its
/// response is none at all and only rounding is left unexplained.
#[test]
fn stage_1_report_reads_the_response_from_the_pairs() {
    let dir = temp_dir("eval-translator-response");
    fit(&FitArgs {
        overrides: explicit_overrides(),
        ..args(tiny_options(&dir, "explicit", 2))
    })
    .unwrap();
    write_downscaled_pairs(&dir.join("bench"), 2, 256, 11);
    run(&EvalArgs {
        translator: Some(dir.join("run/checkpoints").join(LATEST)),
        ..eval_args(&dir)
    })
    .unwrap();
    let response = &report(&dir)["degradation"]["response"];
    let values = |key: &str| -> Vec<f64> {
        response[key]
            .as_array()
            .unwrap_or_else(|| panic!("{key}: {response}"))
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect()
    };
    let (real, translated) = (values("gain_real"), values("gain_translated"));
    assert_eq!((real.len(), translated.len()), (4, 4));
    for gain in real {
        assert!((gain - 1.0).abs() < 0.02, "{response}");
    }
    assert!(
        translated.iter().all(|g| g.is_finite() && *g >= 0.0),
        "{response}"
    );
    // 8-bit rounding of each channel: σ ≈ 0.17 code values on Y.
    let number = |key: &str| response[key].as_f64().unwrap();
    assert!(number("unexplained_real") < 0.5, "{response}");
    assert!(number("psnr_synthetic") > 50.0, "{response}");
    assert!(number("psnr_translated").is_finite() && number("unexplained_translated") > 0.0);
}

#[test]
fn stage_1_report_compares_by_the_recorded_shift() {
    use cyclesr_train::data::{load_rgb8, save_png};
    use cyclesr_train::degrade::{degrade, DegradeManifest, DegradeRecord, Preset};

    let dir = temp_dir("eval-translator-shift");
    fit(&args(tiny_options(&dir, "cyclegan", 2))).unwrap();
    let state = dir.join("run/checkpoints").join(LATEST);
    // Real LR: the HR shifted by (2, -3) HR pixels (a sub-pixel LR shift) and downscaled,
    // nothing else, so that synthetic LR and real LR differ by the shift alone. Detailed HR
    // (random pixels), where a sub-pixel shift shows.
    tch::manual_seed(5);
    for k in 0..2 {
        let hr = tch::Tensor::rand([3, 48, 64], (tch::Kind::Float, tch::Device::Cpu));
        save_png(&hr, &dir.join(format!("bench/hr/img{k:02}.png"))).unwrap();
    }
    let shifted = shift_and_downscale((2, -3), 4);
    let mut records = Vec::new();
    for k in 0..2 {
        let name = format!("img{k:02}");
        let hr_path = dir.join(format!("bench/hr/{name}.png"));
        let lr = degrade(&load_rgb8(&hr_path).unwrap().to_tensor(), &shifted, 0).unwrap();
        save_png(&lr.to_tensor(), &dir.join(format!("bench/lr/{name}.png"))).unwrap();
        records.push(DegradeRecord {
            name,
            source: hr_path,
            hr_size: [48, 64],
            lr_size: [12, 16],
            degradation: Some(shifted.clone()),
        });
    }
    let manifest = DegradeManifest {
        preset: Some(Preset::Mild),
        stage1: None,
        without: Vec::new(),
        seed: 0,
        scale: 4,
        jpeg_downscale: false,
        images: records,
    };
    let manifest_path = dir.join("bench/degradation.json");
    std::fs::write(&manifest_path, serde_json::to_string(&manifest).unwrap()).unwrap();

    let synthetic_psnr = || {
        run(&EvalArgs {
            translator: Some(state.clone()),
            ..eval_args(&dir)
        })
        .unwrap();
        report(&dir)["degradation"]["psnr_synthetic"]
            .as_f64()
            .unwrap()
    };
    let aligned = synthetic_psnr();
    std::fs::remove_file(&manifest_path).unwrap();
    let unaligned = synthetic_psnr();
    // Aligned, only 8-bit rounding separates them; unaligned, the sub-pixel shift shows.
    assert!(aligned > 40.0, "aligned: {aligned} dB");
    assert!(
        aligned > unaligned + 5.0,
        "aligned {aligned} vs unaligned {unaligned} dB"
    );
}
