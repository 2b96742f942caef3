//! `train eval --translator`: the CycleGAN column, bicubic(G_r2s(LR)), from a training state.

mod common;

use common::{args, temp_dir, tiny_options, write_images};

use cyclesr_train::eval::{run, EvalArgs};
use cyclesr_train::trainer::{fit, LATEST};

fn eval_args(dir: &std::path::Path) -> EvalArgs {
    EvalArgs {
        model: None,
        translator: None,
        lr: dir.join("bench/lr"),
        hr: dir.join("bench/hr"),
        border: None,
        max_shift: 2,
        crop: None,
        device: "cpu".into(),
        tile_size: 0,
        tile_overlap: 0,
        json: Some(dir.join("report.json")),
    }
}

fn report(dir: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap()
}

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

    // Bicubic alone gives the same bicubic scores: only the "model" column changed.
    run(&eval_args(&dir)).unwrap();
    assert_eq!(report(&dir)["mean"]["bicubic"], *bicubic);
}

#[test]
fn translator_needs_a_state_with_translators() {
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
        message.contains(&state.display().to_string()) && message.contains("no translator"),
        "{message}"
    );
}
