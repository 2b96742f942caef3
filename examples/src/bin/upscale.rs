//! Upscale a video file with the `cyclesr` element from a Rust application.
//!
//! The plugin is linked into this binary and registered with
//! `gstcyclesr::plugin_register_static()`, so no GST_PLUGIN_PATH is needed. The pipeline:
//!
//! ```text
//! filesrc ! decodebin ! cyclesr ! videoconvert ! x264enc ! mp4mux ! filesink     (out.mp4)
//! filesrc ! parsebin ! queue ! mp4mux                                           (its audio)
//! filesrc ! decodebin ! cyclesr ! videoconvert ! pngenc snapshot=true ! filesink (out.png: first frame)
//! filesrc ! decodebin ! cyclesr ! videoconvert ! pngenc ! multifilesink          (out-%05d.png: every frame)
//! ```
//!
//! Decoded frames in a format cyclesr takes (I420, NV12, Y444, YUY2, 10-bit I420_10LE and
//! P010_10LE, RGB and friends) go straight in; any other format gets a `videoconvert` in
//! front. With `--frames N`, a pad probe on cyclesr's input answers "end of stream" to the
//! decoder after N frames. The first audio stream goes into the MP4 untouched (encoded to
//! AAC when MP4 cannot hold its codec), unless `--start-frame` or `--frames` cut the video.
//!
//! Example:
//! `upscale --input data/real_lr/vtest.avi --output vtest-x4.mp4 --start-frame 600 --frames 50`

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use gst::prelude::*;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Upscale a video file with the cyclesr super-resolution element"
)]
struct Args {
    /// Input video (anything decodebin can decode).
    #[arg(short, long)]
    input: PathBuf,
    /// Output: an .mp4 file (H.264), a .png file (the first upscaled frame only), or a
    /// pattern with a printf-style number such as frames/%05d.png (every frame).
    #[arg(short, long)]
    output: PathBuf,
    /// G_l2h checkpoint (.safetensors), as written by `train export` (default: the model
    /// embedded in the plugin that --embedded-model names).
    #[arg(short, long)]
    model: Option<PathBuf>,
    /// The embedded model to run without --model: quality (SRResNet 16x64) or fast
    /// (SRResNet 6x32, about 4x faster on a CPU).
    #[arg(long, value_parser = ["quality", "fast"], default_value = "quality")]
    embedded_model: String,
    /// Where inference runs: auto, cpu, cuda or cuda:N.
    #[arg(short, long, default_value = "auto")]
    device: String,
    /// Process frames in tiles of this many input pixels (0 = whole frame).
    #[arg(long, default_value_t = 0)]
    tile_size: u32,
    /// Context pixels around each tile (default: the element's).
    #[arg(long)]
    tile_overlap: Option<u32>,
    /// Inference precision (default: the element's, fp32).
    #[arg(long, value_parser = ["fp32", "fp16", "bf16"])]
    precision: Option<String>,
    /// CPU threads for libtorch (default: libtorch's choice).
    #[arg(long)]
    threads: Option<u32>,
    /// Frames upscaled together in one forward pass (the element's `batch`).
    #[arg(long, default_value_t = 1)]
    batch: u32,
    /// Upscale on a worker thread while the next batch fills (the element's `overlap`).
    #[arg(long)]
    overlap: bool,
    /// Skip this many decoded frames before upscaling (e.g. 600 for vtest.avi's held-out tail).
    #[arg(long, default_value_t = 0)]
    start_frame: u64,
    /// Stop after this many frames (default: the whole input).
    #[arg(long)]
    frames: Option<u64>,
    /// x264enc speed-preset for MP4 output.
    #[arg(long, default_value = "medium", value_parser = [
        "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
        "veryslow", "placebo",
    ])]
    x264_preset: String,
}

enum Output {
    Mp4,
    Snapshot,
    Sequence,
}

fn output_kind(path: &std::path::Path) -> Output {
    let s = path.to_string_lossy();
    let png = s.to_ascii_lowercase().ends_with(".png");
    if png && s.contains('%') {
        Output::Sequence
    } else if png {
        Output::Snapshot
    } else {
        Output::Mp4
    }
}

