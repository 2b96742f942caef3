//! `train camera`: a model for one camera from its own footage, in one command. The footage
//! is recorded (or taken in place), checked, and trained on with the project's best measured
//! recipe against unpaired HR photos, within a budget; then the model is exported with its
//! provenance and `report.html` shows what was learnt.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use tch::Device;

use crate::archs::degradation::NoiseLevel;
use crate::data::{is_image_file, list_images, record, CaptureLimits, SourceSpec, StreamSource};
use crate::export::export;
use crate::model::{CycleSrModel, SavedState};
use crate::options::Options;
use crate::report::{write_report, ReportInputs};
use crate::trainer::{build_commit, format_duration, train, Budget, Control, LATEST};

/// The recipe: the embedded default model's (configs/default-model.toml at build time), the
/// best the project has measured (docs/RESULTS.md); its data sections are replaced by the
/// user's footage and photos.
pub const RECIPE: &str = include_str!("../../configs/default-model.toml");
const RECIPE_NAME: &str = "configs/default-model.toml (built in)";

/// Frames kept from each recorded source when `--frames` is not given: as many as the default
/// recipe takes from its longest clip (vtest.avi, 600 frames with step 3). Neighbouring frames
/// repeat each other's content, so more add memory rather than variety.
pub const DEFAULT_FRAMES: usize = 200;

#[derive(clap::Args, Debug, Clone)]
pub struct CameraArgs {
    /// The camera's footage, one or more: a video file, a folder of frames or stills, a URI
    /// (file://, rtsp://, http://, through uridecodebin) or a GStreamer source description
    /// for a live camera ('v4l2src device=/dev/video0', 'pipewiresrc').
    #[arg(required = true, value_name = "SOURCE")]
    pub sources: Vec<String>,
    /// The footage was stored without lossy compression (a raw or lossless capture, such as
    /// a tape digitised to FFV1, HuffYUV or PNG): stage 1 adds no JPEG and measures its noise
    /// level per patch on the colour channels, which a lossy codec would have flattened.
    #[arg(long)]
    pub lossless: bool,
    /// The model to write (.safetensors), for the element's model-location.
    #[arg(long)]
    pub out: PathBuf,
    /// Folder of clean HR photos, the unpaired other domain (`make data` fetches the
    /// project's).
    #[arg(long, default_value = "data/hr_train")]
    pub hr: PathBuf,
    /// Training length: wall time from when the footage is recorded (90s, 30m, 1h30m; the
    /// recipe's phases are scaled to what fits, timing iterations 20, 40, 80, ...; the
    /// report comes on top) or a number of iterations [default: the recipe's schedule].
    #[arg(long, value_parser = parse_budget)]
    pub budget: Option<BudgetArg>,
    /// Record this long from each video, URI or live source (10m, 90s) [default: a file to its
    /// end; a live source needs --capture or --frames].
    #[arg(long, value_parser = parse_duration)]
    pub capture: Option<Duration>,
    /// Frames kept from each video, URI or live source, spread over the recording (a live
    /// source without --capture keeps one a second) [default: 200].
    #[arg(long)]
    pub frames: Option<usize>,
    /// Continue the run in --run-dir exactly where it stopped (same footage, same plan).
    #[arg(long)]
    pub resume: bool,
    /// A recipe (options file) instead of the built-in one; its data sources are replaced.
    #[arg(long)]
    pub options: Option<PathBuf>,
    /// Overrides of the recipe, e.g. `-s networks.sr.blocks=16`.
    #[arg(short = 's', long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Where the recorded footage, checkpoints, logs and report go [default: runs/<name of
    /// --out>].
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// `--budget`: wall time or iterations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BudgetArg {
    WallTime(Duration),
    Iterations(u64),
}

/// `30m`, `90s`, `1h30m` (humantime's syntax), positive.
pub fn parse_duration(text: &str) -> Result<Duration> {
    let duration = humantime::parse_duration(text.trim())
        .with_context(|| format!("'{text}' is not a duration like 30m, 90s or 1h30m"))?;
    ensure!(
        !duration.is_zero(),
        "'{text}' is not a positive duration like 30m, 90s or 1h30m"
    );
    Ok(duration)
}

