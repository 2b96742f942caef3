//! `train bench-step`: one joint training iteration (`CycleSrModel::train_step` in the joint
//! phase: L1 + L2, one backward into the generators, the discriminators' updates, Adam) in tch
//! against the same iteration in PyTorch eager (tests/reference/train_step_pytorch.py), on the
//! same options, device and thread count.
//!
//! Both sides run on fixed random batches of the configured shape (no data is read) at the
//! first iteration of the joint phase, time `--warmup` untimed then `--steps` timed iterations
//! on the main thread (as `train fit` runs them), synchronising CUDA before each clock read,
//! and report the median. The parameter counts of every network must agree on both sides.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{anyhow, bail, ensure, Context, Result};
use clap::ValueEnum;
use gstcyclesr::model::device::{resolve_device, DeviceRequest};
use serde_json::{json, Value};
use tch::{Device, Kind, Tensor};

use crate::bench::{json_from_script, PyTorchBaseline};
use crate::data::UnpairedBatch;
use crate::model::{with_seeded_torch_rng, CycleSrModel, Phase};
use crate::options::{Mode, Options};

#[derive(clap::Args, Debug, Clone)]
pub struct BenchStepArgs {
    /// Options file (TOML) of a joint or joint-gan run; see configs/.
    #[arg(short, long)]
    pub options: PathBuf,
    /// Overrides of options, e.g. `-s data.batch=4`.
    #[arg(short = 's', long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// auto, cpu, cuda or cuda:N (default: the options file's `device`).
    #[arg(long)]
    pub device: Option<DeviceRequest>,
    /// libtorch CPU threads on both sides (0 = libtorch's default).
    #[arg(long, default_value_t = 0)]
    pub threads: u32,
    /// Untimed iterations before the timed ones.
    #[arg(long, default_value_t = 2)]
    pub warmup: u64,
    /// Timed iterations (the median is reported).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub steps: u64,
    #[command(flatten)]
    pub pytorch: PyTorchBaseline,
    /// Also write every figure to this JSON file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Trainable parameters of each network, counted from the optimisers' first moments (one per
/// parameter they update): `opt_translators/adam.m.g_s2r.…` counts for `g_s2r`.
fn parameter_counts(model: &CycleSrModel) -> BTreeMap<String, i64> {
    let mut counts = BTreeMap::new();
    for (name, tensor) in model.state_tensors() {
        let Some((group, rest)) = name.split_once('/') else {
            continue;
        };
        let Some(variable) = rest.strip_prefix("adam.m.") else {
            continue;
        };
        let network = match group {
            // G_l2h's variables sit at the root of its own VarStore.
            "opt_g_l2h" => "g_l2h",
            g if g.starts_with("opt_") => variable.split('.').next().unwrap_or(variable),
            _ => continue,
        };
        *counts.entry(network.to_string()).or_insert(0) += tensor.numel() as i64;
    }
    counts
}

pub fn run(args: &BenchStepArgs) -> Result<()> {
    let options = Options::load(&args.options)?.with_overrides(&args.overrides)?;
    let mode = options
        .mode
        .to_possible_value()
        .map_or_else(String::new, |v| v.get_name().to_string());
    ensure!(
        matches!(options.mode, Mode::Joint | Mode::JointGan),
        "{}: mode '{mode}' has no joint phase (bench-step times joint or joint-gan)",
        args.options.display()
    );
    if !args.pytorch.skip_pytorch && options.mode == Mode::JointGan {
        if let Some(vgg) = &options.networks.vgg19 {
            bail!(
                "networks.vgg19 = {}: the PyTorch twin has no perceptual term (remove it, or use --skip-pytorch)",
                vgg.display()
            );
        }
    }
    let request = match args.device {
        Some(d) => d,
        None => options.device.parse()?,
    };
    let (device, warning) = resolve_device(request)?;
    if let Some(w) = warning {
        eprintln!("warning: {w}");
    }
    if args.threads > 0 {
        tch::set_num_threads(args.threads as i32);
    }
    let threads = tch::get_num_threads();
    let device_name = match device {
        Device::Cuda(i) => format!("cuda:{i}"),
        _ => "cpu".to_string(),
    };
    // Other jobs on the CPU can slow either side several-fold (libgomp's spinning threads lose
    // their cores), so say how busy the machine was.
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();

    let mut model = CycleSrModel::new(&options, device)?;
    // The first iteration of the joint phase: learning-rate factor 1, as early in a run.
    let plan = model.plan().clone();
    let iteration: u64 = plan
        .phases
        .iter()
        .take_while(|(phase, _)| *phase != Phase::Joint)
        .map(|(_, n)| n)
        .sum();
    ensure!(
        plan.at(iteration).0 == Phase::Joint,
        "{}: schedule.iterations {} leaves no joint phase",
        args.options.display(),
        options.schedule.iterations
    );
    let parameters = parameter_counts(&model);

    let d = &options.data;
    let rand = |side: i64| Tensor::rand([d.batch, 3, side, side], (Kind::Float, device));
    let batch = with_seeded_torch_rng(options.seed as i64 + 1, || UnpairedBatch {
        index: iteration,
        real_lr: rand(d.lr_patch),
        syn_lr: rand(d.lr_patch),
        hr: rand(d.lr_patch * d.scale),
        paired_lr: None,
    });
    eprintln!(
        "bench-step: {} ({mode}), batch {} × {}² LR ×{}, {device_name}, {threads} threads, \
         iteration {iteration}, load average {load}",
        options.name, d.batch, d.lr_patch, d.scale
    );
    let mut steps = Vec::new();
    for k in 0..args.warmup + args.steps {
        sync(device);
        let started = Instant::now();
        model.train_step(&batch, iteration)?;
        sync(device);
        if k >= args.warmup {
            steps.push(started.elapsed().as_secs_f64());
        }
    }
    let tch_median = median(&steps);

    let pytorch = if args.pytorch.skip_pytorch {
        None
    } else {
        Some(run_pytorch(args, &options, &device_name, threads)?)
    };
    let pytorch_median = pytorch
        .as_ref()
        .map(|p| {
            p["step_seconds_median"]
                .as_f64()
                .ok_or_else(|| anyhow!("the PyTorch report has no step_seconds_median: {p}"))
        })
        .transpose()?;
    let pytorch_parameters: Option<BTreeMap<String, i64>> = pytorch
        .as_ref()
        .map(|p| serde_json::from_value(p["parameters"].clone()))
        .transpose()
        .context("parameters of the PyTorch report")?;
    let ratio = pytorch_median.map(|p| tch_median / p);

    println!("{:<22} {:>12} {:>12} {:>8}", "", "tch", "PyTorch", "ratio");
    let fmt = |v: Option<f64>, digits: usize| v.map_or("-".into(), |v| format!("{v:.digits$}"));
    println!(
        "{:<22} {:>12.4} {:>12} {:>8}",
        "seconds / iteration",
        tch_median,
        fmt(pytorch_median, 4),
        fmt(ratio, 3)
    );
    for (name, n) in &parameters {
        let other = pytorch_parameters.as_ref().and_then(|p| p.get(name));
        println!(
            "{:<22} {:>12} {:>12}",
            format!("parameters {name}"),
            n,
            other.map_or("-".into(), i64::to_string)
        );
    }

    if let Some(json) = &args.json {
        let report = json!({
            "options": args.options,
            "overrides": args.overrides,
            "name": options.name,
            "mode": mode,
            "device": device_name,
            "threads": threads,
            "load_average": load,
            "iteration": iteration,
            "shape": {"batch": d.batch, "lr_patch": d.lr_patch, "scale": d.scale},
            "tch": {"steps": steps, "step_seconds_median": tch_median},
            "pytorch": pytorch,
            "ratio_tch_over_pytorch": ratio,
            "parameters": {"tch": parameters, "pytorch": pytorch_parameters},
        });
        std::fs::write(json, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("writing {}", json.display()))?;
    }
    // Checked last so the figures are printed (and kept) even when the twin has drifted.
    if let Some(other) = &pytorch_parameters {
        ensure!(
            *other == parameters,
            "parameter counts differ: tch {parameters:?}, PyTorch {other:?} (the twin in \
             tests/reference/train_step_pytorch.py no longer mirrors the networks)"
        );
    }
    Ok(())
}

/// Runs the PyTorch twin on the effective options (overrides applied, written to a temporary
/// file), the same device and thread count, and returns the JSON it prints.
fn run_pytorch(
    args: &BenchStepArgs,
    options: &Options,
    device: &str,
    threads: i32,
) -> Result<Value> {
    let (python, script) = args.pytorch.resolve("train_step_pytorch.py");
    // Deleted when dropped, after the script has read it.
    let config = tempfile::Builder::new()
        .prefix("cyclesr-bench-step-")
        .suffix(".toml")
        .tempfile()
        .context("creating the PyTorch twin's options file")?;
    std::fs::write(config.path(), options.to_toml())
        .with_context(|| format!("writing {}", config.path().display()))?;
    let mut command = Command::new(&python);
    command
        .arg(&script)
        .arg("--config")
        .arg(config.path())
        .args(["--device", device, "--threads", &threads.to_string()])
        .args(["--warmup", &args.warmup.to_string()])
        .args(["--steps", &args.steps.to_string()]);
    json_from_script(&mut command, &python, &script)
}