fn make(factory: &str) -> Result<gst::Element> {
    gst::ElementFactory::make(factory).build().with_context(|| {
        format!("cannot create element '{factory}' (is its GStreamer plugin installed?)")
    })
}

fn main() -> Result<()> {
    let args = Args::parse();
    if !args.input.is_file() {
        bail!("input {} does not exist", args.input.display());
    }
    if let Some(model) = args.model.as_ref().filter(|m| !m.is_file()) {
        bail!(
            "model {} does not exist (checkpoints come from `train export`)",
            model.display()
        );
    }

    gst::init()?;
    gstcyclesr::plugin_register_static().context("registering the cyclesr plugin")?;

    let pipeline = gst::Pipeline::with_name("upscale");
    let src = gst::ElementFactory::make("filesrc")
        .property(
            "location",
            args.input.to_str().context("input path is not UTF-8")?,
        )
        .build()?;
    let decode = make("decodebin")?;
    let sr = gst::ElementFactory::make("cyclesr")
        .property("device", &args.device)
        .property("tile-size", args.tile_size)
        .property("batch", args.batch)
        .property("overlap", args.overlap)
        .build()?;
    sr.set_property_from_str("embedded-model", &args.embedded_model);
    if let Some(model) = &args.model {
        sr.set_property(
            "model-location",
            model.to_str().context("model path is not UTF-8")?,
        );
    }
    if let Some(overlap) = args.tile_overlap {
        sr.set_property("tile-overlap", overlap);
    }
    if let Some(precision) = &args.precision {
        sr.set_property_from_str("precision", precision);
    }
    if let Some(threads) = args.threads {
        sr.set_property("threads", threads);
    }
    let scale: i32 = sr.property("scale");
    let convert = make("videoconvert")?;

    let output = args.output.to_str().context("output path is not UTF-8")?;
    let mut tail = vec![convert.clone()];
    let mut mux = None;
    match output_kind(&args.output) {
        Output::Mp4 => {
            if !output.to_ascii_lowercase().ends_with(".mp4") {
                eprintln!("[upscale] note: writing an MP4 file to {output}");
            }
            let enc = make("x264enc")?;
            enc.set_property_from_str("speed-preset", &args.x264_preset);
            tail.push(enc);
            let mp4mux = make("mp4mux")?;
            mux = Some(mp4mux.clone());
            tail.push(mp4mux);
            tail.push(
                gst::ElementFactory::make("filesink")
                    .property("location", output)
                    .build()?,
            );
        }
        Output::Snapshot => {
            tail.push(
                gst::ElementFactory::make("pngenc")
                    .property("snapshot", true)
                    .build()?,
            );
            tail.push(
                gst::ElementFactory::make("filesink")
                    .property("location", output)
                    .build()?,
            );
        }
        Output::Sequence => {
            tail.push(make("pngenc")?);
            tail.push(
                gst::ElementFactory::make("multifilesink")
                    .property("location", output)
                    .build()?,
            );
        }
    }

    pipeline.add_many([&src, &decode, &sr])?;
    pipeline.add_many(&tail)?;
    src.link(&decode)?;
    sr.link(&convert)?;
    gst::Element::link_many(&tail)?;
    if let Some(mux) = &mux {
        if args.start_frame > 0 || args.frames.is_some() {
            eprintln!("[upscale] audio left out: --start-frame and --frames cut the video only");
        } else {
            add_audio(&pipeline, &args.input, mux)?;
        }
    }

    // decodebin's pads appear once it knows the streams: link the first video stream,
    // straight into cyclesr when it can take the decoder's format.
    let video_linked = Arc::new(Mutex::new(false));
    {
        let pipeline = pipeline.downgrade();
        let sr = sr.clone();
        let video_linked = video_linked.clone();
        decode.connect_pad_added(move |_, pad| {
            let Some(pipeline) = pipeline.upgrade() else {
                return;
            };
            let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
            let Some(s) = caps.structure(0) else { return };
            if !s.name().starts_with("video/x-raw") {
                return; // audio, subtitles: not used
            }
            let mut linked = video_linked.lock().unwrap();
            if *linked {
                return; // only the first video stream
            }
            let format = s.get::<&str>("format").unwrap_or("?");
            let supported = gstcyclesr::FORMATS.iter().any(|f| f.to_str() == format);
            let sink = sr.static_pad("sink").unwrap();
            let result = if supported {
                eprintln!("[upscale] decoded video: {format}, straight into cyclesr");
                pad.link(&sink).map(|_| ())
            } else {
                eprintln!("[upscale] decoded video: {format}, converted for cyclesr");
                let conv = gst::ElementFactory::make("videoconvert").build().unwrap();
                pipeline.add(&conv).unwrap();
                conv.sync_state_with_parent().unwrap();
                pad.link(&conv.static_pad("sink").unwrap())
                    .map(|_| ())
                    .and_then(|_| conv.static_pad("src").unwrap().link(&sink).map(|_| ()))
            };
            match result {
                Ok(()) => *linked = true,
                Err(e) => eprintln!("[upscale] cannot link the decoder to cyclesr: {e:?}"),
            }
        });
    }

    // Frames out of cyclesr, and when they came, for the frame rate.
    let frames_out = Arc::new(AtomicU64::new(0));
    let first_out: Arc<Mutex<Option<Instant>>> = Arc::default();
    let last_out: Arc<Mutex<Option<Instant>>> = Arc::default();
    // Stream time of the last frame out (ns), the progress position.
    let position = Arc::new(AtomicU64::new(u64::MAX));
    let bus = pipeline.bus().unwrap();
    if args.start_frame > 0 || args.frames.is_some() {
        // Frames before the start are consumed here with FLOW_OK; frames past the limit are
        // refused with FLOW_EOS: the decoder and demuxer stop and send EOS downstream, so the
        // MP4 is finalised. (Returning Drop would do as well but makes GStreamer 1.22 print a
        // CRITICAL with gstreamer-rs.)
        let (start, end) = (args.start_frame, args.frames.map(|n| args.start_frame + n));
        let frames_in = AtomicU64::new(0);
        sr.static_pad("sink")
            .unwrap()
            .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                let index = frames_in.fetch_add(1, Ordering::SeqCst);
                if index < start {
                    info.flow_res = Ok(gst::FlowSuccess::Ok);
                    return gst::PadProbeReturn::Handled;
                }
                if end.is_none_or(|end| index < end) {
                    return gst::PadProbeReturn::Ok;
                }
                info.flow_res = Err(gst::FlowError::Eos);
                gst::PadProbeReturn::Handled
            });
    }
    {
        let frames_out = frames_out.clone();
        let first_out = first_out.clone();
        let last_out = last_out.clone();
        let position = position.clone();
        sr.static_pad("src")
            .unwrap()
            .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                let now = Instant::now();
                if let Some(pts) = info.buffer().and_then(|b| b.pts()) {
                    position.store(pts.nseconds(), Ordering::SeqCst);
                }
                if frames_out.fetch_add(1, Ordering::SeqCst) == 0 {
                    *first_out.lock().unwrap() = Some(now);
                }
                *last_out.lock().unwrap() = Some(now);
                gst::PadProbeReturn::Ok
            });
    }

    eprintln!(
        "[upscale] {} -> {} (model {}, x{scale}, device {})",
        args.input.display(),
        output,
        args.model
            .as_ref()
            .map_or(format!("embedded {}", args.embedded_model), |m| m
                .display()
                .to_string()),
        args.device
    );
    let start = Instant::now();
    if pipeline.set_state(gst::State::Playing).is_err() {
        let err = pop_error(&bus).unwrap_or_else(|| anyhow!("the pipeline cannot start"));
        pipeline.set_state(gst::State::Null).ok();
        return Err(err);
    }

    let mut last_report = Instant::now();
    let result = loop {
        if let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(200)) {
            use gst::MessageView;
            match msg.view() {
                MessageView::Eos(_) => break Ok(()),
                MessageView::Error(err) => break Err(error_of(err)),
                MessageView::Warning(w) => eprintln!(
                    "[upscale] warning from {}: {} ({})",
                    w.src()
                        .map(|s| s.path_string().to_string())
                        .unwrap_or_default(),
                    w.error(),
                    w.debug().map(|d| d.to_string()).unwrap_or_default()
                ),
                _ => {}
            }
        }
        if last_report.elapsed() >= Duration::from_secs(1) {
            last_report = Instant::now();
            report_progress(
                &pipeline,
                &sr,
                &position,
                &frames_out,
                &first_out,
                start,
                args.frames,
            );
        }
    };
    let wall = start.elapsed();
    pipeline.set_state(gst::State::Null).ok();
    result?;

    let n = frames_out.load(Ordering::SeqCst);
    if n == 0 {
        bail!(
            "no video frame came out of cyclesr (does {} have a video stream?)",
            args.input.display()
        );
    }
    let first = first_out.lock().unwrap().unwrap();
    let last = last_out.lock().unwrap().unwrap();
    let steady = if n > 1 {
        format!(
            ", {:.2} fps after the first frame",
            (n - 1) as f64 / (last - first).as_secs_f64()
        )
    } else {
        String::new()
    };
    eprintln!(
        "[upscale] done: {n} frames in {:.2} s: {:.2} fps overall{steady}; first frame out after {:.2} s (includes loading the model)",
        wall.as_secs_f64(),
        n as f64 / wall.as_secs_f64(),
        (first - start).as_secs_f64(),
    );
    eprintln!("[upscale] wrote {output}");
    Ok(())
}

