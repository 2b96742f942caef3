//! The `upscale` binary and the file scripts keep the input's audio: the same stream,
//! remuxed untouched, and the same duration.

use std::path::{Path, PathBuf};
use std::process::Command;

use gst::prelude::*;

#[path = "../../plugin/tests/common/test_dir.rs"]
mod test_dir;
use test_dir::temp_dir;

/// Two seconds of 32×24 H.264 at 10 fps and of AAC, in an MP4.
fn make_input(path: &Path) {
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers=20 ! video/x-raw,format=I420,width=32,height=24,framerate=10/1 \
         ! x264enc speed-preset=ultrafast ! h264parse ! mp4mux name=mux ! filesink location={} \
         audiotestsrc num-buffers=20 samplesperbuffer=4410 ! audio/x-raw,rate=44100 \
         ! avenc_aac ! mux.",
        path.display()
    ))
    .expect("x264enc, avenc_aac and mp4mux (gstreamer1.0-plugins-ugly, -libav, -good)");
    run_to_eos(&pipeline);
}

fn run_to_eos(pipeline: &gst::Element) {
    pipeline.set_state(gst::State::Playing).unwrap();
    let msg = pipeline
        .bus()
        .unwrap()
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(60),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("the pipeline ends within 60 s");
    pipeline.set_state(gst::State::Null).unwrap();
    if let gst::MessageView::Error(e) = msg.view() {
        panic!("{} ({:?})", e.error(), e.debug());
    }
}

/// The caps of every stream of an MP4 file and its duration.
fn streams(path: &Path) -> (Vec<gst::Caps>, gst::ClockTime) {
    let pipeline = gst::Pipeline::new();
    let src = gst::ElementFactory::make("filesrc")
        .property("location", path.to_str().unwrap())
        .build()
        .unwrap();
    let demux = gst::ElementFactory::make("qtdemux").build().unwrap();
    pipeline.add_many([&src, &demux]).unwrap();
    src.link(&demux).unwrap();
    let weak = pipeline.downgrade();
    demux.connect_pad_added(move |_, pad| {
        let pipeline = weak.upgrade().unwrap();
        let sink = gst::ElementFactory::make("fakesink").build().unwrap();
        pipeline.add(&sink).unwrap();
        sink.sync_state_with_parent().unwrap();
        pad.link(&sink.static_pad("sink").unwrap()).unwrap();
    });
    let (exposed, all_exposed) = std::sync::mpsc::channel();
    demux.connect_no_more_pads(move |_| {
        let _ = exposed.send(());
    });
    pipeline.set_state(gst::State::Paused).unwrap();
    all_exposed
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("the demuxer finds the streams");
    let pads = demux.src_pads();
    let caps = pads.iter().filter_map(|pad| pad.current_caps()).collect();
    let duration = pads
        .iter()
        .filter_map(|pad| pad.query_duration::<gst::ClockTime>())
        .max()
        .expect("the demuxer knows the duration");
    pipeline.set_state(gst::State::Null).unwrap();
    (caps, duration)
}

fn audio_of(caps: &[gst::Caps]) -> Vec<&gst::Caps> {
    caps.iter()
        .filter(|c| c.structure(0).unwrap().name().starts_with("audio/"))
        .collect()
}

fn assert_audio_kept(input: &Path, output: &Path, what: &str) {
    let (in_caps, in_duration) = streams(input);
    let (out_caps, out_duration) = streams(output);
    let (in_audio, out_audio) = (audio_of(&in_caps), audio_of(&out_caps));
    assert_eq!(out_audio.len(), 1, "{what}: streams {out_caps:?}");
    // Untouched: the same codec and codec data.
    let field = |caps: &gst::Caps, name: &str| caps.structure(0).unwrap().value(name).ok().cloned();
    for name in ["codec_data", "rate", "channels"] {
        assert_eq!(
            field(in_audio[0], name).map(|v| v.serialize().unwrap().to_string()),
            field(out_audio[0], name).map(|v| v.serialize().unwrap().to_string()),
            "{what}: audio {name}"
        );
    }
    let gap = in_duration.nseconds().abs_diff(out_duration.nseconds());
    assert!(
        gap <= gst::ClockTime::from_mseconds(100).nseconds(),
        "{what}: duration {out_duration}, input {in_duration}"
    );
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The model the scripts are given: the smaller shipped model (the tests check the audio, not the picture).
fn model() -> PathBuf {
    let model = repo().join("plugin/models/srresnet-6x32.safetensors");
    assert!(model.exists(), "{} missing", model.display());
    model
}

#[test]
fn upscale_binary_keeps_the_audio() {
    gst::init().unwrap();
    let dir = temp_dir("binary");
    let (input, output) = (dir.join("in.mp4"), dir.join("out.mp4"));
    make_input(&input);
    let status = Command::new(env!("CARGO_BIN_EXE_upscale"))
        .args(["--device", "cpu", "--x264-preset", "ultrafast", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .arg("--model")
        .arg(model())
        .status()
        .unwrap();
    assert!(status.success());
    assert_audio_kept(&input, &output, "upscale");
}

#[test]
fn file_scripts_keep_the_audio() {
    gst::init().unwrap();
    let exe = std::env::current_exe().unwrap();
    let target_dir = exe.parent().unwrap().parent().unwrap(); // target/release/deps/..
    assert!(
        target_dir.join("libgstcyclesr.so").exists(),
        "the plugin is not built (cargo build --release -p gst-plugin-cyclesr)"
    );
    let dir = temp_dir("scripts");
    let input = dir.join("in.mp4");
    make_input(&input);
    for script in ["upscale_file.sh", "side_by_side.sh"] {
        let output = dir.join(format!("{script}.mp4"));
        let status = Command::new("bash")
            .arg(repo().join("examples").join(script))
            .arg(&input)
            .arg(&output)
            .arg(model())
            .arg("device=cpu")
            .env("GST_PLUGIN_PATH", target_dir)
            .env("GST_REGISTRY", dir.join("registry.bin"))
            .env("X264_PROPS", "speed-preset=ultrafast")
            .status()
            .unwrap();
        assert!(status.success(), "{script}");
        assert_audio_kept(&input, &output, script);
    }
}
