//! From unpaired images to upscaled video: `train fit` on images made here, `train export`,
//! then the exported G_l2h in a `cyclesr` pipeline.

#[path = "../train/tests/common/mod.rs"]
mod common;

use common::{args, temp_dir, tiny_options};
use cyclesr_train::export::{self, ExportArgs};
use cyclesr_train::trainer::{fit, LATEST};
use gst::prelude::*;
use gstcyclesr::model::checkpoint::SrModel;

#[test]
fn trained_and_exported_model_runs_in_the_element() {
    let dir = temp_dir("e2e");
    // 2 + 2 pretraining iterations, then 8 joint ones.
    fit(&args(tiny_options(&dir, "joint", 8))).unwrap();

    let model_path = dir.join("g_l2h.safetensors");
    export::run(&ExportArgs {
        state: dir.join("run/checkpoints").join(LATEST),
        out: model_path.clone(),
    })
    .unwrap();
    let model = SrModel::load(&model_path, tch::Device::Cpu).unwrap();
    assert_eq!(model.provenance["iteration"], "12");
    assert_eq!(model.provenance["mode"], "joint");
    assert!(model.provenance["options"].contains("name = \"tiny\""));

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
