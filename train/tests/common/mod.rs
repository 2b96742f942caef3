//! Helpers shared by the train crate's integration tests: tiny options and images made by
//! the test itself.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};

use std::collections::HashMap;

use cyclesr_train::data::UnpairedBatch;
use cyclesr_train::data::{load_rgb8, save_png};
use cyclesr_train::degrade::{degrade, Degradation};
use cyclesr_train::eval::EvalArgs;
use cyclesr_train::model::with_seeded_torch_rng;
use cyclesr_train::trainer::{FitArgs, LATEST};
use gstcyclesr::model::checkpoint::read_safetensors;
use gstcyclesr::model::device::Precision;
use tch::{Device, Kind, Tensor};

#[path = "../../../plugin/tests/common/test_dir.rs"]
mod test_dir;
#[allow(unused_imports)] // each test binary uses a different subset
pub use test_dir::{temp_dir, TestDir};

/// Smooth random-looking RGB images (a few sinusoids), so that patches are not flat.
pub fn write_images(dir: &Path, count: u32, width: u32, height: u32, seed: u32) {
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
pub fn tiny_options(dir: &Path, mode: &str, iterations: u64) -> PathBuf {
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

pub fn args(options: PathBuf) -> FitArgs {
    FitArgs {
        options,
        overrides: Vec::new(),
        resume: None,
        max_iterations: None,
        quiet: true,
    }
}

/// The tensors of the latest training state of the tiny run in `dir`.
pub fn final_state(dir: &Path) -> HashMap<String, Tensor> {
    read_safetensors(&dir.join("run/checkpoints").join(LATEST))
        .unwrap()
        .0
}

/// Two training states hold the same tensors, each within 1e-6 (resume equality).
pub fn assert_same_state(a: &HashMap<String, Tensor>, b: &HashMap<String, Tensor>) {
    assert_eq!(a.len(), b.len());
    for (name, t) in a {
        let diff = (t.to_kind(Kind::Double) - b[name].to_kind(Kind::Double))
            .abs()
            .max()
            .double_value(&[]);
        assert!(diff <= 1e-6, "{name} differs by {diff} after resume");
    }
}

/// `train eval` of `dir/bench/{lr,hr}` on the CPU, whole images, shifts ±2, JSON to
/// `dir/report.json`; no model or translator yet.
pub fn eval_args(dir: &Path) -> EvalArgs {
    EvalArgs {
        model: None,
        translator: None,
        translator_draws: 1,
        lr: dir.join("bench/lr"),
        hr: dir.join("bench/hr"),
        border: None,
        max_shift: 2,
        crop: None,
        device: "cpu".into(),
        tile_size: 0,
        tile_overlap: 0,
        precision: Precision::Fp32,
        json: Some(dir.join("report.json")),
    }
}

/// The JSON report written by a run of [`eval_args`].
pub fn report(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap()
}

pub fn random_batch() -> UnpairedBatch {
    let cpu = (Kind::Float, Device::Cpu);
    with_seeded_torch_rng(11, || UnpairedBatch {
        index: 0,
        real_lr: Tensor::rand([2, 3, 8, 8], cpu),
        syn_lr: Tensor::rand([2, 3, 8, 8], cpu),
        hr: Tensor::rand([2, 3, 32, 32], cpu),
        paired_lr: None,
    })
}

/// Runs `description` (a pipeline ending in `appsink name=out`, with the statically registered
/// `cyclesr` available) to its end; the video info of every sample, in order.
pub fn pull_video_infos(description: &str) -> Vec<gst_video::VideoInfo> {
    use gst::prelude::*;
    gst::init().unwrap();
    gstcyclesr::plugin_register_static().unwrap();
    let pipeline = gst::parse::launch(description)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let sink = pipeline
        .by_name("out")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut infos = Vec::new();
    while let Ok(sample) = sink.pull_sample() {
        infos.push(gst_video::VideoInfo::from_caps(sample.caps().unwrap()).unwrap());
    }
    pipeline.set_state(gst::State::Null).unwrap();
    infos
}

/// Runs a GStreamer pipeline `description` (e.g. one that encodes a test clip) to its end
/// within `timeout_seconds`; panics with the bus message if it fails.
pub fn run_to_eos(description: &str, timeout_seconds: u64) {
    use gst::prelude::*;
    gst::init().unwrap();
    let pipeline = gst::parse::launch(description).unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let message = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(timeout_seconds),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("the pipeline finished in time");
    assert!(
        matches!(message.view(), gst::MessageView::Eos(_)),
        "{message:?}"
    );
    pipeline.set_state(gst::State::Null).unwrap();
}

/// Overrides that make mode `explicit` fit its stage 1 in a moment on the tiny data.
pub fn explicit_overrides() -> Vec<String> {
    [
        "networks.degradation.noise_tile=4",
        "networks.degradation.noise_tiles=16",
        "networks.degradation.fit_patches=64",
        "networks.degradation.fit_steps=20",
        "networks.degradation.kernel=5",
        "networks.degradation.jpeg_quality=[30, 95]",
    ]
    .map(String::from)
    .to_vec()
}

/// One opaque ellipse of a test scene: centre (x, y) in HR px (rows grow downwards), semi-axes
/// along and across `angle` (degrees counter-clockwise), grey level.
pub struct Ellipse {
    pub centre: (f64, f64),
    pub along: f64,
    pub across: f64,
    pub angle: f64,
    pub level: f32,
}

/// A grey scene of hard-edged `ellipses` painted in order over `background` at `hr × hr`, then
/// downscaled ×1/4 by the bicubic: `[3, hr / 4, hr / 4]` in [0, 1], step edges of known
/// directions for the edge-width measure.
pub fn ellipse_scene(hr: i64, background: f32, ellipses: &[Ellipse]) -> Tensor {
    let mut pixels = vec![background; (hr * hr) as usize];
    for e in ellipses {
        let (sin, cos) = e.angle.to_radians().sin_cos();
        for y in 0..hr {
            for x in 0..hr {
                // Rows grow downwards: y up for the angle.
                let (dx, dy) = (x as f64 + 0.5 - e.centre.0, e.centre.1 - (y as f64 + 0.5));
                let (u, v) = (dx * cos + dy * sin, -dx * sin + dy * cos);
                if (u / e.along).powi(2) + (v / e.across).powi(2) <= 1.0 {
                    pixels[(y * hr + x) as usize] = e.level;
                }
            }
        }
    }
    let grey = Tensor::from_slice(&pixels).view([1, hr, hr]);
    cyclesr_train::data::imresize(&grey.repeat([3, 1, 1]), 0.25).clamp(0.0, 1.0)
}

/// A degradation that only shifts (HR pixels) and downscales: the LR is the 8-bit bicubic↓ of
/// the shifted HR, nothing else.
pub fn shift_and_downscale(shift: (i64, i64), scale: i64) -> Degradation {
    Degradation {
        shift,
        motion_blur: None,
        gaussian_blur: None,
        scale,
        poisson_peak: None,
        gaussian_noise: None,
        jpeg_quality: None,
        h264_qp: None,
        sensor: None,
    }
}

/// Standard normal values of `shape` from `seed`, without libtorch's global generator: other
/// tests of a binary may train networks in parallel and need it undisturbed.
pub fn gaussian(shape: &[i64], seed: u64) -> Tensor {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let count: i64 = shape.iter().product();
    let values: Vec<f32> = (0..count)
        .map(|_| {
            let (u1, u2): (f64, f64) = (1.0 - rng.random::<f64>(), rng.random());
            ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
        })
        .collect();
    Tensor::from_slice(&values).view(shape)
}

/// `count` pairs of random `side`² HR photos (`dir/hr/imgNN.png`, libtorch's generator seeded
/// by `seed`) and their 8-bit bicubic↓4 (`dir/lr/imgNN.png`): LR with no blur and no noise.
pub fn write_downscaled_pairs(dir: &Path, count: usize, side: i64, seed: i64) {
    tch::manual_seed(seed);
    for k in 0..count {
        let hr_path = dir.join(format!("hr/img{k:02}.png"));
        save_png(
            &Tensor::rand([3, side, side], (Kind::Float, Device::Cpu)),
            &hr_path,
        )
        .unwrap();
        let hr = load_rgb8(&hr_path).unwrap().to_tensor();
        let lr = degrade(&hr, &shift_and_downscale((0, 0), 4), 0).unwrap();
        save_png(&lr.to_tensor(), &dir.join(format!("lr/img{k:02}.png"))).unwrap();
    }
}
