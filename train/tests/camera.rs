//! `train camera`: a short clip made here from degraded photos, trained on for a few
//! iterations with tiny networks; the model runs in the element, the report renders in a
//! headless browser, and bad inputs give errors that name them.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use common::{pull_video_infos, run_to_eos, temp_dir, tiny_options, write_images};
use cyclesr_train::camera::{self, ensure_free_space, parse_budget, BudgetArg, CameraArgs};
use cyclesr_train::data::{record, CaptureLimits, StreamSource};
use cyclesr_train::degrade::{self, DegradeArgs, Preset};
use cyclesr_train::model::Plan;
use cyclesr_train::options::Options;
use cyclesr_train::trainer::CALIBRATION_ITERATIONS;
use gstcyclesr::model::checkpoint::SrModel;

/// Tiny networks and data sizes: a run of a few iterations takes seconds on 2 CPU cores.
const TINY: [&str; 10] = [
    "networks.sr.blocks=1",
    "networks.sr.features=4",
    "data.lr_patch=16",
    "data.batch=2",
    "networks.degradation.noise_tiles=32",
    "networks.degradation.fit_patches=64",
    "networks.degradation.fit_steps=20",
    "logging.every=1",
    "logging.samples_every=0",
    "checkpoints.every=3",
];

/// An MJPEG clip (one frame per image, 5 fps) of `frames` photos of 192x144 degraded ×4
/// with `train degrade --preset mild`: 48x36 frames.
fn make_clip(dir: &Path, frames: u32) -> PathBuf {
    write_images(&dir.join("photos"), frames, 192, 144, 4);
    degrade::run(&DegradeArgs {
        inputs: vec![dir.join("photos")],
        out: dir.join("degraded"),
        preset: Preset::Mild,
        stage1: None,
        seed: 1,
        scale: 4,
        jpeg_quality: None,
        without: Vec::new(),
        jpeg_downscale: true,
    })
    .unwrap();
    let clip = dir.join("clip.avi");
    run_to_eos(
        &format!(
            "multifilesrc location={}/img%02d.png index=0 caps=image/png,framerate=5/1 ! pngdec \
             ! videoconvert ! video/x-raw,format=I420 ! jpegenc quality=95 ! avimux \
             ! filesink location={}",
            dir.join("degraded/lr").display(),
            clip.display()
        ),
        60,
    );
    clip
}

fn camera_args(dir: &Path, sources: Vec<String>, hr: PathBuf) -> CameraArgs {
    CameraArgs {
        sources,
        lossless: false,
        out: dir.join("camera.safetensors"),
        hr,
        budget: Some(BudgetArg::Iterations(6)),
        capture: None,
        frames: None,
        resume: false,
        options: None,
        overrides: TINY.iter().map(|s| s.to_string()).collect(),
        run_dir: Some(dir.join("run")),
        quiet: true,
    }
}

fn hr_photos(dir: &Path) -> PathBuf {
    let hr = dir.join("hr");
    // At least the 160x160 HR patch of `data.lr_patch=40` (the test of frames too small).
    write_images(&hr, 3, 176, 160, 9);
    hr
}

/// One trained run shared by the tests that read its results: (its folder, its arguments).
/// A static is never dropped, so the run lives in Cargo's folder for integration tests' files
/// (under `target/`), replaced by the next run, rather than in a `temp_dir`.
fn trained() -> &'static (PathBuf, CameraArgs) {
    static RUN: OnceLock<(PathBuf, CameraArgs)> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("camera-shared-run");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let clip = make_clip(&dir, 10);
        let args = camera_args(&dir, vec![clip.display().to_string()], hr_photos(&dir));
        camera::run(&args).unwrap();
        (dir, args)
    })
}

/// `src="..."` of every image in an HTML page.
fn image_sources(html: &str) -> Vec<String> {
    html.split("src=\"")
        .skip(1)
        .map(|rest| rest[..rest.find('"').unwrap()].to_string())
        .collect()
}

