//! `train bench-step` on tiny networks: the joint iteration runs and the JSON report has a
//! positive time and the parameter counts of every network. No PyTorch, no timing assertions.

mod common;

use clap::Parser;
use common::{temp_dir, tiny_options};
use cyclesr_train::bench_step::{self, BenchStepArgs};
use serde_json::{json, Value};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    bench: BenchStepArgs,
}

#[test]
fn tiny_bench_step_reports_time_and_parameters() {
    let dir = temp_dir("bench-step");
    // Batches are random: the images tiny_options writes are never read.
    let options = tiny_options(&dir, "joint", 4);
    let json = dir.join("bench-step.json");
    let cli = Cli::parse_from([
        "bench-step",
        "-o",
        options.to_str().unwrap(),
        "--device",
        "cpu",
        "--warmup",
        "1",
        "--steps",
        "1",
        "--skip-pytorch",
        "--json",
        json.to_str().unwrap(),
    ]);
    bench_step::run(&cli.bench).unwrap();

    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let median = report["tch"]["step_seconds_median"].as_f64().unwrap();
    assert!(median > 0.0 && median.is_finite(), "median {median}");
    assert_eq!(report["tch"]["steps"].as_array().unwrap().len(), 1);
    // The first joint iteration, after both pretraining phases.
    assert_eq!(report["iteration"], 4);
    assert!(report["pytorch"].is_null());
    // By hand: translator head 592 + downs 296 + 1168 + one block 4640 + ups 1160 + 292 +
    // tail 591; PatchGAN 196 + 520 + 129; SRResNet 112 + 296 + 2·592 + 148 + 111.
    assert_eq!(
        report["parameters"]["tch"],
        json!({"g_s2r": 8739, "g_r2s": 8739, "d_r": 845, "d_s": 845, "g_l2h": 1851})
    );
}