/// `--budget`: a plain number is iterations, anything else a duration.
pub fn parse_budget(text: &str) -> Result<BudgetArg> {
    if let Ok(n) = text.trim().parse::<u64>() {
        ensure!(n > 0, "--budget 0: give a positive number of iterations");
        return Ok(BudgetArg::Iterations(n));
    }
    Ok(BudgetArg::WallTime(parse_duration(text).with_context(
        || format!("--budget '{text}' is neither iterations nor a duration"),
    )?))
}

/// What a SOURCE argument is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Footage {
    /// A folder of frames or stills, or one image: trained on in place.
    Stills(PathBuf),
    /// A stream to record: a video file, a URI or a source description.
    Stream(StreamSource),
}

impl Footage {
    /// A path that exists is a folder, an image or a video; `scheme://...` is a URI; a
    /// GStreamer element name (with properties, or a `!` chain) is a live source.
    pub fn parse(text: &str) -> Result<Footage> {
        let path = Path::new(text);
        if path.exists() {
            return Ok(if path.is_dir() || is_image_file(path) {
                Footage::Stills(path.to_path_buf())
            } else {
                Footage::Stream(StreamSource::File(path.to_path_buf()))
            });
        }
        if let Some((scheme, _)) = text.split_once("://") {
            if !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Ok(Footage::Stream(StreamSource::Uri(text.to_string())));
            }
        }
        gst::init()?;
        let first = text.split_whitespace().next().unwrap_or_default();
        if text.contains('!') || gst::ElementFactory::find(first).is_some() {
            return Ok(Footage::Stream(StreamSource::Description(text.to_string())));
        }
        bail!(
            "SOURCE '{text}': no such file or folder, and not a URI (scheme://...) or a \
             GStreamer source (e.g. 'v4l2src device=/dev/video0')"
        )
    }
}

/// What `train camera` records in its run folder, to resume and to report.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CameraRun {
    /// The SOURCE arguments, as given.
    pub sources: Vec<String>,
    pub hr: PathBuf,
    /// Where the recipe came from, with its overrides.
    pub recipe: String,
    pub budget: Option<BudgetArg>,
    /// What each source trains on (stills in place, recordings in the run folder), in order.
    pub footage: Vec<PathBuf>,
    /// `--lossless`.
    #[serde(default)]
    pub lossless: bool,
}

impl CameraRun {
    /// How its footage was stored, in the provenance's word.
    fn storage(&self) -> &'static str {
        if self.lossless {
            "lossless"
        } else {
            "compressed"
        }
    }
}

const CAMERA_RUN: &str = "camera.json";

pub fn run(args: &CameraArgs) -> Result<()> {
    let started = Instant::now();
    let name = args
        .out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .with_context(|| format!("--out {} is not a file name", args.out.display()))?;
    let run_dir = args
        .run_dir
        .clone()
        .unwrap_or_else(|| Path::new("runs").join(&name));
    let state = run_dir.join("checkpoints").join(LATEST);
    let (options, camera) = if args.resume {
        resume_run(args, &run_dir, &state)?
    } else {
        ensure!(
            !state.exists(),
            "{} already holds a run: add --resume to continue it, or choose another --run-dir",
            run_dir.display()
        );
        new_run(args, &name, &run_dir)?
    };
    // A resumed run continues the plan its budget set. Wall time counts from here, once the
    // footage is recorded: decoding, fitting stage 1 and the iterations.
    let budget = match camera.budget {
        Some(BudgetArg::Iterations(n)) => Some(Budget::Iterations(n)),
        Some(BudgetArg::WallTime(d)) => Some(Budget::Until(Instant::now() + d)),
        None => None,
    };
    let outcome = train(
        options,
        &Control {
            resume: args.resume.then(|| "latest".to_string()),
            max_iterations: None,
            quiet: args.quiet,
            budget,
        },
    )?;
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let provenance = BTreeMap::from([
        (
            "sources".to_string(),
            serde_json::to_string(&camera.sources)?,
        ),
        ("hr".to_string(), camera.hr.display().to_string()),
        ("recipe".to_string(), camera.recipe.clone()),
        ("footage".to_string(), camera.storage().to_string()),
        (
            "iterations".to_string(),
            format!("{} of {}", outcome.iteration, outcome.total),
        ),
    ]);
    export(&outcome.state, &args.out, &provenance)?;
    if outcome.interrupted {
        eprintln!(
            "interrupted at iteration {} of {}: the model is written; `--resume` continues",
            outcome.iteration, outcome.total
        );
    }
    let report = write_report(&ReportInputs {
        run_dir: &run_dir,
        state: &outcome.state,
        model: &args.out,
        camera: &camera,
        outcome: &outcome,
    })
    .with_context(|| {
        format!(
            "the model is written to {}, but the report is not",
            args.out.display()
        )
    })?;
    println!(
        "model: {} (iteration {} of {}; this run took {})\nreport: {}\nuse it: gst-launch-1.0 ... ! cyclesr model-location={} ! ...",
        args.out.display(),
        outcome.iteration,
        outcome.total,
        format_duration(started.elapsed()),
        report.display(),
        args.out.display()
    );
    Ok(())
}

