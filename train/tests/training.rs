//! The training model and loop: where L2's gradient goes, exact resume, NaN stop, options.

use std::path::{Path, PathBuf};

use cyclesr_train::data::UnpairedBatch;
use cyclesr_train::model::CycleSrModel;
use cyclesr_train::options::{Mode, Options};
use cyclesr_train::trainer::{fit, FitArgs, LATEST};
use gstcyclesr::model::checkpoint::read_safetensors;
use tch::{Device, Kind, Tensor};

fn temp_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("cyclesr-train-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Smooth random-looking RGB images (a few sinusoids), so that patches are not flat.
fn write_images(dir: &Path, count: u32, width: u32, height: u32, seed: u32) {
    std::fs::create_dir_all(dir).unwrap();
    for k in 0..count {
        let f = (seed * 7 + k * 3 + 1) as f32;
        let img = image::RgbImage::from_fn(width, height, |x, y| {
            let (x, y) = (x as f32, y as f32);
            let v = |p: f32| {
                ((0.5 + 0.5 * ((x * 0.11 * f + p).sin() * (y * 0.07 + p * f).cos())) * 255.0) as u8
            };
            image::Rgb([v(0.0), v(1.3), v(2.6)])
        });
        img.save(dir.join(format!("img{k:02}.png"))).unwrap();
    }
}

/// A tiny run: images made here, small networks, a few iterations.
fn tiny_options(dir: &Path, mode: &str, iterations: u64) -> PathBuf {
    write_images(&dir.join("hr"), 3, 48, 40, 1);
    write_images(&dir.join("real"), 3, 20, 18, 2);
    let text = format!(
        r#"
name = "tiny"
mode = "{mode}"
seed = 3
device = "cpu"
output = "{out}"

[data]
hr = ["{hr}"]
real_lr = ["{real}"]
lr_patch = 8
batch = 2
scale = 4
workers = 1
prefetch = 2

[networks]
sr = {{ arch = "srresnet", blocks = 1, features = 4 }}
translator = {{ features = 4, blocks = 1 }}
discriminator = {{ features = 4, layers = 1 }}
sr_discriminator = {{ features = 4 }}

[losses]
gan = {{ weight = 1.0 }}
cycle = {{ weight = 10.0 }}
identity = {{ weight = 0.5 }}
sr_mse = {{ weight = 1000.0 }}
perceptual = {{ weight = 1.0 }}
sr_gan = {{ weight = 0.05 }}

[optimizer]
lr_translator = 2e-4
lr_sr = 1e-4
beta1 = 0.9
beta2 = 0.999
grad_clip = 50.0

[schedule]
pretrain_translator = 2
pretrain_sr = 2
iterations = {iterations}
decay_start = 0.5
pool_size = 3

[logging]
every = 1
samples_every = 3

[checkpoints]
every = 1000
"#,
        out = dir.join("run").display(),
        hr = dir.join("hr").display(),
        real = dir.join("real").display(),
    );
    let path = dir.join("options.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn args(options: PathBuf) -> FitArgs {
    FitArgs {
        options,
        overrides: Vec::new(),
        resume: None,
        max_iterations: None,
        quiet: true,
    }
}

fn random_batch() -> UnpairedBatch {
    tch::manual_seed(11);
    let cpu = (Kind::Float, Device::Cpu);
    UnpairedBatch {
        index: 0,
        real_lr: Tensor::rand([2, 3, 8, 8], cpu),
        syn_lr: Tensor::rand([2, 3, 8, 8], cpu),
        hr: Tensor::rand([2, 3, 32, 32], cpu),
        paired_lr: None,
    }
}

/// G_s2r's weights after one main-phase step from the same initial state and batch.
fn g_s2r_after_step(dir: &Path, mode: &str, sr_mse: f64) -> Vec<(String, Tensor)> {
    let options = Options::load(&tiny_options(dir, mode, 4))
        .unwrap()
        .with_overrides(&[
            "schedule.pretrain_translator=0".into(),
            "schedule.pretrain_sr=0".into(),
            format!("losses.sr_mse.weight={sr_mse:e}"),
        ])
        .unwrap();
    let mut model = CycleSrModel::new(&options, Device::Cpu).unwrap();
    let before: Vec<(String, Tensor)> = g_s2r(&model)
        .into_iter()
        .map(|(k, v)| (k, v.copy()))
        .collect();
    model.train_step(&random_batch(), 0).unwrap();
    let after = g_s2r(&model);
    assert_eq!(before.len(), after.len());
    after
        .into_iter()
        .zip(before)
        .map(|((k, a), (_, b))| (k, a - b))
        .collect()
}

fn g_s2r(model: &CycleSrModel) -> Vec<(String, Tensor)> {
    model
        .state_tensors()
        .into_iter()
        .filter(|(k, _)| k.starts_with("translators/g_s2r."))
        .collect()
}

fn total_change(deltas: &[(String, Tensor)]) -> f64 {
    deltas
        .iter()
        .map(|(_, d)| d.abs().sum(Kind::Double).double_value(&[]))
        .sum()
}

#[test]
fn joint_sends_sr_loss_into_g_s2r_and_separate_does_not() {
    let dir = temp_dir("gradient-paths");
    // Joint: the same step with and without L2 moves G_s2r differently.
    let with_l2 = g_s2r_after_step(&dir, "joint", 1000.0);
    let without_l2 = g_s2r_after_step(&dir, "joint", 0.0);
    let difference: f64 = with_l2
        .iter()
        .zip(&without_l2)
        .map(|((_, a), (_, b))| (a - b).abs().sum(Kind::Double).double_value(&[]))
        .sum();
    assert!(
        difference > 1e-6,
        "L2 did not change G_s2r's update ({difference})"
    );
    // Separate: the main phase leaves stage 1 untouched whatever λ_mse is.
    let separate = g_s2r_after_step(&dir, "separate", 1000.0);
    assert_eq!(total_change(&separate), 0.0);
    assert!(total_change(&with_l2) > 0.0);
}

fn final_state(dir: &Path) -> std::collections::HashMap<String, Tensor> {
    read_safetensors(&dir.join("run/checkpoints").join(LATEST))
        .unwrap()
        .0
}

#[test]
fn resume_continues_exactly() {
    // Joint-gan exercises every network, optimiser and both pools.
    let straight = temp_dir("resume-straight");
    fit(&args(tiny_options(&straight, "joint-gan", 4))).unwrap();

    let split = temp_dir("resume-split");
    let options = tiny_options(&split, "joint-gan", 4);
    fit(&FitArgs {
        max_iterations: Some(5),
        ..args(options.clone())
    })
    .unwrap();
    fit(&FitArgs {
        resume: Some("latest".into()),
        ..args(options)
    })
    .unwrap();

    let (a, b) = (final_state(&straight), final_state(&split));
    assert_eq!(a.len(), b.len());
    assert!(
        a.keys().any(|k| k.starts_with("pools/")) && a.keys().any(|k| k.starts_with("opt_d_h/"))
    );
    for (name, t) in &a {
        let diff = (t.to_kind(Kind::Double) - b[name].to_kind(Kind::Double))
            .abs()
            .max()
            .double_value(&[]);
        assert!(diff <= 1e-6, "{name} differs by {diff} after resume");
    }
    // The loss log of the resumed run continues where the first one stopped.
    let log = std::fs::read_to_string(split.join("run/losses.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 8);
}

#[test]
fn non_finite_loss_stops_and_keeps_last_good_state() {
    let dir = temp_dir("nan");
    let options = tiny_options(&dir, "sr-syn", 3);
    fit(&args(options.clone())).unwrap();
    let good = std::fs::read(dir.join("run/checkpoints").join(LATEST)).unwrap();
    let e = fit(&FitArgs {
        resume: Some("latest".into()),
        overrides: vec![
            "losses.sr_mse.weight=nan".into(),
            "schedule.iterations=6".into(),
        ],
        ..args(options)
    })
    .unwrap_err();
    let text = format!("{e:#}");
    assert!(
        text.contains("became NaN") && text.contains("last good state"),
        "{text}"
    );
    assert_eq!(
        std::fs::read(dir.join("run/checkpoints").join(LATEST)).unwrap(),
        good
    );
}

#[test]
fn every_mode_runs_and_writes_logs_and_samples() {
    for mode in ["sr-syn", "cyclegan", "separate", "joint"] {
        let dir = temp_dir(&format!("mode-{mode}"));
        let options = tiny_options(&dir, mode, 2);
        fit(&FitArgs {
            overrides: vec!["logging.samples_every=1".into()],
            ..args(options)
        })
        .unwrap();
        let run = dir.join("run");
        assert!(run.join("losses.jsonl").exists(), "{mode}");
        assert!(run.join("checkpoints").join(LATEST).exists(), "{mode}");
        assert!(
            std::fs::read_dir(run.join("samples")).unwrap().count() > 0,
            "{mode}"
        );
    }
}

#[test]
fn schedule_decays_linearly_in_the_main_phase() {
    let dir = temp_dir("schedule");
    let options = Options::load(&tiny_options(&dir, "joint", 8)).unwrap();
    let model = CycleSrModel::new(&options, Device::Cpu).unwrap();
    let plan = model.plan();
    assert_eq!(plan.total(), 2 + 2 + 8);
    let factors: Vec<f64> = (0..12).map(|i| plan.at(i).1).collect();
    // Pretraining (4 iterations) and the first half of the main phase at full rate, then
    // linear decay towards zero.
    assert_eq!(&factors[..8], &[1.0; 8]);
    assert_eq!(&factors[8..], &[1.0, 0.75, 0.5, 0.25]);
    assert_eq!(Mode::Joint, options.mode);
}

#[test]
fn options_errors_name_the_file_and_field() {
    let dir = temp_dir("bad-options");
    let path = tiny_options(&dir, "joint", 2);
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("pool_size = 3", "pool_size = 3\npool_sise = 4");
    std::fs::write(&path, text).unwrap();
    let e = format!("{:#}", Options::load(&path).unwrap_err());
    assert!(e.contains("options.toml") && e.contains("pool_sise"), "{e}");
    let e = format!("{:#}", Options::load(&dir.join("absent.toml")).unwrap_err());
    assert!(e.contains("absent.toml"), "{e}");
}
