//! `train fit`: runs the phase plan with progress, logs, validation, samples and
//! checkpoints; resumes exactly from a training state.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use gstcyclesr::model::device::{resolve_device, DeviceRequest};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use tch::{Kind, Tensor};

use crate::archs::degradation::ContentGain;
use crate::archs::jpeg_quality::read_footage;
use crate::data::{imresize, Loader, PairedSet, TrainingData};
use crate::eval::evaluate;
use crate::metrics::NtireProtocol;
use crate::model::{CycleSrModel, Plan};
use crate::options::Options;

/// Name of the rolling checkpoint in `<output>/checkpoints/`.
pub const LATEST: &str = "latest.safetensors";

#[derive(clap::Args, Debug)]
pub struct FitArgs {
    /// Options file (TOML); see configs/.
    #[arg(short, long)]
    pub options: PathBuf,
    /// Overrides of options, e.g. `-s schedule.iterations=100 -s losses.sr_mse.weight=1e2`.
    #[arg(short = 's', long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Continue from a training state (a checkpoint file, or `latest` for the run's own).
    #[arg(long)]
    pub resume: Option<String>,
    /// Stop after this many iterations of this invocation (the plan is unchanged; resume later).
    #[arg(long)]
    pub max_iterations: Option<u64>,
    /// No progress bar (for logs and CI).
    #[arg(long)]
    pub quiet: bool,
}

/// The commit the binary was built from, for provenance.
pub fn build_commit() -> String {
    option_env!("CYCLESR_COMMIT")
        .unwrap_or("unknown")
        .to_string()
}

/// Set by Ctrl-C (SIGINT/SIGTERM); the loop then writes a checkpoint and returns. The handler is
/// process-wide and installed once, whatever the number of `fit` calls.
fn interrupted() -> &'static AtomicBool {
    static STOP: AtomicBool = AtomicBool::new(false);
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        if let Err(e) = ctrlc::set_handler(|| STOP.store(true, Ordering::SeqCst)) {
            eprintln!("warning: no Ctrl-C checkpointing: {e}");
        }
    });
    STOP.store(false, Ordering::SeqCst);
    &STOP
}

fn append_json(file: &mut File, value: serde_json::Value) -> Result<()> {
    writeln!(file, "{value}")?;
    Ok(())
}

fn open_log(path: &Path, fresh: bool) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(!fresh)
        .write(true)
        .truncate(fresh)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))
}

/// Writes a grid (rows = samples, columns = stages) of [n, 3, H, W] tensors as PNG.
fn write_grid(path: &Path, columns: &[(&str, Tensor)]) -> Result<()> {
    let rows: Vec<Tensor> = columns.iter().map(|(_, t)| t.shallow_clone()).collect();
    // [n, 3, H, W] per column → [3, n·H, columns·W]
    let grid = Tensor::cat(&rows, 3); // side by side
    let (n, _, h, w) = grid.size4()?;
    let grid = grid.permute([1, 0, 2, 3]).reshape([3, n * h, w]);
    let pixels = (grid.clamp(0.0, 1.0) * 255.0)
        .round()
        .to_kind(Kind::Uint8)
        .permute([1, 2, 0])
        .contiguous()
        .to_device(tch::Device::Cpu);
    let data = Vec::<u8>::try_from(pixels.flatten(0, -1))?;
    image::RgbImage::from_raw(w as u32, (n * h) as u32, data)
        .context("grid size")?
        .save(path)
        .with_context(|| format!("writing {}", path.display()))
}

/// Side of the LR patches the explicit degradation is fitted on: 32 px resolve frequencies
/// in steps of 1/32 cycle per pixel.
const FIT_PATCH: usize = 32;