#[test]
fn trains_on_a_clip_and_the_model_runs_in_the_element() {
    let (dir, args) = trained();
    let model = SrModel::load(&args.out, tch::Device::Cpu).unwrap();
    assert_eq!(model.config.blocks, 1);
    assert_eq!(model.provenance["iterations"], "6 of 6");
    assert_eq!(model.provenance["mode"], "explicit");
    assert!(model.provenance["sources"].contains("clip.avi"));
    assert!(model.provenance["recipe"].contains("configs/default-model.toml"));
    // The recording: every frame of the 10-frame clip (fewer than the 200 kept by default).
    let recorded = std::fs::read_dir(dir.join("run/footage/source-0")).unwrap();
    assert_eq!(recorded.count(), 10);

    // The clip itself, upscaled by the element with the new model.
    let frames = pull_video_infos(&format!(
        "filesrc location={} ! decodebin ! videoconvert ! video/x-raw,format=I420 \
         ! cyclesr model-location={} ! appsink name=out",
        dir.join("clip.avi").display(),
        args.out.display()
    ));
    for info in &frames {
        assert_eq!((info.width(), info.height()), (192, 144));
    }
    assert_eq!(frames.len(), 10);

    let report = dir.join("run/report/report.html");
    let html = std::fs::read_to_string(&report).unwrap();
    let images = image_sources(&html);
    for expected in ["stage1.png", "kernel-0.png", "after-0.png"] {
        assert!(
            images.iter().any(|i| i == expected),
            "{expected} in {images:?}"
        );
    }
    for image in &images {
        assert!(
            dir.join("run/report").join(image).is_file(),
            "{image} is missing"
        );
    }
    assert!(html.contains("<svg"), "no training curves");
    assert!(html.contains("extra blur over bicubic↓HR, from step edges"));
    // Self-contained: nothing fetched, images beside it.
    assert!(!html.contains("<link") && !html.contains("<script"));
    assert!(images.iter().all(|i| !i.contains('/')), "{images:?}");
}

#[test]
fn resume_of_a_finished_run_exports_it_again_and_other_sources_are_refused() {
    let (dir, args) = trained();
    camera::run(&CameraArgs {
        resume: true,
        ..args.clone()
    })
    .unwrap();
    let model = SrModel::load(&args.out, tch::Device::Cpu).unwrap();
    assert_eq!(model.provenance["iterations"], "6 of 6");

    let other = CameraArgs {
        resume: true,
        sources: vec![dir.join("photos").display().to_string()],
        ..args.clone()
    };
    let e = format!("{:#}", camera::run(&other).unwrap_err());
    assert!(e.contains("clip.avi") && e.contains("photos"), "{e}");
    // Without --resume, a run folder in use is not overwritten.
    let again = format!(
        "{:#}",
        camera::run(&CameraArgs {
            resume: false,
            ..args.clone()
        })
        .unwrap_err()
    );
    assert!(again.contains("--resume"), "{again}");
}

/// `--lossless`: no JPEG in stage 1 and the noise level measured per patch, recorded in the
/// model's provenance; a resume must say the same.
#[test]
fn lossless_footage_is_not_compressed_and_has_its_noise_levels_measured() {
    let dir = temp_dir("camera-lossless");
    write_images(&dir.join("frames"), 6, 64, 48, 4);
    let args = CameraArgs {
        lossless: true,
        ..camera_args(
            &dir,
            vec![dir.join("frames").display().to_string()],
            hr_photos(&dir),
        )
    };
    camera::run(&args).unwrap();
    let model = SrModel::load(&args.out, tch::Device::Cpu).unwrap();
    assert_eq!(model.provenance["footage"], "lossless");
    let fit: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("run/degradation-fit.json")).unwrap(),
    )
    .unwrap();
    let levels = &fit["cameras"][0]["noise_scale_percentiles"];
    assert_eq!(levels.as_array().map(Vec::len), Some(3), "{fit}");
    let options = std::fs::read_to_string(dir.join("run/options.toml")).unwrap();
    assert!(options.contains("lossless = true"), "{options}");

    let e = format!(
        "{:#}",
        camera::run(&CameraArgs {
            resume: true,
            lossless: false,
            ..args.clone()
        })
        .unwrap_err()
    );
    assert!(e.contains("--lossless"), "{e}");
}