/// The options and record of the run in `run_dir`, exactly as it began.
fn resume_run(args: &CameraArgs, run_dir: &Path, state: &Path) -> Result<(Options, CameraRun)> {
    let record = run_dir.join(CAMERA_RUN);
    let text = std::fs::read_to_string(&record).with_context(|| {
        format!(
            "--resume: no `train camera` run in {} (cannot read {})",
            run_dir.display(),
            record.display()
        )
    })?;
    let camera: CameraRun =
        serde_json::from_str(&text).with_context(|| format!("reading {}", record.display()))?;
    ensure!(
        camera.sources == args.sources,
        "--resume: the run in {} trained on {:?}, not {:?}",
        run_dir.display(),
        camera.sources,
        args.sources
    );
    ensure!(
        camera.lossless == args.lossless,
        "--resume: the run in {} took its footage as {}; give --lossless as it was given",
        run_dir.display(),
        camera.storage()
    );
    ensure!(
        state.exists(),
        "--resume: {} has no checkpoint yet ({}): start it again without --resume",
        run_dir.display(),
        state.display()
    );
    Ok((SavedState::read(state)?.options, camera))
}

/// Checks the inputs, records the footage and writes the run's record; returns the options.
fn new_run(args: &CameraArgs, name: &str, run_dir: &Path) -> Result<(Options, CameraRun)> {
    let (recipe, recipe_name) = match &args.options {
        Some(path) => (Options::load(path)?, path.display().to_string()),
        None => (
            Options::parse(RECIPE).context(RECIPE_NAME)?,
            RECIPE_NAME.to_string(),
        ),
    };
    let footage = args
        .sources
        .iter()
        .map(|text| Footage::parse(text))
        .collect::<Result<Vec<_>>>()?;
    // The user's data replaces the recipe's; overrides come last, so experts can change any of
    // it. Stills and recordings are checked below, the HR folder here.
    let mut options = recipe;
    options.name = name.to_string();
    options.output = Some(run_dir.to_path_buf());
    options.validation = None;
    options.data.hr = vec![args.hr.clone()];
    // Photos saved as JPEG are halved (DATA.md); other formats are unaffected.
    options.data.jpeg_downscale = true;
    options.data.real_lr = footage
        .iter()
        .enumerate()
        .map(|(k, f)| SourceSpec {
            lossless: args.lossless,
            ..SourceSpec::from(footage_dir(run_dir, k, f))
        })
        .collect();
    // The recipe keeps the bank's noise level, which suits its mix of nine cameras; one camera
    // stored losslessly has its own noise levels measured, as `--lossless` promises.
    if args.lossless {
        options.networks.degradation.noise_level = NoiseLevel::Chroma;
    }
    let options = options.with_overrides(&args.overrides)?;
    let recipe = if args.overrides.is_empty() {
        recipe_name
    } else {
        format!("{recipe_name} with {}", args.overrides.join(" "))
    };
    check_hr(&args.hr, &options)?;

    std::fs::create_dir_all(run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    let training_bytes = training_bytes(&options)?;
    ensure_free_space(run_dir, training_bytes, "checkpoints and the report")?;
    let limits = CaptureLimits {
        duration: args.capture,
        frames: args.frames.unwrap_or(DEFAULT_FRAMES),
    };
    for ((text, source), spec) in args.sources.iter().zip(&footage).zip(&options.data.real_lr) {
        match source {
            Footage::Stills(path) => {
                if args.capture.is_some() || args.frames.is_some() {
                    eprintln!(
                        "note: --capture and --frames apply to recorded sources; every image of \
                         {text} is used"
                    );
                }
                check_stills(text, path, &options)?
            }
            Footage::Stream(stream) => record_stream(
                text,
                stream,
                limits,
                args.frames.is_some(),
                &spec.path,
                &options,
                training_bytes,
            )?,
        }
    }
    let camera = CameraRun {
        sources: args.sources.clone(),
        hr: args.hr.clone(),
        recipe,
        budget: args.budget,
        footage: options
            .data
            .real_lr
            .iter()
            .map(|s| s.path.clone())
            .collect(),
        lossless: args.lossless,
    };
    std::fs::write(
        run_dir.join(CAMERA_RUN),
        serde_json::to_string_pretty(&camera)? + "\n",
    )
    .with_context(|| format!("writing {}", run_dir.join(CAMERA_RUN).display()))?;
    Ok((options, camera))
}

/// Where source `k` trains from: stills in place, a stream's recording in the run folder.
fn footage_dir(run_dir: &Path, k: usize, footage: &Footage) -> PathBuf {
    match footage {
        Footage::Stills(path) => path.clone(),
        Footage::Stream(_) => run_dir.join("footage").join(format!("source-{k}")),
    }
}

fn record_stream(
    text: &str,
    stream: &StreamSource,
    limits: CaptureLimits,
    frames_given: bool,
    dir: &Path,
    options: &Options,
    training_bytes: u64,
) -> Result<()> {
    // A half-written recording from an earlier attempt would mix in.
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    let patch = options.data.lr_patch as usize;
    eprintln!("recording {text} into {}", dir.display());
    let recording = record(stream, limits, dir, |frame, live| {
        ensure!(
            !live || limits.duration.is_some() || frames_given,
            "it is a live source: give --capture DURATION or --frames N"
        );
        ensure!(
            frame.width >= patch && frame.height >= patch,
            "its frames are {}x{}, smaller than the {patch}x{patch} training patch \
             (data.lr_patch)",
            frame.width,
            frame.height
        );
        let footage_bytes = (limits.frames * frame.width * frame.height * 3) as u64;
        ensure_free_space(
            dir,
            footage_bytes + training_bytes,
            "the footage, checkpoints and the report",
        )
    })
    .with_context(|| format!("cannot record SOURCE '{text}'"))?;
    eprintln!(
        "kept {} of {} frames ({}x{}{})",
        recording.files.len(),
        recording.decoded,
        recording.width,
        recording.height,
        if recording.live { ", live" } else { "" }
    );
    check_enough(
        text,
        recording.files.len(),
        recording.width,
        recording.height,
        options,
    )
}

/// A folder of stills: readable images at least a patch large, enough of them.
fn check_stills(text: &str, path: &Path, options: &Options) -> Result<()> {
    let patch = options.data.lr_patch as usize;
    let files = list_images(path).with_context(|| format!("SOURCE '{text}'"))?;
    let sizes: Vec<(usize, usize)> = files
        .iter()
        .filter_map(|f| image::image_dimensions(f).ok())
        .map(|(w, h)| (w as usize, h as usize))
        .collect();
    ensure!(
        !sizes.is_empty(),
        "SOURCE '{text}': no readable image ({} image file(s) found)",
        files.len()
    );
    let usable: Vec<_> = sizes
        .iter()
        .filter(|(w, h)| *w >= patch && *h >= patch)
        .collect();
    let Some(&&(w, h)) = usable.first() else {
        let (w, h) = sizes[0];
        bail!(
            "SOURCE '{text}': its images are {w}x{h} (and no larger), smaller than the \
             {patch}x{patch} training patch (data.lr_patch)"
        );
    };
    check_enough(text, usable.len(), w, h, options)
}

/// The explicit stage 1 keeps `noise_tiles` tiles of real noise: footage holding fewer
/// distinct tiles would repeat the same noise, which G_l2h would then learn to remove as a
/// pattern.
fn check_enough(
    text: &str,
    frames: usize,
    width: usize,
    height: usize,
    options: &Options,
) -> Result<()> {
    if !options.mode.uses_explicit_degradation() {
        return Ok(());
    }
    let config = &options.networks.degradation;
    let tile = config.noise_tile as usize;
    let tiles = frames * (width / tile) * (height / tile);
    ensure!(
        tiles >= config.noise_tiles as usize,
        "SOURCE '{text}' is too short: {frames} frame(s) of {width}x{height} hold {tiles} distinct \
         {tile}x{tile} noise tiles, and the recipe's noise bank needs {} \
         (networks.degradation.noise_tiles): give a longer clip, more frames (--frames, \
         --capture) or more sources",
        config.noise_tiles
    );
    Ok(())
}

/// The HR folder holds at least one readable image as large as an HR patch.
fn check_hr(dir: &Path, options: &Options) -> Result<()> {
    let side = (options.data.lr_patch * options.data.scale) as u32;
    let files = list_images(dir).with_context(|| {
        format!(
            "--hr {}: the HR photos (`make data` fetches the project's)",
            dir.display()
        )
    })?;
    // JPEGs are halved when loaded.
    let sizes: Vec<(u32, u32)> = files
        .iter()
        .filter_map(|f| {
            let (w, h) = image::image_dimensions(f).ok()?;
            let halved = options.data.jpeg_downscale && crate::data::is_jpeg(f);
            Some(if halved { (w / 2, h / 2) } else { (w, h) })
        })
        .collect();
    ensure!(
        !sizes.is_empty(),
        "--hr {}: no readable image ({} image file(s) found)",
        dir.display(),
        files.len()
    );
    ensure!(
        sizes.iter().any(|&(w, h)| w >= side && h >= side),
        "--hr {}: no image is at least {side}x{side} (the HR training patch; JPEGs count at half \
         size)",
        dir.display()
    );
    Ok(())
}

/// Disk space the run's checkpoints, model and report take: the training state (weights,
/// optimiser moments, an explicit stage 1's noise bank) once per kept copy, plus the one being
/// written, plus the model and report.
fn training_bytes(options: &Options) -> Result<u64> {
    let model = CycleSrModel::new(options, Device::Cpu)?;
    let bytes = |tensors: &[(String, tch::Tensor)]| -> u64 {
        tensors
            .iter()
            .map(|(_, t)| (t.numel() * t.kind().elt_size_in_bytes()) as u64)
            .sum()
    };
    let noise = &options.networks.degradation;
    let noise_bank = (noise.noise_tiles * 3 * noise.noise_tile * noise.noise_tile * 4) as u64;
    let state = bytes(&model.state_tensors()) + noise_bank;
    // The report: a few PNGs of at most a frame's crops each.
    const REPORT_BYTES: u64 = 16 << 20;
    Ok(state * (options.checkpoints.keep as u64 + 2) + REPORT_BYTES)
}

/// Fails, naming `dir`, unless its file system has `needed` bytes free for `what`.
pub fn ensure_free_space(dir: &Path, needed: u64, what: &str) -> Result<()> {
    let stat = nix::sys::statvfs::statvfs(dir)
        .with_context(|| format!("cannot read the free space of {}", dir.display()))?;
    let free = stat.blocks_available() as u64 * stat.fragment_size() as u64;
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    ensure!(
        free >= needed,
        "no space left on the disk of {}: {what} need about {:.0} MiB, {:.0} MiB are free",
        dir.display(),
        mib(needed),
        mib(free)
    );
    Ok(())
}

/// The commit and recipe line shown in reports.
pub fn recipe_line(camera: &CameraRun) -> String {
    format!("{} (cyclesr {})", camera.recipe, build_commit())
}
