//! `train bench`: speed and memory of G_l2h on one device, in one run, so that the ratios
//! between the figures stay meaningful on a noisy machine.
//!
//! For each frame size it measures, on the same device, network and weights:
//! 1. the raw forward pass in tch (fp32; fp16 and bf16 too on CUDA): `--warmup` untimed
//!    passes, then the median of `--runs` timed ones; in fp32 also with the weights in
//!    libtorch's default NCHW layout instead of the channels-last layout the element uses;
//! 2. the same network and weights in PyTorch eager (tests/reference/bench_pytorch.py, run
//!    with the project's venv Python, same thread count, input size and protocol);
//! 3. the whole element in `videotestsrc ! video/x-raw,format=F,… ! cyclesr ! fakesink` for
//!    each format F, then tiled, as frames per second and as a ratio to the raw forward's rate;
//! 4. peak memory, in runs of their own after the timings (see `fix_mmap_threshold` and
//!    `PeakProbe`): VmHWM, reset through /proc/self/clear_refs, and sampled anonymous memory,
//!    of one forward in tch and in PyTorch and of whole-frame and tiled element runs; on CUDA,
//!    the process's GPU memory as nvidia-smi reports it and PyTorch's exact peaks.
//!
//! Every timing also records the process's CPU time: with other jobs on the CPU, CPU-time
//! ratios move much less than wall-time ones, and `--rounds` interleaves repeated rounds.
//! The network always runs the way the element runs it (see `time_forward`), and the
//! machine's other load is printed at the top.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{anyhow, bail, ensure, Context, Result};
use gst::prelude::*;
use gstcyclesr::model::arch::{trainable_parameters, SrArch, SrConfig};
use gstcyclesr::model::checkpoint::SrModel;
use gstcyclesr::model::device::{resolve_device, DeviceRequest, Precision};
use gstcyclesr::model::layout::{set_layout, Layout};
use serde_json::{json, Value};
use tch::{Device, Kind, Tensor};

use crate::model::with_seeded_torch_rng;

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// G_l2h architecture (with random weights; ignored with --model).
    #[arg(long, default_value = "srresnet")]
    pub arch: SrArch,
    /// Residual / conv-BN blocks (ignored with --model).
    #[arg(long, default_value_t = 16)]
    pub blocks: i64,
    /// Feature channels (ignored with --model).
    #[arg(long, default_value_t = 64)]
    pub features: i64,
    /// Upscaling factor, 2 or 4 (ignored with --model).
    #[arg(long, default_value_t = 4)]
    pub scale: i64,
    /// A real checkpoint to time instead of randomly initialised weights.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Input frame size WIDTHxHEIGHT; repeat for several (e.g. 320x180, 480x270, 960x540).
    #[arg(long = "size", default_value = "320x180", value_parser = parse_size)]
    pub sizes: Vec<(i64, i64)>,
    /// Frames per element run (num-buffers); the first one is the element's warm-up.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(2..))]
    pub frames: u32,
    /// Timed forward passes (the median is reported).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub runs: u64,
    /// Untimed forward passes before the timed ones.
    #[arg(long, default_value_t = 1)]
    pub warmup: u64,
    /// Repeat the speed measurements this many times, interleaved (every other round in
    /// reverse order); ratios are then medians of the rounds' ratios, steadier on a CPU that
    /// other jobs share.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: u32,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: DeviceRequest,
    /// libtorch CPU threads for every measurement (0 = libtorch's default).
    #[arg(long, default_value_t = 0)]
    pub threads: u32,
    /// Video formats of the element runs, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "RGB,I420,NV12")]
    pub formats: Vec<String>,
    /// Precision of the element runs (fp16 only on CUDA); the ratio uses the raw forward at
    /// the same precision.
    #[arg(long, default_value = "fp32")]
    pub precision: Precision,
    /// tile-size of the tiled element run (input pixels).
    #[arg(long, default_value_t = 128)]
    pub tile_size: u32,
    /// tile-overlap of the tiled element run (input pixels).
    #[arg(long, default_value_t = 16)]
    pub tile_overlap: u32,
    /// The element's `batch` (frames per forward pass) in every element run; --frames must
    /// exceed it. fps then counts from the end of the first batch.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub batch: u32,
    /// The element's `overlap`: inference on a worker thread in every element run.
    #[arg(long)]
    pub overlap: bool,
    #[command(flatten)]
    pub pytorch: PyTorchBaseline,
    /// Also write every figure to this JSON file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// The PyTorch side of a benchmark: a reference script of tests/reference run by a Python that
/// has torch.
#[derive(clap::Args, Debug, Clone)]
pub struct PyTorchBaseline {
    /// Do not run the PyTorch eager baseline.
    #[arg(long)]
    pub skip_pytorch: bool,
    /// Python with torch and safetensors (default: $CYCLESR_PYTHON, else the project's .venv).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// The PyTorch script (default: this command's script in tests/reference of this source
    /// tree).
    #[arg(long)]
    pub pytorch_script: Option<PathBuf>,
}

impl PyTorchBaseline {
    /// The Python and the script to run, `default_script` being a file of tests/reference.
    pub(crate) fn resolve(&self, default_script: &str) -> (PathBuf, PathBuf) {
        let python = self.python.clone().unwrap_or_else(default_python);
        let script = self.pytorch_script.clone().unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../tests/reference")
                .join(default_script)
        });
        (python, script)
    }
}

fn parse_size(s: &str) -> Result<(i64, i64), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("'{s}' is not WIDTHxHEIGHT"))?;
    let parse = |v: &str| v.trim().parse::<i64>().ok().filter(|&v| v > 0);
    match (parse(w), parse(h)) {
        (Some(w), Some(h)) => Ok((w, h)),
        _ => Err(format!("'{s}' is not WIDTHxHEIGHT with positive numbers")),
    }
}

const MIB: f64 = 1024.0 * 1024.0;
/// Frames of the element runs that only measure memory (the peak is reached on the first).
const MEMORY_FRAMES: u32 = 2;

