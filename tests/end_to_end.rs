//! From unpaired images to upscaled video: `train fit` on images made here, `train export`,
//! then the exported G_l2h in a `cyclesr` pipeline.

use std::path::{Path, PathBuf};

use cyclesr_train::export::{self, ExportArgs};
use cyclesr_train::trainer::{fit, FitArgs, LATEST};
use gst::prelude::*;
use gstcyclesr::model::checkpoint::SrModel;

fn write_images(dir: &Path, count: u32, width: u32, height: u32, seed: u32) {
    std::fs::create_dir_all(dir).unwrap();
    for k in 0..count {
        let f = (seed * 5 + k + 1) as f32;
        let img = image::RgbImage::from_fn(width, height, |x, y| {
            let v = |p: f32| {
                ((0.5 + 0.5 * ((x as f32 * 0.13 * f + p).sin() * (y as f32 * 0.05 + p).cos()))
                    * 255.0) as u8
            };
            image::Rgb([v(0.0), v(1.0), v(2.0)])
        });
        img.save(dir.join(format!("{k}.png"))).unwrap();
    }
}

#[test]
fn trained_and_exported_model_runs_in_the_element() {
    let dir: PathBuf = std::env::temp_dir().join(format!("cyclesr-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    write_images(&dir.join("hr"), 4, 64, 48, 1);
    write_images(&dir.join("real"), 4, 24, 20, 2);
    let options = dir.join("options.toml");
    std::fs::write(
        &options,
        format!(
            r#"
name = "e2e"
mode = "joint"
seed = 5
device = "cpu"
output = "{run}"
[data]
hr = ["{hr}"]
real_lr = ["{real}"]
lr_patch = 12
batch = 2
[networks]
sr = {{ arch = "srresnet", blocks = 2, features = 8 }}
translator = {{ features = 8, blocks = 1 }}
discriminator = {{ features = 8, layers = 2 }}
sr_discriminator = {{ features = 8 }}
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
pretrain_translator = 3
pretrain_sr = 3
iterations = 6
decay_start = 0.5
pool_size = 4
[logging]
every = 1
samples_every = 0
[checkpoints]
every = 4
"#,
            run = dir.join("run").display(),
            hr = dir.join("hr").display(),
            real = dir.join("real").display(),
        ),
    )
    .unwrap();
    fit(&FitArgs {
        options,
        overrides: vec![],
        resume: None,
        max_iterations: None,
        quiet: true,
    })
    .unwrap();

    let model_path = dir.join("g_l2h.safetensors");
    export::run(&ExportArgs {
        state: dir.join("run/checkpoints").join(LATEST),
        out: model_path.clone(),
    })
    .unwrap();
    let model = SrModel::load(&model_path, tch::Device::Cpu).unwrap();
    assert_eq!(model.provenance["iteration"], "12");
    assert_eq!(model.provenance["mode"], "joint");
    assert!(model.provenance["options"].contains("name = \"e2e\""));

    gst::init().unwrap();
    gstcyclesr::plugin_register_static().unwrap();
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers=3 ! video/x-raw,format=I420,width=20,height=14 ! cyclesr model-location={} ! appsink name=out",
        model_path.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let sink = pipeline
        .by_name("out")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut frames = 0;
    while let Ok(sample) = sink.pull_sample() {
        let info = gst_video::VideoInfo::from_caps(sample.caps().unwrap()).unwrap();
        assert_eq!(
            (info.width(), info.height(), info.format()),
            (80, 56, gst_video::VideoFormat::I420)
        );
        frames += 1;
    }
    pipeline.set_state(gst::State::Null).unwrap();
    assert_eq!(frames, 3);
}