/// Fits the explicit G_s2r, one camera per real LR source, on patches of both domains
/// (seeded apart from the training batches), prints what it learnt and writes it to
/// `<out>/degradation-fit.json`.
fn fit_degradation(
    model: &mut CycleSrModel,
    data: &TrainingData,
    options: &Options,
    out: &Path,
) -> Result<()> {
    let started = Instant::now();
    let count = options.networks.degradation.fit_patches as usize;
    let (real, hr) = data.fitting_patches(options.seed ^ 0xF17, count, FIT_PATCH)?;
    let scale = options.data.scale;
    let side = hr.size()[3] / scale;
    let input = match options.explicit_hr_grid() {
        Some(_) => hr,
        None => imresize(&hr, 1.0 / scale as f64),
    };
    let (summaries, footage_jpeg) = model
        .fit_degradation(&real, &input, &|source| {
            read_footage(&data.real_lr_of(source))
        })
        .context("fitting the explicit degradation (stage 1)")?;
    let degradation = model.degradation().expect("just fitted");
    let cameras: Vec<serde_json::Value> = degradation
        .cameras
        .iter()
        .zip(&summaries)
        .zip(&footage_jpeg)
        .map(|((camera, summary), footage)| {
            let (major, minor, angle) = degradation.kernel_spread_lr(camera);
            // What the footage's frames showed, and whether G_s2r draws from it.
            let jpeg = footage.as_ref().map(|f| {
                json!({
                    "images_read": f.sampled,
                    "qualities": f.qualities,
                    "drawn_from": if f.is_jpeg() { "footage" } else { "range" },
                })
            });
            json!({
                "source": options.data.real_lr[camera.source].path,
                "candidate_noise_tiles": summary.candidate_tiles,
                "noise_sigma_y": summary.noise_sigma,
                "noise_scale_percentiles": summary.noise_scale_percentiles,
                "noise_by_brightness": camera.brightness_levels(),
                "kernel_sigma_major_lr_px": major,
                "kernel_sigma_minor_lr_px": minor,
                "kernel_angle_degrees": angle,
                "kernel_grid": options.networks.degradation.kernel_grid,
                "content_gain": summary.content_gain,
                "content_anisotropy": summary.content_anisotropy,
                "log_spectrum_error_identity": summary.log_spectrum_error_identity,
                "log_spectrum_error_fitted": summary.log_spectrum_error_fitted,
                "adversarial": summary.adversarial,
                "edge_blur_lr_px": summary.edge_blur,
                "footage_jpeg": jpeg,
            })
        })
        .collect();
    for camera in &cameras {
        eprintln!("stage 1 (explicit degradation) fitted: {camera}");
    }
    if options.networks.degradation.content_gain == ContentGain::Orientation
        && summaries.iter().any(|s| s.content_anisotropy.is_none())
    {
        eprintln!(
            "warning: stage 1's fit patches of {side} LR px are too small to measure the content's orientation (at least 15 px, data.lr_patch); its content gain is scalar"
        );
    }
    let report = json!({
        "patches_per_source": count,
        "patch": side,
        "seconds": started.elapsed().as_secs_f64(),
        "cameras": cameras,
    });
    std::fs::write(out.join("degradation-fit.json"), format!("{report:#}\n"))?;
    Ok(())
}

/// How long a run trains, overriding the options' schedule: the phases are scaled together so
/// that the plan has this many iterations in all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Budget {
    Iterations(u64),
    /// Train until this instant: the first [`CALIBRATION_ITERATIONS`] measure the time of an
    /// iteration, then the plan is scaled to what fits; it is measured and scaled again after
    /// twice as many iterations each time (a shared machine's speed changes).
    Until(Instant),
}

/// Iterations timed before a wall-time budget first scales the plan: enough to pass the first
/// iterations' one-off costs (kernel selection, allocator growth) on a CPU.
pub const CALIBRATION_ITERATIONS: u64 = 20;

/// How a run is driven, beyond its options.
#[derive(Clone, Debug, Default)]
pub struct Control {
    /// A training state to continue from, or `latest` for the run's own.
    pub resume: Option<String>,
    /// Stop after this many iterations of this invocation.
    pub max_iterations: Option<u64>,
    /// No progress bar.
    pub quiet: bool,
    /// Replaces the schedule's length (ignored when resuming: the state's plan continues).
    pub budget: Option<Budget>,
}

/// Where a run stopped.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Iterations done, and planned.
    pub iteration: u64,
    pub total: u64,
    /// Stopped by Ctrl-C.
    pub interrupted: bool,
    /// Wall time per iteration of this invocation.
    pub seconds_per_iteration: f64,
    /// The training state written last.
    pub state: PathBuf,
}

pub fn fit(args: &FitArgs) -> Result<()> {
    let options = Options::load(&args.options)?.with_overrides(&args.overrides)?;
    train(
        options,
        &Control {
            resume: args.resume.clone(),
            max_iterations: args.max_iterations,
            quiet: args.quiet,
            budget: None,
        },
    )?;
    Ok(())
}