pub fn run(args: &BenchArgs) -> Result<()> {
    ensure!(!args.formats.is_empty(), "--formats is empty");
    gst::init()?;
    register_element();

    let (device, _) = resolve_device(args.device)?;
    let cuda = device.is_cuda();
    if args.threads > 0 {
        tch::set_num_threads(args.threads as i32);
    }
    let threads = tch::get_num_threads();
    // fp16 runs on CUDA only (the element falls back to fp32 on the CPU); bf16 runs on both,
    // natively on CPUs with AVX512-BF16 or AMX.
    let precision = if !cuda && args.precision == Precision::Fp16 {
        eprintln!("bench: --precision fp16 needs CUDA; the element runs fp32 on the CPU");
        Precision::Fp32
    } else {
        args.precision
    };
    let precisions: &[Precision] = if cuda {
        &[Precision::Fp32, Precision::Fp16, Precision::Bf16]
    } else {
        &[Precision::Fp32, Precision::Bf16]
    };

    // One set of weights for every measurement: the given checkpoint, or a seeded random
    // network written to a temporary checkpoint that tch, PyTorch and the element all load.
    let temp = tempfile::Builder::new()
        .prefix("cyclesr-bench-")
        .tempdir()
        .context("creating a temporary directory for the benchmark's weights")?;
    let (model_path, model_source) = match &args.model {
        Some(path) => (path.clone(), path.display().to_string()),
        None => {
            let config = SrConfig {
                arch: args.arch,
                blocks: args.blocks,
                features: args.features,
                scale: args.scale,
            };
            let model = with_seeded_torch_rng(0, || SrModel::new(config, Device::Cpu))?;
            let path = temp.path().join("g_l2h.safetensors");
            model.save(&path)?;
            (path, "random weights (seed 0)".to_string())
        }
    };
    let probe = SrModel::load(&model_path, Device::Cpu)?;
    let config = probe.config;
    let parameters = trainable_parameters(&probe.vs);
    drop(probe);

    let machine = machine_info(device, threads);
    print_machine(&machine);
    println!(
        "network: {} {}x{} x{} ({parameters} parameters), {model_source}",
        config.arch, config.blocks, config.features, config.scale
    );
    println!(
        "protocol: forward = median of {} runs after {} warm-up; element = {} frames, the first \
         one is its warm-up; {} round(s)\n",
        args.runs, args.warmup, args.frames, args.rounds
    );
    let bench = Bench {
        args,
        model_path: &model_path,
        device,
        threads,
        precision,
    };

    // Speed, every size first; memory afterwards, because measuring it reproducibly changes
    // how glibc allocates (see `fix_mmap_threshold`).
    let mut results = Vec::new();
    for &size in &args.sizes {
        let s = config.scale;
        println!(
            "== {}x{} -> {}x{} ==",
            size.0,
            size.1,
            size.0 * s,
            size.1 * s
        );
        let result = bench.speed(size, s, precisions)?;
        result.print(args);
        results.push(result);
    }
    if args.sizes.len() > 1 {
        print_summary(&results);
    }

    fix_mmap_threshold();
    println!(
        "== peak memory over each run's start ==\n  own runs after the timings ({MEMORY_FRAMES} \
         element frames, 1 forward), glibc's mmap threshold fixed at 128 KiB so that freed \
         tensors leave the RSS at once\n  anon: peak RssAnon sampled every ms (the tensors); \
         VmHWM: the kernel's peak RSS, reset through /proc/self/clear_refs (also counts code \
         paged back in)"
    );
    println!(
        "  {:<10} {:<6} {:>11} {:>12} {:>13} {:>17} {:>12}",
        "input",
        "figure",
        "tch fwd",
        "PyTorch fwd",
        format!("{} whole", args.formats[0]),
        format!(
            "{} tiles {}+{}",
            args.formats[0], args.tile_size, args.tile_overlap
        ),
        "tiled/whole"
    );
    for result in &mut results {
        let memory = bench.memory(result.input)?;
        memory.print_row(result.input);
        result.memory = Some(memory);
    }
    if cuda {
        for r in &results {
            if let Some(m) = &r.memory {
                m.print_cuda(r.input);
            }
        }
    } else {
        println!("  CUDA memory: not measured (CPU run)");
    }
    println!();

    if let Some(path) = &args.json {
        let report = json!({
            "machine": machine,
            "network": {
                "arch": config.arch.to_string(),
                "blocks": config.blocks,
                "features": config.features,
                "scale": config.scale,
                "parameters": parameters,
                "weights": model_source,
            },
            "protocol": {
                "warmup": args.warmup,
                "runs": args.runs,
                "frames": args.frames,
                "batch": args.batch,
                "overlap": args.overlap,
                "rounds": args.rounds,
                "memory_frames": MEMORY_FRAMES,
                "element_precision": precision.to_string(),
                "tile_size": args.tile_size,
                "tile_overlap": args.tile_overlap,
            },
            "load_average_end": load_average(),
            "sizes": results.iter().map(SizeResult::to_json).collect::<Vec<_>>(),
        });
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
        println!("figures written to {}", path.display());
    }
    Ok(())
}

fn print_machine(machine: &Value) {
    let text = |v: &Value| v.as_str().unwrap_or("?").to_string();
    println!("machine: {}", text(&machine["cpu"]));
    println!(
        "  cores {}, libtorch threads {}, device {}, load average {}",
        machine["cores"],
        machine["torch_threads"],
        text(&machine["device"]),
        text(&machine["load_average"])
    );
    if let Some(gpu) = machine["gpu"].as_str() {
        println!("  GPU: {gpu}");
    }
    if let Some(Value::Object(env)) = machine
        .get("env")
        .filter(|e| e.as_object().is_some_and(|m| !m.is_empty()))
    {
        let set: Vec<String> = env
            .iter()
            .map(|(k, v)| format!("{k}={}", text(v)))
            .collect();
        println!("  environment: {}", set.join(" "));
    }
    if let Some(other) = machine["busy_processes"]
        .as_array()
        .filter(|a| !a.is_empty())
    {
        let names: Vec<_> = other.iter().filter_map(Value::as_str).collect();
        println!(
            "  SHARED CPU: other processes busy at the start: {}",
            names.join("; ")
        );
    }
}

/// What every measurement shares.
struct Bench<'a> {
    args: &'a BenchArgs,
    model_path: &'a Path,
    device: Device,
    threads: i32,
    precision: Precision,
}

impl Bench<'_> {
    fn element(
        &self,
        format: &str,
        size: (i64, i64),
        frames: u32,
        tile_size: u32,
        measure_memory: bool,
    ) -> Result<ElementRun> {
        run_element(
            self.model_path,
            self.device,
            self.threads,
            self.precision,
            format,
            size,
            frames,
            (tile_size, self.args.tile_overlap),
            (self.args.batch, self.args.overlap),
            measure_memory,
        )
    }

    /// Measurements 1 to 3: tch forward, PyTorch forward, element fps for every format, then
    /// tiled; `--rounds` times, every other round in the reverse order, so that a load that
    /// drifts affects both sides of each ratio alike.
    fn speed(
        &self,
        (w, h): (i64, i64),
        scale: i64,
        precisions: &[Precision],
    ) -> Result<SizeResult> {
        let args = self.args;
        // Element runs: each format on whole frames, then the first format in tiles.
        let element_runs: Vec<(&str, u32)> = args
            .formats
            .iter()
            .map(|f| (f.as_str(), 0))
            .chain([(args.formats[0].as_str(), args.tile_size)])
            .collect();
        #[derive(Clone, Copy)]
        enum Step {
            Forward,
            PyTorch,
            Element(usize),
        }
        let mut steps = vec![Step::Forward];
        if !args.pytorch.skip_pytorch {
            steps.push(Step::PyTorch);
        }
        steps.extend((0..element_runs.len()).map(Step::Element));

        let mut rounds = Vec::new();
        for round in 0..args.rounds {
            if args.rounds > 1 {
                println!("  round {}/{}", round + 1, args.rounds);
            }
            let mut forward = BTreeMap::new();
            let mut forward_nchw = None;
            let mut pytorch = Value::Null;
            let mut element: Vec<Option<ElementRun>> = element_runs.iter().map(|_| None).collect();
            let mut order = steps.clone();
            if round % 2 == 1 {
                order.reverse();
            }
            for step in order {
                match step {
                    Step::Forward => {
                        let time = |precision, layout| {
                            time_forward(
                                self.model_path,
                                self.device,
                                (precision, layout),
                                (w, h),
                                args.warmup,
                                args.runs,
                            )
                        };
                        for &p in precisions {
                            forward.insert(p.to_string(), time(p, Layout::ChannelsLast)?);
                        }
                        forward_nchw = Some(time(Precision::Fp32, Layout::ChannelsFirst)?);
                    }
                    Step::PyTorch => {
                        let names: Vec<String> =
                            precisions.iter().map(Precision::to_string).collect();
                        let names = names.join(",");
                        pytorch = run_pytorch(self, w, h, &names, args.warmup, args.runs, false)?;
                    }
                    Step::Element(i) => {
                        let (format, tiles) = element_runs[i];
                        element[i] =
                            Some(self.element(format, (w, h), args.frames, tiles, false)?);
                    }
                }
            }
            rounds.push(Round {
                forward,
                forward_nchw: forward_nchw.unwrap_or_default(),
                pytorch,
                element: element.into_iter().flatten().collect(),
            });
        }
        Ok(SizeResult {
            input: (w, h),
            output: (w * scale, h * scale),
            precision: self.precision,
            rounds,
            memory: None,
        })
    }

    /// Measurement 4: peak memory of one tch forward, one PyTorch forward, the element on
    /// whole frames and the element in tiles.
    fn memory(&self, (w, h): (i64, i64)) -> Result<MemoryResult> {
        let forward = forward_peak(self.model_path, self.device, w, h)?;
        let pytorch = if self.args.pytorch.skip_pytorch {
            Value::Null
        } else {
            run_pytorch(self, w, h, "fp32", 0, 1, true)?
        };
        let format = &self.args.formats[0];
        let measured = |tiles| -> Result<Peak> {
            // At least one full batch.
            let frames = MEMORY_FRAMES.max(self.args.batch + 1);
            self.element(format, (w, h), frames, tiles, true)?
                .memory
                .ok_or_else(|| anyhow!("no memory figures"))
        };
        let whole = measured(0)?;
        let tiled = measured(self.args.tile_size)?;
        Ok(MemoryResult {
            format: format.clone(),
            tile_size: self.args.tile_size,
            tile_overlap: self.args.tile_overlap,
            forward,
            pytorch,
            whole,
            tiled,
            cuda: self.device.is_cuda(),
        })
    }
}