/// Chromium's screenshot of the report holds more than one colour (it rendered something).
#[test]
fn report_renders_in_headless_chromium() {
    let (dir, _) = trained();
    let shot = dir.join("report-screenshot.png");
    let output = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1000,1600",
            &format!("--screenshot={}", shot.display()),
            &format!("file://{}", dir.join("run/report/report.html").display()),
        ])
        .output();
    let output = match output {
        Ok(o) => o,
        Err(e) => panic!(
            "chromium cannot be run ({e}): run `make setup`, which installs Debian's chromium"
        ),
    };
    assert!(
        shot.is_file(),
        "chromium wrote no screenshot: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let pixels = image::open(&shot).unwrap().into_rgb8();
    let first = *pixels.get_pixel(0, 0);
    let colours = pixels.pixels().filter(|p| **p != first).count();
    assert!(
        colours > 1000,
        "the screenshot is blank ({colours} pixels differ from the first)"
    );
}

fn error_of(args: &CameraArgs) -> String {
    format!("{:#}", camera::run(args).unwrap_err())
}

#[test]
fn bad_inputs_give_errors_that_name_them() {
    let dir = temp_dir("camera-errors");
    let hr = hr_photos(&dir);
    let clip = make_clip(&dir, 2);
    let clip_text = clip.display().to_string();
    let args = |sources: Vec<String>, run: &str| CameraArgs {
        run_dir: Some(dir.join(run)),
        ..camera_args(&dir, sources, hr.clone())
    };

    // An unreachable URI.
    let uri = "http://127.0.0.1:9/clip.mp4".to_string();
    let e = error_of(&args(vec![uri.clone()], "uri"));
    assert!(e.contains(&uri), "{e}");

    // Not a file, a URI or a GStreamer source.
    let e = error_of(&args(vec!["no-such-camera".into()], "nothing"));
    assert!(e.contains("no-such-camera"), "{e}");

    // Too short: 2 frames of 48x36 hold 12 noise tiles of 16x16, the recipe wants 1024.
    let mut short = args(vec![clip_text.clone()], "short");
    short
        .overrides
        .retain(|o| !o.starts_with("networks.degradation.noise_tiles"));
    let e = error_of(&short);
    assert!(e.contains(&clip_text) && e.contains("too short"), "{e}");

    // Frames smaller than a patch.
    let mut small = args(vec![clip_text.clone()], "small");
    small.overrides.push("data.lr_patch=40".into());
    let e = error_of(&small);
    assert!(
        e.contains(&clip_text) && e.contains("48x36") && e.contains("40x40"),
        "{e}"
    );

    // An HR folder with no readable image.
    let broken = dir.join("broken-hr");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("photo.png"), b"not a png").unwrap();
    let e = error_of(&CameraArgs {
        hr: broken.clone(),
        ..args(vec![clip_text.clone()], "hr")
    });
    assert!(
        e.contains(&broken.display().to_string()) && e.contains("no readable image"),
        "{e}"
    );

    // A live source with neither --capture nor --frames.
    let live = "videotestsrc is-live=true ! video/x-raw,width=64,height=48".to_string();
    let e = error_of(&args(vec![live.clone()], "live"));
    assert!(e.contains(&live) && e.contains("--capture"), "{e}");

    // No space left: the check names the folder.
    let e = format!(
        "{:#}",
        ensure_free_space(&dir, u64::MAX, "the footage").unwrap_err()
    );
    assert!(
        e.contains(&dir.display().to_string()) && e.contains("no space left"),
        "{e}"
    );
}