fn report_progress(
    pipeline: &gst::Pipeline,
    sr: &gst::Element,
    position: &AtomicU64,
    frames_out: &AtomicU64,
    first_out: &Mutex<Option<Instant>>,
    start: Instant,
    limit: Option<u64>,
) {
    let n = frames_out.load(Ordering::SeqCst);
    let fps = first_out
        .lock()
        .unwrap()
        .filter(|_| n > 1)
        .map(|t| format!(", {:.2} fps", (n - 1) as f64 / t.elapsed().as_secs_f64()))
        .unwrap_or_default();
    // The position of the frames cyclesr has finished (sinks behind a muxer cannot
    // answer a position query in time); the duration as the demuxer knows it.
    let pos = Some(position.load(Ordering::SeqCst))
        .filter(|&p| p != u64::MAX)
        .map(gst::ClockTime::from_nseconds);
    let dur = pipeline
        .query_duration::<gst::ClockTime>()
        .or_else(|| sr.query_duration::<gst::ClockTime>());
    let pos_text = match (pos, dur) {
        (Some(p), Some(d)) if d > gst::ClockTime::ZERO => format!(
            "{:.1} s / {:.1} s ({:.0}%)",
            p.seconds_f64(),
            d.seconds_f64(),
            100.0 * p.seconds_f64() / d.seconds_f64()
        ),
        (Some(p), _) => format!("{:.1} s", p.seconds_f64()),
        _ => "starting".to_string(),
    };
    let of = limit.map(|l| format!(" of {l}")).unwrap_or_default();
    eprintln!(
        "[upscale] {:6.1} s elapsed: position {pos_text}, {n}{of} frames out{fps}",
        start.elapsed().as_secs_f64()
    );
}