/// Registers the element in this process once, from the code linked into this binary (it
/// takes precedence over a plugin file that GST_PLUGIN_PATH may also offer).
fn register_element() {
    use std::sync::Once;
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        if let Err(e) = gstcyclesr::plugin_register_static() {
            eprintln!("bench: registering cyclesr: {e}");
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Machine description

fn machine_info(device: Device, threads: i32) -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".to_string());
    let logical = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let cores = std::thread::available_parallelism().map_or(logical, |n| n.get());
    // Variables that change libtorch's speed or memory behaviour, where set.
    let env: serde_json::Map<String, Value> = [
        "OMP_NUM_THREADS",
        "OMP_WAIT_POLICY",
        "GOMP_SPINCOUNT",
        "MKL_NUM_THREADS",
        "THP_MEM_ALLOC_ENABLE",
        "MALLOC_MMAP_THRESHOLD_",
        "LD_PRELOAD",
    ]
    .iter()
    .filter_map(|k| Some((k.to_string(), json!(std::env::var(k).ok()?))))
    .collect();
    let gpu = if device.is_cuda() {
        nvidia_smi(&["--query-gpu=name,memory.total", "--format=csv,noheader"])
    } else {
        None
    };
    json!({
        "cpu": cpu,
        "cores": cores,
        "torch_threads": threads,
        "device": format!("{device:?}"),
        "gpu": gpu,
        "load_average": load_average(),
        "busy_processes": busy_processes(),
        "transparent_hugepage": std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .ok()
            .map(|s| s.trim().to_string()),
        "env": env,
    })
}

fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(
        text.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// Other processes that used more than half a core over a short sample, so a report says
/// when the timings were taken on a shared CPU.
fn busy_processes() -> Vec<String> {
    fn cpu_ticks() -> Vec<(u32, u64, String)> {
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        dir.filter_map(|e| {
            let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let (_, rest) = stat.rsplit_once(')')?;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let ticks =
                fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmd: String = String::from_utf8_lossy(&cmd).replace('\0', " ");
            Some((pid, ticks, cmd.trim().chars().take(80).collect()))
        })
        .collect()
    }
    let me = std::process::id();
    let before = cpu_ticks();
    let interval = std::time::Duration::from_millis(500);
    std::thread::sleep(interval);
    let after = cpu_ticks();
    // Clock ticks are 1/100 s on Linux.
    let threshold = (interval.as_secs_f64() * 100.0 * 0.5) as u64;
    after
        .into_iter()
        .filter(|(pid, _, _)| *pid != me)
        .filter_map(|(pid, ticks, cmd)| {
            let (_, old, _) = before.iter().find(|(p, _, _)| *p == pid)?;
            (ticks.saturating_sub(*old) > threshold).then_some(cmd)
        })
        .collect()
}

fn nvidia_smi(query: &[&str]) -> Option<String> {
    let out = Command::new("nvidia-smi").args(query).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// GPU memory held by this process according to nvidia-smi (the CUDA context plus what
/// libtorch's caching allocator reserved; the allocator never hands memory back by itself,
/// so this is the largest reservation so far, not the current use).
fn cuda_process_bytes() -> Option<u64> {
    let text = nvidia_smi(&[
        "--query-compute-apps=pid,used_memory",
        "--format=csv,noheader,nounits",
    ])?;
    let me = std::process::id().to_string();
    text.lines().find_map(|l| {
        let (pid, mib) = l.split_once(',')?;
        (pid.trim() == me).then(|| mib.trim().parse::<u64>().ok().map(|m| m << 20))?
    })
}

// ---------------------------------------------------------------------------------------------
// Peak resident memory

/// Returns freed heap memory to the kernel, so the next peak starts from what is in use.
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> std::os::raw::c_int;
        }
        // SAFETY: malloc_trim only releases free memory of glibc's own arenas.
        unsafe {
            malloc_trim(0);
        }
    }
}

/// Makes peak RSS reproducible. By default glibc raises its mmap threshold (up to 32 MiB)
/// each time a large block is freed, so later tensors of a few MiB come from the heap and
/// stay resident after they are freed, wherever heap fragmentation pins them: the same run
/// then peaks anywhere between +430 and +670 MiB (SRResNet 6×32, 320×180, tiled). With the
/// threshold fixed at its initial 128 KiB every tensor is its own mapping, returned to the
/// kernel when freed, and the peak is that of the live tensors (+220 MiB, to the MiB, run
/// after run). Not used for the timings: the extra page faults slow a forward by 20–35%.
fn fix_mmap_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const M_MMAP_THRESHOLD: std::os::raw::c_int = -3;
        extern "C" {
            fn mallopt(
                param: std::os::raw::c_int,
                value: std::os::raw::c_int,
            ) -> std::os::raw::c_int;
        }
        // SAFETY: mallopt only changes glibc's allocation policy for later allocations.
        unsafe {
            mallopt(M_MMAP_THRESHOLD, 128 * 1024);
        }
    }
}

/// The environment that gives a Python child the same allocation policy.
const PYTHON_FIXED_MMAP_THRESHOLD: (&str, &str) = ("MALLOC_MMAP_THRESHOLD_", "131072");

/// A `VmRSS`/`VmHWM` figure of this process, in bytes.
fn status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|l| {
        let kib = l
            .strip_prefix(field)?
            .strip_prefix(':')?
            .split_whitespace()
            .next()?;
        kib.parse::<u64>().ok().map(|k| k * 1024)
    })
}