#[test]
fn recordings_keep_frames_spread_over_the_stream() {
    let dir = temp_dir("camera-record");
    // A finite stream of 30 frames, 4 kept: every 8th.
    let finite = StreamSource::Description(
        "videotestsrc num-buffers=30 ! video/x-raw,width=32,height=24,framerate=30/1".into(),
    );
    let limits = CaptureLimits {
        duration: None,
        frames: 4,
    };
    let recording = record(&finite, limits, &dir.join("finite"), |_, _| Ok(())).unwrap();
    assert!(!recording.live);
    assert_eq!(recording.decoded, 30);
    let names: Vec<String> = recording
        .files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [0, 8, 16, 24].map(|i| format!("frame-{i:08}.png")).to_vec()
    );
    assert_eq!(std::fs::read_dir(dir.join("finite")).unwrap().count(), 4);

    // A live source for one second, 4 frames: one every 250 ms.
    let live = StreamSource::Description(
        "videotestsrc is-live=true ! video/x-raw,width=32,height=24,framerate=20/1".into(),
    );
    let limits = CaptureLimits {
        duration: Some(Duration::from_secs(1)),
        frames: 4,
    };
    let recording = record(&live, limits, &dir.join("live"), |_, _| Ok(())).unwrap();
    assert!(recording.live);
    assert_eq!(recording.files.len(), 4);
    assert!(recording.decoded >= 10, "{} frames", recording.decoded);
}

#[test]
fn budgets_are_durations_or_iterations() {
    let minutes = |m: u64| BudgetArg::WallTime(Duration::from_secs(m * 60));
    assert_eq!(parse_budget("30m").unwrap(), minutes(30));
    assert_eq!(parse_budget("1h30m").unwrap(), minutes(90));
    assert_eq!(
        parse_budget("90s").unwrap(),
        BudgetArg::WallTime(Duration::from_secs(90))
    );
    assert_eq!(parse_budget("5000").unwrap(), BudgetArg::Iterations(5000));
    for bad in ["0", "30x", "m", "-3"] {
        assert!(parse_budget(bad).is_err(), "{bad}");
    }
}

/// A wall-time budget: the first iterations are timed, then the plan is scaled to what fits.
#[test]
fn a_wall_time_budget_scales_the_plan_to_fit() {
    let dir = temp_dir("camera-budget");
    write_images(&dir.join("frames"), 6, 64, 48, 3);
    let budget = Duration::from_secs(8);
    let args = CameraArgs {
        budget: Some(BudgetArg::WallTime(budget)),
        ..camera_args(
            &dir,
            vec![dir.join("frames").display().to_string()],
            hr_photos(&dir),
        )
    };
    let started = std::time::Instant::now();
    camera::run(&args).unwrap();
    let elapsed = started.elapsed();
    let model = SrModel::load(&args.out, tch::Device::Cpu).unwrap();
    let (done, planned) = model.provenance["iterations"]
        .split_once(" of ")
        .map(|(a, b)| (a.parse::<u64>().unwrap(), b.parse::<u64>().unwrap()))
        .unwrap();
    assert_eq!(done, planned);
    assert!(done > CALIBRATION_ITERATIONS, "{done} iterations");
    let options = std::fs::read_to_string(dir.join("run/options.toml")).unwrap();
    assert!(
        options.contains(&format!("iterations = {planned}")),
        "{options}"
    );
    // Training ends near the budget; the report comes on top.
    assert!(
        elapsed < budget * 3,
        "{elapsed:?} for a budget of {budget:?}"
    );
}

#[test]
fn a_scaled_schedule_keeps_the_phase_ratios() {
    let dir = temp_dir("camera-schedule");
    // tiny_options: 2 translator and 2 SR pretraining iterations, then the main phase.
    let options = Options::load(&tiny_options(&dir, "separate", 8)).unwrap();
    let scaled = Plan::scaled_schedule(&options, 24);
    assert_eq!(
        (
            scaled.pretrain_translator,
            scaled.pretrain_sr,
            scaled.iterations
        ),
        (4, 4, 16)
    );
    // Explicit mode has no translator pretraining: its plan is SR pretraining and the main phase.
    let options = Options::load(&tiny_options(&dir, "explicit", 8)).unwrap();
    let scaled = Plan::scaled_schedule(&options, 5);
    let plan = Plan::new(&Options {
        schedule: scaled,
        ..options
    });
    assert_eq!(plan.total(), 5);
}
