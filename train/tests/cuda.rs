//! Training on CUDA follows training on the CPU: one joint-gan step from the same state and
//! batch gives the same losses and the same updated weights, within float tolerance.
//!
//! Needs a CUDA device; without one the test returns at once after saying so.

mod common;

use std::collections::HashMap;

use common::{random_batch, temp_dir, tiny_options};
use cyclesr_train::model::CycleSrModel;
use cyclesr_train::options::Options;
use gstcyclesr::model::device::load_cuda_backend;
use tch::{Device, Kind, Tensor};

#[test]
fn joint_step_on_cuda_matches_cpu() {
    load_cuda_backend();
    if tch::Cuda::device_count() == 0 {
        eprintln!("skipped: no CUDA device");
        return;
    }
    let dir = temp_dir("cuda-step");
    let options = Options::load(&tiny_options(&dir, "joint-gan", 4))
        .unwrap()
        .with_overrides(&[
            "schedule.pretrain_translator=0".into(),
            "schedule.pretrain_sr=0".into(),
        ])
        .unwrap();
    // Same initial state on both devices: CUDA's generator would draw other weights.
    let mut cpu = CycleSrModel::new(&options, Device::Cpu).unwrap();
    let state = dir.join("initial.safetensors");
    cpu.save_state(&state, 0, &Default::default()).unwrap();
    let mut gpu = CycleSrModel::new(&options, Device::Cuda(0)).unwrap();
    gpu.load_state(&state).unwrap();

    let batch = random_batch();
    let on_gpu = gpu.to_device(random_batch());
    let cpu_losses = cpu.train_step(&batch, 0).unwrap();
    let gpu_losses = gpu.train_step(&on_gpu, 0).unwrap();
    // TF32 convolutions (libtorch's default on CUDA) round to 10 mantissa bits: the losses
    // agree to about 1e-3 relative, not 1e-6.
    let mut worst_loss = 0.0f64;
    for (name, &c) in &cpu_losses {
        let g = gpu_losses[name];
        eprintln!("{name}: cpu {c:.6} cuda {g:.6}");
        worst_loss = worst_loss.max((c - g).abs() / c.abs().max(1.0));
    }
    assert!(
        worst_loss <= 1e-2,
        "losses differ by {worst_loss} (relative)"
    );
    // Adam's first step moves each weight by about ±lr whatever the gradient's size, so a
    // gradient that differs in rounding moves a weight by at most 2·lr.
    let cpu_state: HashMap<String, Tensor> = cpu.state_tensors().into_iter().collect();
    let mut worst = 0.0f64;
    for (name, g) in gpu.state_tensors() {
        if name.starts_with("pools/") || name.starts_with("opt_") {
            continue;
        }
        let diff = (g.to_device(Device::Cpu).to_kind(Kind::Double)
            - cpu_state[&name].to_kind(Kind::Double))
        .abs()
        .max()
        .double_value(&[]);
        worst = worst.max(diff);
    }
    eprintln!("worst weight difference after one step: {worst:.2e}");
    assert!(worst <= 2.0 * 2e-4 + 1e-5, "weights differ by {worst}");
}