/// A peak-memory measurement in progress.
///
/// Two figures. VmHWM, the kernel's peak RSS, reset at the start by writing "5" to
/// /proc/self/clear_refs (Linux ≥ 4.0). And the peak of anonymous memory (RssAnon, which is
/// where tensors live), sampled every ms by a thread: RSS also counts file-backed pages, and
/// on a machine whose kernel reclaims cold pages (DAMON, memory cgroups) the libtorch and
/// GStreamer code paged back in during a run inflates VmHWM by tens to hundreds of MiB,
/// depending on how long the process sat idle before.
struct PeakProbe {
    baseline_rss: u64,
    baseline_anon: u64,
    baseline_file: u64,
    stop: Arc<std::sync::atomic::AtomicBool>,
    sampler: std::thread::JoinHandle<u64>,
}

/// Trims the heap, resets VmHWM and starts sampling RssAnon.
fn start_peak() -> Result<PeakProbe> {
    use std::sync::atomic::{AtomicBool, Ordering};
    trim_heap();
    std::fs::write("/proc/self/clear_refs", "5")
        .context("resetting the peak RSS through /proc/self/clear_refs")?;
    let field =
        |name: &str| status_bytes(name).ok_or_else(|| anyhow!("no {name} in /proc/self/status"));
    let baseline_rss = field("VmRSS")?;
    let baseline_anon = field("RssAnon")?;
    let baseline_file = field("RssFile")?;
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("bench-rss".into())
            .spawn(move || {
                let mut peak = 0;
                loop {
                    peak = peak.max(status_bytes("RssAnon").unwrap_or(0));
                    if stop.load(Ordering::Relaxed) {
                        return peak;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            })?
    };
    Ok(PeakProbe {
        baseline_rss,
        baseline_anon,
        baseline_file,
        stop,
        sampler,
    })
}

#[derive(Clone, Copy)]
struct Peak {
    baseline_rss: u64,
    /// VmHWM.
    peak_rss: u64,
    baseline_anon: u64,
    /// Largest RssAnon sampled.
    peak_anon: u64,
    /// File-backed pages that became resident during the run (RssFile after − before).
    file_growth: i64,
    /// nvidia-smi's figure for this process after the run (CUDA only).
    cuda_process: Option<u64>,
}

impl PeakProbe {
    fn finish(self, device: Device) -> Result<Peak> {
        let peak_rss =
            status_bytes("VmHWM").ok_or_else(|| anyhow!("no VmHWM in /proc/self/status"))?;
        let file = status_bytes("RssFile").unwrap_or(self.baseline_file);
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let peak_anon = self
            .sampler
            .join()
            .map_err(|_| anyhow!("the RSS sampler panicked"))?;
        Ok(Peak {
            baseline_rss: self.baseline_rss,
            peak_rss,
            baseline_anon: self.baseline_anon,
            peak_anon,
            file_growth: file as i64 - self.baseline_file as i64,
            cuda_process: if device.is_cuda() {
                cuda_process_bytes()
            } else {
                None
            },
        })
    }
}

impl Peak {
    /// VmHWM over the RSS at the start.
    fn over(&self) -> u64 {
        self.peak_rss.saturating_sub(self.baseline_rss)
    }

    /// Peak anonymous memory over the anonymous memory at the start.
    fn anon_over(&self) -> u64 {
        self.peak_anon.saturating_sub(self.baseline_anon)
    }

    fn to_json(self) -> Value {
        json!({
            "baseline_rss_bytes": self.baseline_rss,
            "peak_rss_bytes": self.peak_rss,
            "peak_over_baseline_bytes": self.over(),
            "baseline_anon_bytes": self.baseline_anon,
            "peak_anon_bytes": self.peak_anon,
            "anon_over_baseline_bytes": self.anon_over(),
            "file_rss_growth_bytes": self.file_growth,
            "cuda_process_bytes": self.cuda_process,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Raw forward

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// G_l2h loaded and probed on this thread, and a fixed random input, both on the device.
fn load_for_forward(
    model_path: &Path,
    device: Device,
    (precision, layout): (Precision, Layout),
    (w, h): (i64, i64),
) -> Result<(SrModel, Tensor)> {
    let mut model = SrModel::load(model_path, device)?;
    set_layout(&model.vs, layout);
    let kind = precision.kind();
    if kind != Kind::Float {
        model.vs.set_kind(kind);
    }
    drop(model.upscale(&Tensor::zeros([1, 3, 4, 4], (kind, device))));
    let x = with_seeded_torch_rng(1, || Tensor::rand([1, 3, h, w], (Kind::Float, device)))
        .to_kind(kind);
    sync(device);
    Ok((model, x))
}

/// CPU time used so far by every thread of this process (CLOCK_PROCESS_CPUTIME_ID), seconds.
///
/// Wall time on a CPU shared with other jobs measures the other jobs as much as this one; the
/// CPU time this process spends on a frame barely depends on them, so ratios of CPU times are
/// the steadier estimate of the element's overhead there.
fn process_cpu_seconds() -> f64 {
    #[repr(C)]
    struct Timespec {
        tv_sec: std::os::raw::c_long,
        tv_nsec: std::os::raw::c_long,
    }
    extern "C" {
        fn clock_gettime(clock: std::os::raw::c_int, ts: *mut Timespec) -> std::os::raw::c_int;
    }
    const CLOCK_PROCESS_CPUTIME_ID: std::os::raw::c_int = 2;
    let mut ts = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    let rc = unsafe { clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    if rc == 0 {
        ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
    } else {
        f64::NAN
    }
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// Wall and process CPU seconds of each of a series of passes.
#[derive(Default)]
struct Passes {
    wall: Vec<f64>,
    cpu: Vec<f64>,
}

/// Runs `passes` forward passes on a new thread, timing each one.
fn forward_on_worker(model: SrModel, x: Tensor, device: Device, passes: u64) -> Result<Passes> {
    std::thread::Builder::new()
        .name("bench-forward".into())
        .spawn(move || {
            let mut times = Passes::default();
            for _ in 0..passes {
                let cpu = process_cpu_seconds();
                let started = Instant::now();
                let y = model.upscale(&x);
                sync(device);
                times.wall.push(started.elapsed().as_secs_f64());
                times.cpu.push(process_cpu_seconds() - cpu);
                drop(y);
            }
            times
        })?
        .join()
        .map_err(|_| anyhow!("the forward pass panicked"))
}

/// `SrModel::upscale` (eval mode, no autograd) on a fixed random input already on the device,
/// in the given precision; CUDA is synchronised after every pass.
///
/// Where it runs matters on a CPU that other jobs share. The element never runs the network on
/// the thread that loaded it: `start()` (model load and a 4×4 probe forward) runs on the
/// application's thread and frames on a GStreamer streaming thread. libtorch's OpenMP
/// (libgomp) then manages two thread teams, more threads than CPUs, and throttles its
/// busy-waiting at barriers to ~100 spins. A forward on the only team spins up to 300,000
/// times per barrier instead; with the CPUs shared that can make a small network many times
/// slower (seen: SRResNet 2×8 at 64×36, 0.37 s vs 0.016 s per pass on a shared 2-core box). So
/// the forward is timed the way the element runs it: model loaded and probed on this thread,
/// passes on another.
fn time_forward(
    model_path: &Path,
    device: Device,
    precision_layout: (Precision, Layout),
    size: (i64, i64),
    warmup: u64,
    runs: u64,
) -> Result<Passes> {
    let (model, x) = load_for_forward(model_path, device, precision_layout, size)?;
    let times = forward_on_worker(model, x, device, warmup + runs)?;
    Ok(Passes {
        wall: times.wall[warmup as usize..].to_vec(),
        cpu: times.cpu[warmup as usize..].to_vec(),
    })
}

/// Peak memory of one fp32 forward pass (run as `time_forward` runs it).
fn forward_peak(model_path: &Path, device: Device, w: i64, h: i64) -> Result<Peak> {
    let fp32 = (Precision::Fp32, Layout::ChannelsLast);
    let (model, x) = load_for_forward(model_path, device, fp32, (w, h))?;
    let probe = start_peak()?;
    forward_on_worker(model, x, device, 1)?;
    probe.finish(device)
}

// ---------------------------------------------------------------------------------------------
// 2. PyTorch eager

fn default_python() -> PathBuf {
    if let Some(p) = std::env::var_os("CYCLESR_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

/// Runs tests/reference/bench_pytorch.py on the same checkpoint, size, device and thread
/// count and returns the JSON it prints. `fixed_mmap` gives it the allocation policy of the
/// memory measurements and has it sample its anonymous memory.
fn run_pytorch(
    bench: &Bench,
    w: i64,
    h: i64,
    precisions: &str,
    warmup: u64,
    runs: u64,
    fixed_mmap: bool,
) -> Result<Value> {
    let args = bench.args;
    let (python, script) = args.pytorch.resolve("bench_pytorch.py");
    let device = match bench.device {
        Device::Cuda(i) => format!("cuda:{i}"),
        _ => "cpu".to_string(),
    };
    let mut command = Command::new(&python);
    command
        .arg(&script)
        .arg("--model")
        .arg(bench.model_path)
        .args(["--width", &w.to_string(), "--height", &h.to_string()])
        .args(["--threads", &bench.threads.to_string()])
        .args(["--warmup", &warmup.to_string(), "--runs", &runs.to_string()])
        .args(["--device", &device, "--precisions", precisions]);
    if fixed_mmap {
        // The memory run measures the layout the element's figures compare with.
        command.env(PYTHON_FIXED_MMAP_THRESHOLD.0, PYTHON_FIXED_MMAP_THRESHOLD.1);
        command.args(["--sample-memory", "--layouts", "nchw"]);
    }
    json_from_script(&mut command, &python, &script)
}

/// Runs `command` (`python script ...`) and returns the JSON object it prints last; errors say
/// which script failed and how.
pub(crate) fn json_from_script(
    command: &mut Command,
    python: &Path,
    script: &Path,
) -> Result<Value> {
    let output = command.output().with_context(|| {
        format!(
            "running {} {} (use --python, or --skip-pytorch)",
            python.display(),
            script.display()
        )
    })?;
    if !output.status.success() {
        bail!(
            "{} {} failed ({}): {}",
            python.display(),
            script.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .ok_or_else(|| anyhow!("{} printed no JSON: {stdout}", script.display()))?;
    serde_json::from_str(line)
        .with_context(|| format!("parsing the output of {}", script.display()))
}

// ---------------------------------------------------------------------------------------------
// 3. and 4. The element in a pipeline

#[derive(Default)]
struct Timeline {
    /// When each buffer reached the element's sink pad.
    sink_in: Vec<Instant>,
    /// When each buffer left the element's src pad.
    src_out: Vec<Instant>,
    /// When EOS left the element's src pad.
    eos: Option<Instant>,
    /// Process CPU time when the first buffer and EOS left the element.
    cpu_first: f64,
    cpu_eos: f64,
}

struct ElementRun {
    format: String,
    tile_size: u32,
    tile_overlap: u32,
    frames: usize,
    /// Frames after the first / time from the first output buffer to EOS.
    fps: f64,
    /// Median time a frame spends inside the element (sink pad → src pad), first one excluded.
    frame_median_s: f64,
    /// Process CPU time from the first output buffer to EOS, per frame.
    cpu_per_frame_s: f64,
    /// Peak memory, when asked for.
    memory: Option<Peak>,
}

/// Runs `videotestsrc num-buffers=N ! video/x-raw,format=F,width=W,height=H ! cyclesr ! fakesink`.
///
/// How the time is taken: model loading happens in the element's `start()` (READY→PAUSED),
/// before any buffer flows, so it is outside every interval below. Pad probes on cyclesr's
/// sink and src pads stamp each buffer as it enters and leaves the element, and the src probe
/// stamps the EOS event. The first frame is the element's warm-up (first forward at this
/// shape: oneDNN/cuDNN set-up, buffer pool allocation), like the raw forward's warm-up pass, so
/// fps = (N − 1) / (EOS − first output buffer): the steady-state throughput of the whole
/// pipeline (test source, conversions, inference, copies, fakesink, which has sync=false so
/// nothing waits for the clock). The median sink→src time of frames 2..N is the element's own
/// per-frame cost. The src probe also reads the process's CPU clock at the first buffer and at
/// EOS: CPU seconds per frame of the whole pipeline, compared with the forward's. With a
/// `batch` of B frames, the first batch is the warm-up: fps = (N − B) / (EOS − B-th output),
/// and the sink→src time includes the wait for the batch to fill (its latency).
///
/// With `measure_memory`, the peak (see `PeakProbe`) covers the whole run, model loading
/// included (its weights are small next to the activations).
#[allow(clippy::too_many_arguments)]
fn run_element(
    model_path: &Path,
    device: Device,
    threads: i32,
    precision: Precision,
    format: &str,
    (w, h): (i64, i64),
    frames: u32,
    (tile_size, tile_overlap): (u32, u32),
    (batch, overlap): (u32, bool),
    measure_memory: bool,
) -> Result<ElementRun> {
    ensure!(
        frames > batch,
        "--frames {frames} must exceed --batch {batch}"
    );
    let warmup = batch as usize;
    let description = format!(
        "videotestsrc num-buffers={frames} ! video/x-raw,format={format},width={w},height={h} \
         ! cyclesr name=sr ! fakesink sync=false"
    );
    let pipeline = gst::parse::launch(&description)
        .with_context(|| format!("pipeline {description}"))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| anyhow!("{description} is not a pipeline"))?;
    let sr = pipeline
        .by_name("sr")
        .ok_or_else(|| anyhow!("no cyclesr in the pipeline"))?;
    sr.set_property("model-location", model_path.display().to_string());
    let device_name = match device {
        Device::Cuda(i) => format!("cuda:{i}"),
        _ => "cpu".to_string(),
    };
    sr.set_property("device", device_name);
    sr.set_property_from_str("precision", &precision.to_string());
    sr.set_property("threads", threads.max(0) as u32);
    sr.set_property("tile-size", tile_size);
    sr.set_property("tile-overlap", tile_overlap);
    sr.set_property("batch", batch);
    sr.set_property("overlap", overlap);

    let timeline = Arc::new(Mutex::new(Timeline::default()));
    let sink_pad = sr
        .static_pad("sink")
        .ok_or_else(|| anyhow!("cyclesr has no sink pad"))?;
    let src_pad = sr
        .static_pad("src")
        .ok_or_else(|| anyhow!("cyclesr has no src pad"))?;
    {
        let timeline = timeline.clone();
        sink_pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            timeline.lock().unwrap().sink_in.push(Instant::now());
            gst::PadProbeReturn::Ok
        });
    }
    {
        let timeline = timeline.clone();
        src_pad.add_probe(
            gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
            move |_, info| {
                let now = Instant::now();
                let mut t = timeline.lock().unwrap();
                match &info.data {
                    Some(gst::PadProbeData::Buffer(_)) => {
                        if t.src_out.len() + 1 == warmup {
                            t.cpu_first = process_cpu_seconds();
                        }
                        t.src_out.push(now)
                    }
                    Some(gst::PadProbeData::Event(e)) if e.type_() == gst::EventType::Eos => {
                        t.cpu_eos = process_cpu_seconds();
                        t.eos = Some(now)
                    }
                    _ => {}
                }
                gst::PadProbeReturn::Ok
            },
        );
    }

    let probe = if measure_memory {
        Some(start_peak()?)
    } else {
        None
    };
    let bus = pipeline
        .bus()
        .ok_or_else(|| anyhow!("pipeline without a bus"))?;
    let outcome = (|| -> Result<()> {
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| anyhow!("{description}: cannot start"))?;
        for message in bus.iter_timed(gst::ClockTime::NONE) {
            match message.view() {
                gst::MessageView::Eos(_) => return Ok(()),
                gst::MessageView::Error(e) => bail!(
                    "{description}: {} ({})",
                    e.error(),
                    e.debug().map(|d| d.to_string()).unwrap_or_default()
                ),
                _ => {}
            }
        }
        bail!("{description}: bus closed before EOS")
    })();
    let memory = probe.map(|p| p.finish(device)).transpose();
    let _ = pipeline.set_state(gst::State::Null);
    outcome?;
    let memory = memory?;

    let t = timeline.lock().unwrap();
    let n = t.src_out.len();
    ensure!(
        n == frames as usize && t.sink_in.len() == n,
        "{description}: {} buffers in, {n} out, expected {frames}",
        t.sink_in.len()
    );
    let eos = t
        .eos
        .ok_or_else(|| anyhow!("{description}: no EOS left the element"))?;
    let span = eos.duration_since(t.src_out[warmup - 1]).as_secs_f64();
    let per_frame: Vec<f64> = t
        .sink_in
        .iter()
        .zip(&t.src_out)
        .skip(warmup)
        .map(|(a, b)| b.duration_since(*a).as_secs_f64())
        .collect();
    Ok(ElementRun {
        format: format.to_string(),
        tile_size,
        tile_overlap,
        frames: n,
        fps: (n - warmup) as f64 / span,
        frame_median_s: median(&per_frame),
        cpu_per_frame_s: (t.cpu_eos - t.cpu_first) / (n - warmup) as f64,
        memory,
    })
}

// ---------------------------------------------------------------------------------------------
// Report

/// One round of speed measurements of one size.
struct Round {
    /// Timed tch forward passes by precision (channels-last weights, as the element runs).
    forward: BTreeMap<String, Passes>,
    /// Timed fp32 tch forward passes with the weights in the NCHW layout.
    forward_nchw: Passes,
    /// What bench_pytorch.py printed (Null with --skip-pytorch).
    pytorch: Value,
    /// Each format whole-frame, then the first format tiled.
    element: Vec<ElementRun>,
}

impl Round {
    fn forward_median(&self, precision: &str) -> f64 {
        self.forward
            .get(precision)
            .map_or(f64::NAN, |r| median(&r.wall))
    }

    fn forward_cpu_median(&self, precision: &str) -> f64 {
        self.forward
            .get(precision)
            .map_or(f64::NAN, |r| median(&r.cpu))
    }

    fn pytorch_runs(&self, precision: &str) -> Vec<f64> {
        self.pytorch_values(precision, "runs_s")
    }

    fn pytorch_values(&self, precision: &str, key: &str) -> Vec<f64> {
        self.pytorch["forward"][precision][key]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default()
    }

    /// PyTorch at its best: the faster of its NCHW and channels_last medians (`key` `runs_s`
    /// or `cpu_runs_s`).
    fn pytorch_best_median(&self, precision: &str, key: &str) -> f64 {
        let nchw = median(&self.pytorch_values(precision, key));
        let channels_last =
            median(&self.pytorch_values(&format!("{precision}{CHANNELS_LAST}"), key));
        if channels_last.is_nan() {
            nchw
        } else {
            nchw.min(channels_last)
        }
    }
}

/// Suffix of bench_pytorch.py's channels_last timings (`fp32_channels_last`, ...).
const CHANNELS_LAST: &str = "_channels_last";

struct SizeResult {
    input: (i64, i64),
    output: (i64, i64),
    precision: Precision,
    rounds: Vec<Round>,
    memory: Option<MemoryResult>,
}

struct MemoryResult {
    format: String,
    tile_size: u32,
    tile_overlap: u32,
    forward: Peak,
    pytorch: Value,
    whole: Peak,
    tiled: Peak,
    cuda: bool,
}

fn fnum(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB
}

impl MemoryResult {
    /// PyTorch's peak over its start: `peak_key` − `baseline_key` of its "rss" figures.
    fn pytorch_over(&self, peak_key: &str, baseline_key: &str) -> Option<u64> {
        let rss = &self.pytorch["rss"];
        Some(
            rss[peak_key]
                .as_u64()?
                .saturating_sub(rss[baseline_key].as_u64()?),
        )
    }

    fn print_row(&self, (w, h): (i64, i64)) {
        /// Name, figure of a `Peak`, and PyTorch's peak and baseline keys.
        type Row<'a> = (&'a str, fn(&Peak) -> u64, &'a str, &'a str);
        let rows: [Row; 2] = [
            (
                "anon",
                Peak::anon_over,
                "peak_anon_bytes",
                "baseline_anon_bytes",
            ),
            ("VmHWM", Peak::over, "peak_bytes", "baseline_bytes"),
        ];
        for (i, (name, over, peak_key, baseline_key)) in rows.into_iter().enumerate() {
            let torch = self
                .pytorch_over(peak_key, baseline_key)
                .map_or("-".to_string(), |b| format!("+{:.0} MiB", mib(b)));
            println!(
                "  {:<10} {:<6} {:>11} {:>12} {:>13} {:>17} {:>12.2}",
                if i == 0 {
                    format!("{w}x{h}")
                } else {
                    String::new()
                },
                name,
                format!("+{:.0} MiB", mib(over(&self.forward))),
                torch,
                format!("+{:.0} MiB", mib(over(&self.whole))),
                format!("+{:.0} MiB", mib(over(&self.tiled))),
                over(&self.tiled) as f64 / over(&self.whole) as f64
            );
        }
    }

    fn print_cuda(&self, (w, h): (i64, i64)) {
        let f = |b: Option<u64>| b.map_or("?".to_string(), |b| format!("{:.0} MiB", mib(b)));
        println!(
            "  CUDA {w}x{h} (nvidia-smi, whole process, cumulative: libtorch's caching allocator \
             keeps its peak): after forward {}, whole {}, tiled {}",
            f(self.forward.cuda_process),
            f(self.whole.cuda_process),
            f(self.tiled.cuda_process)
        );
        if let Some(v) = self.pytorch.get("cuda").and_then(|c| c.get("fp32")) {
            println!(
                "  CUDA {w}x{h} PyTorch fp32 forward: max allocated {:.0} MiB, reserved {:.0} MiB",
                fnum(&v["max_allocated_bytes"]) / MIB,
                fnum(&v["max_reserved_bytes"]) / MIB
            );
        }
    }

    fn to_json(&self) -> Value {
        let mut whole = self.whole.to_json();
        whole["format"] = json!(self.format);
        let mut tiled = self.tiled.to_json();
        tiled["format"] = json!(self.format);
        tiled["tile_size"] = json!(self.tile_size);
        tiled["tile_overlap"] = json!(self.tile_overlap);
        json!({
            "method": "separate runs after the timings with glibc's mmap threshold fixed at 128 \
                       KiB (MALLOC_MMAP_THRESHOLD_=131072 for PyTorch); peak_rss = VmHWM after a \
                       reset through /proc/self/clear_refs, over VmRSS at the reset; peak_anon = \
                       largest RssAnon sampled every ms, over RssAnon at the start",
            "forward_tch_fp32": self.forward.to_json(),
            "forward_pytorch_fp32": self.pytorch.get("rss").cloned().unwrap_or(Value::Null),
            "element_whole_frame": whole,
            "element_tiled": tiled,
            "tiled_over_whole": self.tiled.over() as f64 / self.whole.over() as f64,
            "tiled_over_whole_anon": self.tiled.anon_over() as f64 / self.whole.anon_over() as f64,
            "cuda": if self.cuda {
                json!({
                    "note": "tch has no CUDA memory API: cuda_process_bytes is nvidia-smi's \
                             figure for this process (context + caching allocator, cumulative)",
                    "pytorch_fp32": self.pytorch.get("cuda").and_then(|c| c.get("fp32")).cloned(),
                })
            } else {
                json!({"note": "not measured: CPU run"})
            },
        })
    }
}

impl SizeResult {
    fn has_pytorch(&self) -> bool {
        self.rounds.iter().all(|r| !r.pytorch.is_null())
    }

    fn precisions(&self) -> Vec<String> {
        self.rounds[0].forward.keys().cloned().collect()
    }

    fn forward_runs(&self, precision: &str) -> Vec<f64> {
        self.rounds
            .iter()
            .flat_map(|r| {
                r.forward
                    .get(precision)
                    .map(|p| p.wall.clone())
                    .unwrap_or_default()
            })
            .collect()
    }

    fn forward_cpu_runs(&self, precision: &str) -> Vec<f64> {
        self.rounds
            .iter()
            .flat_map(|r| {
                r.forward
                    .get(precision)
                    .map(|p| p.cpu.clone())
                    .unwrap_or_default()
            })
            .collect()
    }

    fn pytorch_cpu_runs(&self, precision: &str) -> Vec<f64> {
        self.rounds
            .iter()
            .flat_map(|r| r.pytorch_values(precision, "cpu_runs_s"))
            .collect()
    }

    fn pytorch_runs(&self, precision: &str) -> Vec<f64> {
        self.rounds
            .iter()
            .flat_map(|r| r.pytorch_runs(precision))
            .collect()
    }

    fn forward_nchw_runs(&self) -> (Vec<f64>, Vec<f64>) {
        let wall = self.rounds.iter().flat_map(|r| r.forward_nchw.wall.clone());
        let cpu = self.rounds.iter().flat_map(|r| r.forward_nchw.cpu.clone());
        (wall.collect(), cpu.collect())
    }

    /// fp32 channels-last forward time over NCHW forward time: the median of the rounds'.
    fn channels_last_over_nchw(&self) -> f64 {
        let per_round: Vec<f64> = self
            .rounds
            .iter()
            .map(|r| r.forward_median("fp32") / median(&r.forward_nchw.wall))
            .collect();
        median(&per_round)
    }

    /// tch time over PyTorch's best time (fp32, the faster of its two layouts): the median
    /// of the rounds' ratios.
    fn tch_over_pytorch(&self) -> Option<f64> {
        self.has_pytorch().then(|| {
            median(
                &self
                    .rounds
                    .iter()
                    .map(|r| r.forward_median("fp32") / r.pytorch_best_median("fp32", "runs_s"))
                    .collect::<Vec<_>>(),
            )
        })
    }

    /// tch CPU time over PyTorch CPU time (fp32), median of the rounds' ratios.
    fn tch_over_pytorch_cpu(&self) -> Option<f64> {
        self.has_pytorch().then(|| {
            median(
                &self
                    .rounds
                    .iter()
                    .map(|r| {
                        r.forward_cpu_median("fp32") / r.pytorch_best_median("fp32", "cpu_runs_s")
                    })
                    .collect::<Vec<_>>(),
            )
        })
    }

    /// Per round: element fps × the round's raw forward time at the element's precision.
    fn ratios(&self, element: usize) -> Vec<f64> {
        let p = self.precision.to_string();
        self.rounds
            .iter()
            .map(|r| r.element[element].fps * r.forward_median(&p))
            .collect()
    }

    /// Per round: the raw forward's CPU time over the element's CPU time per frame.
    fn cpu_ratios(&self, element: usize) -> Vec<f64> {
        let p = self.precision.to_string();
        self.rounds
            .iter()
            .map(|r| r.forward_cpu_median(&p) / r.element[element].cpu_per_frame_s)
            .collect()
    }

    fn element_summary(&self, element: usize) -> Value {
        let first = &self.rounds[0].element[element];
        let fps: Vec<f64> = self.rounds.iter().map(|r| r.element[element].fps).collect();
        let frame: Vec<f64> = self
            .rounds
            .iter()
            .map(|r| r.element[element].frame_median_s)
            .collect();
        let ratios = self.ratios(element);
        let cpu: Vec<f64> = self
            .rounds
            .iter()
            .map(|r| r.element[element].cpu_per_frame_s)
            .collect();
        let cpu_ratios = self.cpu_ratios(element);
        json!({
            "format": first.format,
            "tile_size": first.tile_size,
            "tile_overlap": first.tile_overlap,
            "frames": first.frames,
            "fps": median(&fps),
            "fps_per_round": fps,
            "frame_median_s": median(&frame),
            "fps_over_forward_fps": median(&ratios),
            "fps_over_forward_fps_per_round": ratios,
            "cpu_per_frame_s": median(&cpu),
            "forward_cpu_over_element_cpu": median(&cpu_ratios),
            "forward_cpu_over_element_cpu_per_round": cpu_ratios,
        })
    }

    fn to_json(&self) -> Value {
        let timing = |runs: Vec<f64>| {
            let m = median(&runs);
            json!({"runs_s": runs, "median_s": m, "fps": 1.0 / m})
        };
        let with_cpu = |mut t: Value, cpu: Vec<f64>| {
            t["cpu_median_s"] = json!(median(&cpu));
            t["cpu_runs_s"] = json!(cpu);
            t
        };
        let forward: serde_json::Map<String, Value> = self
            .precisions()
            .into_iter()
            .map(|p| {
                let t = with_cpu(timing(self.forward_runs(&p)), self.forward_cpu_runs(&p));
                (p, t)
            })
            .collect();
        let (nchw_wall, nchw_cpu) = self.forward_nchw_runs();
        let forward_nchw = with_cpu(timing(nchw_wall), nchw_cpu);
        let pytorch = self.has_pytorch().then(|| {
            let mut first = self.rounds[0].pytorch.clone();
            if let Some(Value::Object(map)) = first.get_mut("forward") {
                for (p, v) in map.iter_mut() {
                    *v = with_cpu(timing(self.pytorch_runs(p)), self.pytorch_cpu_runs(p));
                }
            }
            first
        });
        let element: Vec<Value> = (0..self.rounds[0].element.len())
            .map(|i| self.element_summary(i))
            .collect();
        json!({
            "input": [self.input.0, self.input.1],
            "output": [self.output.0, self.output.1],
            "rounds": self.rounds.len(),
            "forward_tch": forward,
            "forward_tch_nchw_fp32": forward_nchw,
            "forward_pytorch": pytorch,
            "element": element,
            "ratios": {
                "tch_time_over_pytorch_best_time": self.tch_over_pytorch(),
                "channels_last_time_over_nchw_time": self.channels_last_over_nchw(),
                "tch_cpu_over_pytorch_cpu": self.tch_over_pytorch_cpu(),
                "element_fps_over_forward_fps": element.iter().map(|e| json!({
                    "format": e["format"],
                    "tile_size": e["tile_size"],
                    "ratio": e["fps_over_forward_fps"],
                    "cpu_ratio": e["forward_cpu_over_element_cpu"],
                })).collect::<Vec<_>>(),
            },
            "memory": self.memory.as_ref().map(MemoryResult::to_json),
        })
    }

    fn print(&self, args: &BenchArgs) {
        let rounds = self.rounds.len();
        let of_rounds = if rounds > 1 {
            format!(", {rounds} rounds pooled")
        } else {
            String::new()
        };
        println!(
            "raw forward ({} warm-up, median of {} runs{of_rounds})",
            args.warmup, args.runs
        );
        println!(
            "  {:<14} {:<5} {:>10} {:>9} {:>9}  wall runs (s)",
            "backend", "prec", "median s", "fps", "CPU s"
        );
        let row = |name: &str, p: &str, runs: Vec<f64>, cpu: Vec<f64>| {
            let m = median(&runs);
            let runs: Vec<String> = runs.iter().map(|r| format!("{r:.3}")).collect();
            println!(
                "  {name:<14} {p:<5} {m:>10.4} {:>9.3} {:>9.3}  {}",
                1.0 / m,
                median(&cpu),
                runs.join(" ")
            );
        };
        for p in self.precisions() {
            row("tch", &p, self.forward_runs(&p), self.forward_cpu_runs(&p));
        }
        let (nchw_wall, nchw_cpu) = self.forward_nchw_runs();
        row("tch NCHW", "fp32", nchw_wall, nchw_cpu);
        if let (Some(ratio), Some(cpu)) = (self.tch_over_pytorch(), self.tch_over_pytorch_cpu()) {
            for p in self.precisions() {
                row(
                    "pytorch eager",
                    &p,
                    self.pytorch_runs(&p),
                    self.pytorch_cpu_runs(&p),
                );
                let channels_last = format!("{p}{CHANNELS_LAST}");
                let runs = self.pytorch_runs(&channels_last);
                if !runs.is_empty() {
                    row(
                        "pytorch CL",
                        &p,
                        runs,
                        self.pytorch_cpu_runs(&channels_last),
                    );
                }
            }
            let of_rounds = if rounds > 1 {
                ", medians of the rounds' ratios"
            } else {
                ""
            };
            println!(
                "  tch / PyTorch's faster layout (fp32{of_rounds}): wall time {ratio:.3} (tch \
                 {:.1}% {}), CPU time {cpu:.3}",
                ((ratio - 1.0) * 100.0).abs(),
                if ratio <= 1.0 { "faster" } else { "slower" }
            );
        } else {
            println!("  pytorch eager: skipped");
        }
        println!(
            "  tch channels-last / NCHW (fp32): wall time {:.3}",
            self.channels_last_over_nchw()
        );

        println!(
            "element, {}, batch {}{} ({} frames; fps over frames {}..N; frame = median \
             sink→src time{})",
            self.precision,
            args.batch,
            if args.overlap { ", overlap" } else { "" },
            args.frames,
            args.batch + 1,
            if rounds > 1 {
                "; medians of the rounds"
            } else {
                ""
            }
        );
        println!(
            "  {:<6} {:<10} {:>9} {:>10} {:>12} {:>12} {:>10}{}",
            "format",
            "tiling",
            "fps",
            "frame s",
            "fps/raw fps",
            "CPU s/frame",
            "CPU ratio",
            if rounds > 1 {
                "  fps/raw fps per round"
            } else {
                ""
            }
        );
        for i in 0..self.rounds[0].element.len() {
            let e = self.element_summary(i);
            let tiles = e["tile_size"].as_u64().unwrap_or(0);
            let tiling = if tiles == 0 {
                "whole".to_string()
            } else {
                format!("{tiles}+{}", e["tile_overlap"])
            };
            let ratio = fnum(&e["fps_over_forward_fps"]);
            let per_round = if rounds > 1 {
                let r: Vec<String> = self.ratios(i).iter().map(|r| format!("{r:.3}")).collect();
                format!("  {}", r.join(" "))
            } else {
                String::new()
            };
            println!(
                "  {:<6} {:<10} {:>9.4} {:>10.4} {:>12.3} {:>12.3} {:>10.3}{per_round}{}",
                e["format"].as_str().unwrap_or("?"),
                tiling,
                fnum(&e["fps"]),
                fnum(&e["frame_median_s"]),
                ratio,
                fnum(&e["cpu_per_frame_s"]),
                fnum(&e["forward_cpu_over_element_cpu"]),
                if tiles == 0 && ratio < 0.95 {
                    "  (< 0.95)"
                } else {
                    ""
                }
            );
        }
        println!(
            "  CPU ratio = the forward's CPU time / the element's per frame (whole process, all \
             threads): steadier than wall time when other jobs share the CPU"
        );
        println!();
    }
}

fn print_summary(results: &[SizeResult]) {
    println!("== summary (fp32 medians; PyTorch in its faster layout) ==");
    println!(
        "  {:<20} {:>9} {:>9} {:>9}  element fps / raw forward fps (CPU ratio)",
        "size", "tch s", "torch s", "tch/torch"
    );
    for r in results {
        let ratios: Vec<String> = (0..r.rounds[0].element.len())
            .map(|i| {
                let e = r.element_summary(i);
                let format = e["format"].as_str().unwrap_or("?");
                let name = if e["tile_size"].as_u64() == Some(0) {
                    format.to_string()
                } else {
                    format!("{format}/tiles")
                };
                format!(
                    "{name} {:.3} ({:.3})",
                    fnum(&e["fps_over_forward_fps"]),
                    fnum(&e["forward_cpu_over_element_cpu"])
                )
            })
            .collect();
        println!(
            "  {:<20} {:>9.4} {:>9.4} {:>9.3}  {}",
            format!("{}x{}->{}x{}", r.input.0, r.input.1, r.output.0, r.output.1),
            median(&r.forward_runs("fp32")),
            median(
                &r.rounds
                    .iter()
                    .map(|round| round.pytorch_best_median("fp32", "runs_s"))
                    .collect::<Vec<_>>()
            ),
            r.tch_over_pytorch().unwrap_or(f64::NAN),
            ratios.join(", ")
        );
    }
    println!();
}
