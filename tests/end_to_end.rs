//! From unpaired images to upscaled video: `train fit` on images made here, `train export`,
//! then the exported G_l2h in a `cyclesr` pipeline.

#[path = "../train/tests/common/mod.rs"]
mod common;

use common::{args, pull_video_infos, temp_dir, tiny_options};
use cyclesr_train::export::{self, ExportArgs};
use cyclesr_train::trainer::{fit, LATEST};
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

    let frames = pull_video_infos(&format!(
        "videotestsrc num-buffers=3 ! video/x-raw,format=I420,width=20,height=14 ! cyclesr model-location={} ! appsink name=out",
        model_path.display()
    ));
    for info in &frames {
        assert_eq!(
            (info.width(), info.height(), info.format()),
            (80, 56, gst_video::VideoFormat::I420)
        );
    }
    assert_eq!(frames.len(), 3);
}