/// Brings the first audio stream of `input` into `mux`: untouched when the muxer takes its
/// codec, else decoded and encoded to AAC. The file is read a second time for it, so the
/// audio waiting in the muxer for the slower video never stalls the video's demuxer.
fn add_audio(pipeline: &gst::Pipeline, input: &std::path::Path, mux: &gst::Element) -> Result<()> {
    let src = gst::ElementFactory::make("filesrc")
        .property(
            "location",
            input.to_str().context("input path is not UTF-8")?,
        )
        .build()?;
    let parse = make("parsebin")?;
    pipeline.add_many([&src, &parse])?;
    src.link(&parse)?;
    let audio_linked = Mutex::new(false);
    let pipeline = pipeline.downgrade();
    let mux = mux.clone();
    parse.connect_pad_added(move |_, pad| {
        let Some(pipeline) = pipeline.upgrade() else {
            return;
        };
        let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        let is_audio = caps
            .structure(0)
            .is_some_and(|s| s.name().starts_with("audio/"));
        let mut linked = audio_linked.lock().unwrap();
        // Other streams (the video, read here a second time) are consumed and dropped.
        let result = if is_audio && !*linked {
            *linked = true;
            link_audio(&pipeline, pad, &caps, &mux)
        } else {
            gst::ElementFactory::make("fakesink")
                .property("sync", false)
                .property("async", false)
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|sink| add_after(&pipeline, pad, sink))
                .map(|_| ())
        };
        if let Err(e) = result {
            eprintln!("[upscale] cannot keep the audio: {e:#}");
        }
    });
    Ok(())
}