/// Trains a run of `options` (see [`Control`]): decodes the data, fits an explicit stage 1,
/// then iterates with progress, logs, validation, samples and checkpoints; Ctrl-C writes a
/// checkpoint and returns.
pub fn train(options: Options, control: &Control) -> Result<Outcome> {
    let out = options.output_dir();
    let checkpoints = out.join("checkpoints");
    let samples = out.join("samples");
    std::fs::create_dir_all(&checkpoints)
        .with_context(|| format!("creating {}", checkpoints.display()))?;
    std::fs::create_dir_all(&samples)?;

    let (device, warning) = resolve_device(options.device.parse::<DeviceRequest>()?)?;
    if let Some(w) = warning {
        eprintln!("warning: {w}");
    }
    let data = TrainingData::load(&options.data)?;
    let in_epochs = options.schedule.uses_epochs();
    let mut options =
        options.with_epochs_in_iterations(data.hr_patches(), data.real_lr_patches())?;
    if let (Some(Budget::Iterations(n)), None) = (control.budget, &control.resume) {
        options.schedule = Plan::scaled_schedule(&options, n);
    }
    if in_epochs {
        let s = &options.schedule;
        eprintln!(
            "schedule in iterations: pretrain_translator {}, pretrain_sr {}, main {} ({} HR patches in {} images, {} real LR patches in {} images, batch {})",
            s.pretrain_translator,
            s.pretrain_sr,
            s.iterations,
            data.hr_patches(),
            data.hr_images(),
            data.real_lr_patches(),
            data.real_lr_images(),
            options.data.batch
        );
    }
    let mut model = CycleSrModel::new(&options, device)?;
    let mut plan = model.plan().clone();
    let mut total = plan.total();
    let keep = options.checkpoints.keep;

    let mut start = 0;
    if let Some(resume) = &control.resume {
        let path = if resume == "latest" {
            checkpoints.join(LATEST)
        } else {
            PathBuf::from(resume)
        };
        let (iteration, _) = model.load_state(&path)?;
        eprintln!(
            "resuming {} from iteration {iteration} of {total} ({})",
            options.name,
            path.display()
        );
        start = iteration;
    }
    if model.needs_degradation_fit() {
        fit_degradation(&mut model, &data, &options, &out)?;
    }
    std::fs::write(out.join("options.toml"), options.to_toml())?;
    let fresh = start == 0;
    let mut loss_log = open_log(&out.join("losses.jsonl"), fresh)?;
    let mut validation_log = open_log(&out.join("validation.jsonl"), fresh)?;

    let validation = match &options.validation {
        Some(v) => {
            let mut set = PairedSet::load(&v.lr, &v.hr)?;
            if let Some(n) = v.max_images {
                set.items.truncate(n);
            }
            let protocol = NtireProtocol {
                border: v.border.unwrap_or(options.data.scale),
                max_shift: v.max_shift,
                crop: v.crop,
            };
            Some((v.every, set, protocol))
        }
        None => None,
    };

    let stop = interrupted();

    let end_of = |total: u64| {
        control
            .max_iterations
            .map_or(total, |m| (start + m).min(total))
    };
    let mut end = end_of(total);
    let deadline = match (control.budget, &control.resume) {
        (Some(Budget::Until(deadline)), None) => Some(deadline),
        _ => None,
    };
    let mut loader = Loader::start(data, &options.data, options.seed, start)?;
    let bar = if control.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(total)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} [{elapsed_precise}<{eta_precise}] {wide_bar} {pos}/{len} {msg}",
        )
        .expect("valid template"),
    );
    bar.set_prefix(options.name.clone());
    bar.set_position(start);

    let provenance = |iteration: u64| -> BTreeMap<String, String> {
        BTreeMap::from([
            ("commit".to_string(), build_commit()),
            ("iteration".to_string(), iteration.to_string()),
        ])
    };
    let save = |model: &CycleSrModel, iteration: u64| -> Result<()> {
        model.save_state(&checkpoints.join(LATEST), iteration, &provenance(iteration))?;
        if keep > 0 {
            let numbered = checkpoints.join(format!("state-{iteration:08}.safetensors"));
            std::fs::copy(checkpoints.join(LATEST), &numbered)?;
            let mut all: Vec<_> = std::fs::read_dir(&checkpoints)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("state-"))
                })
                .collect();
            all.sort();
            for old in all.iter().rev().skip(keep) {
                std::fs::remove_file(old)?;
            }
        }
        Ok(())
    };

    let started = Instant::now();
    let mut timing = Timing {
        from: start,
        since: started,
        next: start + CALIBRATION_ITERATIONS,
    };
    let mut i = start;
    while i < end {
        let batch = model.to_device(loader.next_batch()?);
        let values = match model.train_step(&batch, i) {
            Ok(v) => v,
            Err(e) => {
                bar.abandon();
                return Err(e.context(format!(
                    "training stopped; the last good state is {}",
                    checkpoints.join(LATEST).display()
                )));
            }
        };
        i += 1;
        bar.set_position(i);
        let (phase, _) = plan.at(i - 1);
        let losses = values
            .iter()
            .filter(|(k, _)| **k != "lr_factor")
            .map(|(k, v)| format!("{k} {v:.4}"))
            .collect::<Vec<_>>()
            .join(" ");
        bar.set_message(format!("{phase:?} | {losses}"));
        if let Some(deadline) = deadline.filter(|_| i == timing.next) {
            // The speed of the iterations since the last measurement.
            let now = Instant::now();
            let per_iteration = (now - timing.since).as_secs_f64() / (i - timing.from) as f64;
            timing = Timing {
                from: i,
                since: now,
                next: i + (i - start),
            };
            let left = deadline.saturating_duration_since(now);
            let fits = (left.as_secs_f64() / per_iteration) as u64;
            options.schedule = Plan::scaled_schedule(&options, i + fits);
            model.reschedule(options.schedule.clone());
            plan = model.plan().clone();
            total = plan.total();
            end = end_of(total);
            bar.set_length(total);
            std::fs::write(out.join("options.toml"), options.to_toml())?;
            bar.println(format!(
                "{per_iteration:.3} s/iteration: {total} iterations fit the budget ({} left)",
                format_duration(left)
            ));
        }
        if i % options.logging.every == 0 || i == end {
            let mut line = json!({"iteration": i, "phase": format!("{phase:?}"), "seconds": started.elapsed().as_secs_f64()});
            for (k, v) in &values {
                line[*k] = json!(v);
            }
            append_json(&mut loss_log, line)?;
        }
        if options.logging.samples_every > 0 && i % options.logging.samples_every == 0 {
            write_grid(
                &samples.join(format!("{i:08}.png")),
                &model.samples(&batch, 4),
            )?;
        }
        if let (Some((every, set, protocol)), Some(sr)) = (&validation, model.sr_model()) {
            if i % every == 0 || i == total {
                let report = evaluate(Some(sr), set, protocol)?;
                let line = json!({"iteration": i, "psnr_y": report.mean.model.psnr_y, "ssim_y": report.mean.model.ssim_y,
                    "psnr_rgb": report.mean.model.psnr_rgb, "bicubic_psnr_y": report.mean.bicubic.psnr_y});
                bar.println(format!("validation @{i}: {line}"));
                append_json(&mut validation_log, line)?;
            }
        }
        if i % options.checkpoints.every == 0 {
            save(&model, i)?;
        }
        if stop.load(Ordering::SeqCst) {
            bar.println("interrupted: writing a checkpoint");
            break;
        }
    }
    save(&model, i)?;
    bar.finish();
    let per_iteration = started.elapsed().as_secs_f64() / (i - start).max(1) as f64;
    eprintln!(
        "{}: iteration {i}/{total}, {per_iteration:.3} s/iteration; state in {}",
        options.name,
        checkpoints.join(LATEST).display()
    );
    Ok(Outcome {
        iteration: i,
        total,
        interrupted: stop.load(Ordering::SeqCst),
        seconds_per_iteration: per_iteration,
        state: checkpoints.join(LATEST),
    })
}

/// The measurement of a wall-time budget's iteration speed: iterations `from` (at `since`) to
/// `next`.
struct Timing {
    from: u64,
    since: Instant,
    next: u64,
}

/// `1h02m`, `3m05s`, `42s`.
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, s / 60 % 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, m, _) => format!("{h}h{m:02}m"),
    }
}
