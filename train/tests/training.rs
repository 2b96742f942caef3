//! The training model and loop: where L2's gradient goes, exact resume, NaN stop, options.

mod common;

use std::path::Path;

use common::{
    args, assert_same_state, final_state, random_batch, temp_dir, tiny_options, write_images,
};

use cyclesr_train::model::{with_seeded_torch_rng, CycleSrModel};
use cyclesr_train::options::{Mode, Options};
use cyclesr_train::trainer::{fit, FitArgs, LATEST};
use gstcyclesr::model::checkpoint::{read_safetensors, varstore_tensors, SrModel};
use tch::{Device, Kind, Tensor};

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

/// Every shipped options file parses and validates, and the shipped models' recipe keeps the
/// stage 1 they were trained with.
#[test]
fn shipped_configs_are_valid() {
    use cyclesr_train::archs::degradation::{ContentGain, NoiseLevel};
    let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    let mut count = 0;
    for entry in std::fs::read_dir(&configs).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            Options::load(&path).unwrap();
            count += 1;
        }
    }
    assert!(count >= 5, "{count} options files in {}", configs.display());
    let recipe = Options::load(&configs.join("default-model.toml")).unwrap();
    assert_eq!(recipe.networks.degradation.noise_level, NoiseLevel::Bank);
    assert_eq!(
        recipe.networks.degradation.content_gain,
        ContentGain::Scalar
    );
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
    assert!(
        a.keys().any(|k| k.starts_with("pools/")) && a.keys().any(|k| k.starts_with("opt_d_h/"))
    );
    assert_same_state(&a, &b);
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
    for mode in ["sr-syn", "sr-blind", "cyclegan", "separate", "joint"] {
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

/// Mode 'paired' with `data.paired_preset` trains the oracle on pairs degraded online (here
/// by the codec preset, H.264 included); the option is refused beside `data.paired_lr` and
/// outside mode 'paired', and mode 'paired' needs one of the two.
#[test]
fn paired_preset_trains_the_oracle_online() {
    let dir = temp_dir("paired-preset-fit");
    let options = tiny_options(&dir, "sr-syn", 2);
    // Room for an 8-px LR patch and its 24 px of context at ×4.
    write_images(&dir.join("hr"), 3, 136, 136, 1);
    let with = |overrides: &[&str]| FitArgs {
        overrides: overrides.iter().map(|o| o.to_string()).collect(),
        ..args(options.clone())
    };
    fit(&with(&["mode=paired", "data.paired_preset=codec"])).unwrap();
    assert!(dir.join("run/checkpoints").join(LATEST).exists());
    for (overrides, expected) in [
        (
            &[
                "mode=paired",
                "data.paired_preset=codec",
                "data.paired_lr=elsewhere",
            ][..],
            "data.paired_lr and data.paired_preset",
        ),
        (
            &["data.paired_preset=codec"],
            "data.paired_preset is for mode 'paired' only",
        ),
        (&["mode=paired"], "needs data.paired_lr"),
    ] {
        let e = format!("{:#}", fit(&with(overrides)).unwrap_err());
        assert!(e.contains(expected), "{overrides:?}: {e}");
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

/// Epochs become ⌈epochs · ⌈patches / batch⌉⌉ iterations, counting the larger domain when
/// the mode trains on real LR and the HR domain alone otherwise.
#[test]
fn schedule_in_epochs_counts_the_larger_domain() {
    let dir = temp_dir("epochs");
    let options = Options::load(&tiny_options(&dir, "joint", 8))
        .unwrap()
        .with_overrides(&[
            "schedule.epochs=2.5".into(),
            "schedule.pretrain_sr_epochs=5".into(),
        ])
        .unwrap();
    // batch 2: 33 real LR patches are 17 iterations per epoch.
    let s = options.with_epochs_in_iterations(10, 33).unwrap().schedule;
    assert_eq!(
        (s.pretrain_translator, s.pretrain_sr, s.iterations),
        (2, 85, 43)
    );
    let sr_syn = Options {
        mode: Mode::SrSyn,
        ..options.clone()
    };
    let s = sr_syn.with_epochs_in_iterations(10, 33).unwrap().schedule;
    assert_eq!(s.iterations, 13);
    let e = options
        .with_overrides(&["schedule.epochs=-1".into()])
        .unwrap()
        .with_epochs_in_iterations(10, 33)
        .unwrap_err();
    assert!(e.to_string().contains("schedule.epochs -1"), "{e}");

    // fit counts the patches of the images it decoded: 3 HR images of 48x40 hold one 32x32
    // HR patch each, 3 real LR images of 20x18 hold four 8x8 LR patches each; 12 patches at
    // batch 2 are 6 iterations per epoch, and 2 + 2 + 6 in all.
    let fit_dir = temp_dir("epochs-fit");
    fit(&FitArgs {
        overrides: vec!["schedule.epochs=1".into(), "schedule.iterations=0".into()],
        ..args(tiny_options(&fit_dir, "joint", 8))
    })
    .unwrap();
    let (_, metadata) = read_safetensors(&fit_dir.join("run/checkpoints").join(LATEST)).unwrap();
    assert_eq!(metadata["iteration"], "10");
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

/// `networks.sr_init` starts G_l2h from a model file's weights, and names the file when its
/// network does not match `networks.sr`.
#[test]
fn sr_init_starts_g_l2h_from_a_model_file() {
    let dir = temp_dir("sr-init");
    let options = Options::load(&tiny_options(&dir, "sr-syn", 2)).unwrap();
    let trained =
        with_seeded_torch_rng(77, || SrModel::new(options.sr_config(), Device::Cpu)).unwrap();
    let file = dir.join("trained.safetensors");
    trained.save(&file).unwrap();

    let init = options
        .with_overrides(&[format!("networks.sr_init=\"{}\"", file.display())])
        .unwrap();
    let model = CycleSrModel::new(&init, Device::Cpu).unwrap();
    let weights = varstore_tensors(&model.sr_model().unwrap().vs);
    let expected: std::collections::HashMap<String, Tensor> =
        varstore_tensors(&trained.vs).into_iter().collect();
    assert_eq!(weights.len(), expected.len());
    for (name, w) in &weights {
        assert!(w.equal(&expected[name]), "{name}");
    }
    // Without it, the seed's random initialisation differs.
    let fresh = CycleSrModel::new(&options, Device::Cpu).unwrap();
    assert!(varstore_tensors(&fresh.sr_model().unwrap().vs)
        .iter()
        .any(|(name, w)| !w.equal(&expected[name])));

    let wider = init
        .with_overrides(&["networks.sr.features=8".into()])
        .unwrap();
    let error = format!(
        "{:#}",
        CycleSrModel::new(&wider, Device::Cpu).err().unwrap()
    );
    assert!(
        error.contains("networks.sr_init") && error.contains("trained.safetensors"),
        "{error}"
    );
}