/// Links a parsed audio stream to the muxer: as it is if the muxer takes it, else through a
/// decoder and an AAC encoder.
fn link_audio(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    caps: &gst::Caps,
    mux: &gst::Element,
) -> Result<()> {
    let mux_pad = mux
        .request_pad_simple("audio_%u")
        .context("the muxer takes no more audio")?;
    let name = caps
        .structure(0)
        .map_or("?".into(), |s| s.name().to_string());
    if caps.can_intersect(&mux_pad.query_caps(None)) {
        eprintln!("[upscale] audio: {name}, kept as it is");
        let queue = add_after(pipeline, pad, make("queue")?)?;
        queue.static_pad("src").unwrap().link(&mux_pad)?;
        return Ok(());
    }
    let encoder = ["avenc_aac", "voaacenc"]
        .into_iter()
        .find(|e| gst::ElementFactory::find(e).is_some())
        .context("MP4 cannot hold this audio codec and no AAC encoder (avenc_aac, voaacenc) is installed")?;
    eprintln!("[upscale] audio: {name}, encoded to AAC with {encoder}");
    let decode = add_after(pipeline, pad, make("decodebin")?)?;
    let chain = ["queue", "audioconvert", "audioresample", encoder]
        .into_iter()
        .map(make)
        .collect::<Result<Vec<_>>>()?;
    pipeline.add_many(&chain)?;
    gst::Element::link_many(&chain)?;
    chain
        .last()
        .unwrap()
        .static_pad("src")
        .unwrap()
        .link(&mux_pad)?;
    for element in &chain {
        element.sync_state_with_parent()?;
    }
    let first = chain[0].clone();
    decode.connect_pad_added(move |_, pad| {
        let sink = first.static_pad("sink").unwrap();
        if !sink.is_linked() {
            let _ = pad.link(&sink);
        }
    });
    Ok(())
}

/// Adds `element` to the pipeline after `pad`, started.
fn add_after(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    element: gst::Element,
) -> Result<gst::Element> {
    pipeline.add(&element)?;
    pad.link(&element.static_pad("sink").unwrap())?;
    element.sync_state_with_parent()?;
    Ok(element)
}

fn error_of(err: &gst::message::Error) -> anyhow::Error {
    anyhow!(
        "error from {}: {}{}",
        err.src()
            .map(|s| s.path_string().to_string())
            .unwrap_or_else(|| "?".into()),
        err.error(),
        err.debug()
            .map(|d| format!("\n  debug: {d}"))
            .unwrap_or_default()
    )
}

/// The error a failed state change left on the bus, if any.
fn pop_error(bus: &gst::Bus) -> Option<anyhow::Error> {
    let msg = bus.timed_pop_filtered(
        gst::ClockTime::from_mseconds(100),
        &[gst::MessageType::Error],
    )?;
    match msg.view() {
        gst::MessageView::Error(err) => Some(error_of(err)),
        _ => None,
    }
}
