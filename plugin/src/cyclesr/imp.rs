use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::base_transform::{
    GenerateOutputSuccess, InputBuffer, PrepareOutputBufferSuccess,
};
use gst_base::subclass::prelude::*;
use gst_video::prelude::*;
use gst_video::subclass::prelude::*;
use gst_video::{VideoFrameRef, VideoInfo};

use super::batch::{self, upscale_frames, Batch, BatchWorker, Done, Formats};
use super::frame::{Layout, FORMATS};
use super::{EmbeddedModelSetting, PrecisionSetting};
use crate::model::checkpoint::{config_from_bytes, read_config, SrModel};
use crate::model::device::{resolve_device, DeviceRequest, Precision};
use crate::model::upscaler::{catch_torch, Tiling, Upscaler};
use crate::model::EmbeddedModel;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "cyclesr",
        gst::DebugColorFlags::empty(),
        Some("CycleSR super-resolution"),
    )
});

/// Scales of the embedded models, read once from their headers: caps queries ask for them
/// often, and building the network for one would run libtorch inside a query.
static EMBEDDED_SCALES: LazyLock<Vec<(EmbeddedModel, Option<i64>)>> = LazyLock::new(|| {
    EmbeddedModel::ALL
        .iter()
        .map(|&model| {
            let scale = model
                .bytes()
                .and_then(|bytes| config_from_bytes(bytes).ok())
                .map(|config| config.scale);
            (model, scale)
        })
        .collect()
});

fn embedded_scale(model: EmbeddedModel) -> Option<i64> {
    EMBEDDED_SCALES
        .iter()
        .find_map(|&(m, scale)| (m == model).then_some(scale).flatten())
}

const DEFAULT_DEVICE: &str = "auto";
const DEFAULT_TILE_OVERLAP: u32 = 16;
const DEFAULT_BATCH: u32 = 1;
const MAX_BATCH: u32 = 64;
/// Scale assumed for caps queries before a model is known.
const DEFAULT_SCALE: i64 = 4;

#[derive(Debug, Clone)]
struct Settings {
    model_location: Option<PathBuf>,
    /// Scale read from the model file's header when `model-location` is set, so caps can be
    /// answered before the model is loaded.
    model_scale: Option<i64>,
    embedded_model: EmbeddedModelSetting,
    device: String,
    precision: PrecisionSetting,
    tile_size: u32,
    tile_overlap: u32,
    threads: u32,
    batch: u32,
    overlap: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            model_location: None,
            model_scale: None,
            embedded_model: EmbeddedModelSetting::default(),
            device: DEFAULT_DEVICE.to_string(),
            precision: PrecisionSetting::Fp32,
            tile_size: 0,
            tile_overlap: DEFAULT_TILE_OVERLAP,
            threads: 0,
            batch: DEFAULT_BATCH,
            overlap: false,
        }
    }
}

/// What queries, the `scale` property and meta transforms read. Its lock is never held
/// across inference, so they do not wait for a batch.
#[derive(Default)]
struct Shared {
    /// Scale of the loaded model, from `start()` to `stop()`.
    scale: Option<i64>,
    /// Frames go through the batch queue (`batch` > 1 or `overlap`) rather than
    /// BaseTransform's one-in-one-out path.
    queued: bool,
    /// Stream time of the end of the last frame pushed in queued mode, for position queries:
    /// frames pushed by a drain bypass BaseTransform's own bookkeeping, and reading the
    /// segment there would wait for the streaming thread.
    position_out: Option<gst::ClockTime>,
    /// Input and output buffers the element holds at most: a batch filling and, with
    /// `overlap`, one on the worker.
    held_buffers: u32,
    /// Negotiated input and output caps.
    infos: Option<(VideoInfo, VideoInfo)>,
    /// Running average of the time one batch takes through the network.
    processing: gst::ClockTime,
    /// The processing time last reported to latency queries: it moves only when the
    /// average leaves it by a quarter, so latency does not ratchet up on one slow pass.
    reported_processing: gst::ClockTime,
    /// How long a frame waits for its batch (and with `overlap`, for the next one to fill).
    queue_wait: gst::ClockTime,
}

impl Shared {
    /// Adds one pass to the average; whether the reported figure moved (then a latency
    /// message is due).
    fn record_pass(&mut self, elapsed: Duration) -> bool {
        let elapsed = gst::ClockTime::from_nseconds(elapsed.as_nanos() as u64);
        self.processing = (self.processing * 7 + elapsed) / 8;
        let reported = self.reported_processing;
        let moved =
            self.processing.nseconds().abs_diff(reported.nseconds()) > reported.nseconds() / 4;
        if moved {
            self.reported_processing = self.processing;
        }
        moved
    }

    fn latency(&self) -> gst::ClockTime {
        self.reported_processing + self.queue_wait
    }
}

struct State {
    /// Shared with the worker thread when there is one.
    upscaler: Arc<Mutex<Upscaler>>,
    formats: Option<Formats>,
    /// Frames per forward pass (the `batch` property).
    batch: usize,
    /// Runs the batches with `overlap`.
    worker: Option<BatchWorker>,
    /// Input frames waiting for a full batch.
    pending: Vec<gst::Buffer>,
    /// Upscaled frames not yet pushed.
    ready: VecDeque<gst::Buffer>,
    /// Without a frame rate in the caps: the start of the previous input frame, to learn the
    /// frame duration the batch wait is made of.
    previous_pts: Option<gst::ClockTime>,
    frame_duration_known: bool,
    /// QoS dropped a frame: the next frame queued marks the gap with DISCONT.
    discont: bool,
    /// A downstream flow error met while draining (at an event or a drain query), returned
    /// upstream with its next buffer.
    drain_error: Option<gst::FlowError>,
}

#[derive(Default)]
pub struct CycleSr {
    settings: Mutex<Settings>,
    shared: Mutex<Shared>,
    state: Mutex<Option<State>>,
}

impl CycleSr {
    fn scale(&self) -> i64 {
        if let Some(scale) = self.shared.lock().unwrap().scale {
            return scale;
        }
        let settings = self.settings.lock().unwrap();
        settings
            .model_scale
            .or_else(|| {
                settings
                    .model_location
                    .is_none()
                    .then(|| embedded_scale(settings.embedded_model.into()))
                    .flatten()
            })
            .unwrap_or(DEFAULT_SCALE)
    }

    fn load(&self, settings: &Settings) -> Result<Upscaler, gst::ErrorMessage> {
        let request: DeviceRequest = settings
            .device
            .parse()
            .map_err(|e: anyhow::Error| gst::error_msg!(gst::LibraryError::Settings, ("{e}")))?;
        let (device, warning) = resolve_device(request)
            .map_err(|e| gst::error_msg!(gst::ResourceError::NotFound, ("{e}")))?;
        if let Some(mut warning) = warning {
            if settings.model_location.is_none()
                && settings.embedded_model == EmbeddedModelSetting::Quality
            {
                warning.push_str(" (embedded-model=fast is about 4x faster there)");
            }
            self.warn(&warning);
        }
        if settings.threads > 0 {
            tch::set_num_threads(settings.threads as i32);
        }
        let model = self.load_model(settings, device)?;
        gst::info!(CAT, imp = self, "loaded {:?} on {device:?}", model.config);

        let tiling = Tiling {
            tile_size: settings.tile_size as i64,
            overlap: settings.tile_overlap as i64,
        };
        let mut precision = match settings.precision {
            PrecisionSetting::Fp32 => Precision::Fp32,
            PrecisionSetting::Fp16 => Precision::Fp16,
            PrecisionSetting::Bf16 => Precision::Bf16,
        };
        if precision == Precision::Fp16 && device == tch::Device::Cpu {
            self.warn("fp16 needs CUDA; running fp32 on the CPU");
            precision = Precision::Fp32;
        }
        let failed = |e: anyhow::Error| {
            gst::error_msg!(
                gst::LibraryError::Failed,
                ("Cannot run the model on {device:?}"),
                ["{e:#}"]
            )
        };
        match Upscaler::new(model, precision, tiling) {
            Ok(upscaler) => Ok(upscaler),
            // The model was converted for the failed precision: only this rare fallback
            // loads it a second time.
            Err(e) if precision != Precision::Fp32 => {
                self.warn(&format!("{e:#}; falling back to fp32"));
                let model = self.load_model(settings, device)?;
                Upscaler::new(model, Precision::Fp32, tiling).map_err(failed)
            }
            Err(e) => Err(failed(e)),
        }
    }

    /// The model of `model-location`, or the embedded model `embedded-model` names when it is
    /// not set. The message names the file; the debug part holds the whole chain of causes.
    fn load_model(
        &self,
        settings: &Settings,
        device: tch::Device,
    ) -> Result<SrModel, gst::ErrorMessage> {
        if let Some(path) = &settings.model_location {
            gst::info!(CAT, imp = self, "loading {} on {device:?}", path.display());
            return catch_torch(|| SrModel::load(path, device))
                .and_then(|r| r)
                .map_err(|e| {
                    gst::error_msg!(
                        gst::ResourceError::OpenRead,
                        ("Cannot load model {}: {}", path.display(), e.root_cause()),
                        ["{e:#}"]
                    )
                });
        }
        let embedded = EmbeddedModel::from(settings.embedded_model);
        let name = embedded.file_name();
        gst::info!(CAT, imp = self, "loading the embedded {name} on {device:?}");
        let Some(bytes) = embedded.bytes() else {
            return Err(gst::error_msg!(
                gst::ResourceError::NotFound,
                ("No model: this build does not embed {name}; set model-location to a cyclesr checkpoint (.safetensors) or choose another embedded-model")
            ));
        };
        catch_torch(|| SrModel::from_bytes(bytes, device))
            .and_then(|r| r)
            .map_err(|e| {
                gst::error_msg!(
                    gst::LibraryError::Init,
                    ("Cannot load the embedded model {name}"),
                    ["{e:#}"]
                )
            })
    }

    /// A warning on the bus: the element runs, but not as configured.
    fn warn(&self, text: &str) {
        gst::element_imp_warning!(self, gst::CoreError::Failed, ("{text}"));
    }

    /// Width or height value of caps in one direction of the element.
    fn scale_dimension(
        value: &glib::SendValue,
        direction: gst::PadDirection,
        scale: i64,
    ) -> Option<glib::SendValue> {
        let up = direction == gst::PadDirection::Sink;
        let max = i32::MAX as i64;
        if let Ok(v) = value.get::<i32>() {
            let v = v as i64;
            return if up {
                (v * scale <= max).then(|| ((v * scale) as i32).to_send_value())
            } else {
                (v % scale == 0).then(|| ((v / scale) as i32).to_send_value())
            };
        }
        if let Ok(range) = value.get::<gst::IntRange<i32>>() {
            let (min, max_v) = (range.min() as i64, range.max() as i64);
            let (lo, hi) = if up {
                (min * scale, (max_v * scale).min(max / scale * scale))
            } else {
                ((min + scale - 1) / scale, max_v / scale)
            };
            if lo > hi {
                return None;
            }
            if lo == hi {
                return Some((lo as i32).to_send_value());
            }
            let range = if up {
                gst::IntRange::with_step(lo as i32, hi as i32, scale as i32)
            } else {
                gst::IntRange::new(lo as i32, hi as i32)
            };
            return Some(range.to_send_value());
        }
        if let Ok(list) = value.get::<gst::List>() {
            let items: Vec<glib::SendValue> = list
                .iter()
                .filter_map(|v| Self::scale_dimension(v, direction, scale))
                .collect();
            return (!items.is_empty()).then(|| gst::List::from_values(items).to_send_value());
        }
        None
    }
}

impl CycleSr {
    /// Upscales every pending frame as one batch: on this thread, or with `overlap` on the
    /// worker (then the batch before it is taken back, so one runs while the next fills).
    /// Finished frames go to `ready`. Returns whether a latency message is due.
    fn process_pending(&self, state: &mut State) -> Result<bool, gst::FlowError> {
        if state.pending.is_empty() {
            return Ok(false);
        }
        let formats = state.formats.clone().ok_or(gst::FlowError::NotNegotiated)?;
        let inputs = std::mem::take(&mut state.pending);
        let mut outputs = Vec::with_capacity(inputs.len());
        for input in &inputs {
            match self.parent_prepare_output_buffer(InputBuffer::Readable(input.as_ref()))? {
                PrepareOutputBufferSuccess::Buffer(buffer) => outputs.push(buffer),
                PrepareOutputBufferSuccess::InputBuffer => {
                    unreachable!("the element never works in place")
                }
            }
        }
        let batch = Batch {
            inputs,
            outputs,
            formats,
        };
        let done = match &mut state.worker {
            None => Some(batch::run(&state.upscaler, batch)),
            Some(worker) => {
                // Queued behind the running batch, so the worker goes on without a gap; then
                // the running one is taken back.
                worker.submit(batch).map_err(|e| self.worker_failed(e))?;
                if worker.in_flight() > 1 {
                    worker.wait().map_err(|e| self.worker_failed(e))?
                } else {
                    None
                }
            }
        };
        match done {
            Some(done) => self.finish(state, done),
            None => Ok(false),
        }
    }

    fn worker_failed(&self, e: anyhow::Error) -> gst::FlowError {
        gst::element_imp_error!(
            self,
            gst::CoreError::Thread,
            ("The inference thread stopped"),
            ["{e:#}"]
        );
        gst::FlowError::Error
    }

    /// Waits for every batch in flight on the worker and queues its frames.
    fn finish_in_flight(&self, state: &mut State) -> Result<bool, gst::FlowError> {
        let mut latency_moved = false;
        loop {
            let done = match state.worker.as_mut() {
                Some(worker) => worker.wait().map_err(|e| self.worker_failed(e))?,
                None => None,
            };
            let Some(done) = done else {
                return Ok(latency_moved);
            };
            latency_moved |= self.finish(state, done)?;
        }
    }

    /// Queues a processed batch's frames, or posts an error naming them.
    fn finish(&self, state: &mut State, done: Done) -> Result<bool, gst::FlowError> {
        let frames = done.outputs.len();
        self.check_frames(done.result, done.input_size, frames)?;
        state.ready.extend(done.outputs);
        Ok(self.shared.lock().unwrap().record_pass(done.elapsed))
    }

    /// Posts an error naming the frames on failure: the cause goes to the debug part.
    fn check_frames(
        &self,
        result: anyhow::Result<()>,
        (width, height): (u32, u32),
        frames: usize,
    ) -> Result<(), gst::FlowError> {
        result.map_err(|e| {
            gst::element_imp_error!(
                self,
                gst::StreamError::Failed,
                ("Super-resolution of {frames} {width}x{height} frame(s) failed"),
                ["{e:#}"]
            );
            gst::FlowError::Error
        })
    }

    fn post_latency(&self) {
        let _ = self
            .obj()
            .post_message(gst::message::Latency::builder().src(&*self.obj()).build());
    }

    /// Upscales the frames still waiting for a full batch and pushes them downstream, before
    /// any serialized event and on drain queries. A frame that cannot be upscaled has posted
    /// an error; a downstream flow error is returned.
    fn drain(&self) -> Result<gst::FlowSuccess, gst::FlowError> {
        let (outputs, latency_moved) = {
            let mut guard = self.state.lock().unwrap();
            let Some(state) = guard.as_mut() else {
                return Ok(gst::FlowSuccess::Ok);
            };
            let moved = self.process_pending(state)?;
            let in_flight_moved = self.finish_in_flight(state)?;
            (std::mem::take(&mut state.ready), moved || in_flight_moved)
        };
        if latency_moved {
            self.post_latency();
        }
        for buffer in outputs {
            self.note_output(&buffer);
            self.obj().src_pad().push(buffer)?;
        }
        Ok(gst::FlowSuccess::Ok)
    }

    /// Drains, keeping a downstream flow error for the next buffer from upstream.
    fn drain_keeping_errors(&self) {
        if let Err(error) = self.drain() {
            gst::debug!(CAT, imp = self, "drain: {error:?}");
            if let Some(state) = self.state.lock().unwrap().as_mut() {
                state.drain_error = Some(error);
            }
        }
    }

    /// Remembers where the output stands, for position queries (on the streaming thread,
    /// where the segment is at hand).
    fn note_output(&self, buffer: &gst::BufferRef) {
        let Some(pts) = buffer.pts() else {
            return;
        };
        let end = pts + buffer.duration().unwrap_or(gst::ClockTime::ZERO);
        let segment = self.obj().segment();
        if let Some(stream_time) = segment
            .downcast_ref::<gst::ClockTime>()
            .and_then(|segment| segment.to_stream_time(end))
        {
            self.shared.lock().unwrap().position_out = Some(stream_time);
        }
    }

    fn queued(&self) -> bool {
        self.shared.lock().unwrap().queued
    }

    /// Without a frame rate, learns the frame duration from the input and sizes the batch
    /// wait with it, once. Returns whether the latency changed.
    fn learn_frame_duration(&self, state: &mut State, buffer: &gst::BufferRef) -> bool {
        if state.frame_duration_known {
            return false;
        }
        let duration = buffer.duration().or_else(|| {
            buffer
                .pts()
                .zip(state.previous_pts)
                .and_then(|(pts, previous)| pts.checked_sub(previous))
        });
        state.previous_pts = buffer.pts();
        let Some(duration) = duration.filter(|d| !d.is_zero()) else {
            return false;
        };
        state.frame_duration_known = true;
        let frames = waiting_frames(state.batch as u64, state.worker.is_some());
        self.shared.lock().unwrap().queue_wait = duration * frames;
        gst::debug!(CAT, imp = self, "frame duration {duration} from the input");
        true
    }
}

/// Frames a frame waits for before it is pushed: the rest of its batch, and with `overlap`
/// the next batch, which fills while it runs.
fn waiting_frames(batch: u64, overlap: bool) -> u64 {
    batch - 1 + if overlap { batch } else { 0 }
}

#[glib::object_subclass]
impl ObjectSubclass for CycleSr {
    const NAME: &'static str = "GstCycleSr";
    type Type = super::CycleSr;
    type ParentType = gst_video::VideoFilter;
}

impl ObjectImpl for CycleSr {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("model-location")
                    .nick("Model location")
                    .blurb("G_l2h checkpoint (.safetensors) written by `train export` or `train camera`; unset = the embedded model that embedded-model names")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("embedded-model", EmbeddedModelSetting::Quality)
                    .nick("Embedded model")
                    .blurb("Which model built into the plugin runs when model-location is unset")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("device")
                    .nick("Device")
                    .blurb("Where inference runs: auto (first CUDA GPU, else CPU with a warning), cpu, cuda or cuda:N (an error if absent)")
                    .default_value(Some(DEFAULT_DEVICE))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("precision", PrecisionSetting::Fp32)
                    .nick("Precision")
                    .blurb("Arithmetic of inference; a precision the device cannot run falls back to fp32 with a warning")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("tile-size")
                    .nick("Tile size")
                    .blurb("Process the frame in tiles of this many input pixels to bound memory (0 = whole frame)")
                    .default_value(0)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("tile-overlap")
                    .nick("Tile overlap")
                    .blurb("Input pixels of context around each tile, discarded after inference; enough context makes tiled output match whole-frame output")
                    .default_value(DEFAULT_TILE_OVERLAP)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("threads")
                    .nick("CPU threads")
                    .blurb("Threads libtorch uses for CPU inference (process-wide; 0 = libtorch's default)")
                    .maximum(1024)
                    .default_value(0)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("batch")
                    .nick("Batch")
                    .blurb("Frames upscaled together in one forward pass: more throughput for small frames on a GPU, at the cost of (batch − 1) frames of latency")
                    .minimum(1)
                    .maximum(MAX_BATCH)
                    .default_value(DEFAULT_BATCH)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("overlap")
                    .nick("Overlap")
                    .blurb("Upscale on a worker thread while the streaming thread receives the next frames and pushes the previous ones, so inference overlaps the rest of the pipeline; adds one batch of latency")
                    .default_value(false)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecInt::builder("scale")
                    .nick("Scale")
                    .blurb("Upscaling factor of the model (read from its header: model-location's file or the embedded model)")
                    .minimum(1)
                    .maximum(8)
                    .default_value(DEFAULT_SCALE as i32)
                    .read_only()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        if self.shared.lock().unwrap().scale.is_some() {
            gst::warning!(
                CAT,
                imp = self,
                "{} set while the element runs: it takes effect at the next start (READY to PAUSED)",
                pspec.name()
            );
        }
        let mut settings = self.settings.lock().unwrap();
        match pspec.name() {
            "model-location" => {
                let location: Option<String> = value.get().expect("type checked upstream");
                settings.model_location = location.filter(|l| !l.is_empty()).map(PathBuf::from);
                settings.model_scale = settings.model_location.as_deref().and_then(|path| {
                    read_config(path)
                        .inspect_err(|e| gst::warning!(CAT, imp = self, "{e:#}"))
                        .ok()
                        .map(|c| c.scale)
                });
            }
            "embedded-model" => {
                settings.embedded_model = value.get().expect("type checked upstream")
            }
            "device" => {
                let device: Option<String> = value.get().expect("type checked upstream");
                settings.device = device.unwrap_or_else(|| DEFAULT_DEVICE.to_string());
            }
            "precision" => settings.precision = value.get().expect("type checked upstream"),
            "tile-size" => settings.tile_size = value.get().expect("type checked upstream"),
            "tile-overlap" => settings.tile_overlap = value.get().expect("type checked upstream"),
            "threads" => settings.threads = value.get().expect("type checked upstream"),
            "batch" => settings.batch = value.get().expect("type checked upstream"),
            "overlap" => settings.overlap = value.get().expect("type checked upstream"),
            name => unreachable!("unknown property {name}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        if pspec.name() == "scale" {
            return (self.scale() as i32).to_value();
        }
        let settings = self.settings.lock().unwrap();
        match pspec.name() {
            "model-location" => settings
                .model_location
                .as_ref()
                .map(|p| p.display().to_string())
                .to_value(),
            "embedded-model" => settings.embedded_model.to_value(),
            "device" => settings.device.to_value(),
            "precision" => settings.precision.to_value(),
            "tile-size" => settings.tile_size.to_value(),
            "tile-overlap" => settings.tile_overlap.to_value(),
            "threads" => settings.threads.to_value(),
            "batch" => settings.batch.to_value(),
            "overlap" => settings.overlap.to_value(),
            name => unreachable!("unknown property {name}"),
        }
    }

    fn constructed(&self) {
        self.parent_constructed();
        // Late frames in live pipelines are dropped before inference.
        self.obj().set_qos(true);
    }
}

impl GstObjectImpl for CycleSr {}

impl ElementImpl for CycleSr {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "CycleSR super-resolution",
                "Filter/Effect/Converter/Video/Scaler",
                "Upscales video with a super-resolution network trained by CycleSR on real degraded footage (libtorch, CUDA or CPU)",
                "cyclesr developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PAD_TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            // Interlaced frames would be upscaled as one picture, mixing their fields.
            let caps = gst_video::VideoCapsBuilder::new()
                .format_list(FORMATS.iter().copied())
                .field("interlace-mode", "progressive")
                .build();
            vec![
                gst::PadTemplate::new(
                    "src",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &caps,
                )
                .unwrap(),
                gst::PadTemplate::new(
                    "sink",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Always,
                    &caps,
                )
                .unwrap(),
            ]
        });
        PAD_TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for CycleSr {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::NeverInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = self.settings.lock().unwrap().clone();
        let upscaler = self.load(&settings)?;
        let scale = upscaler.scale();
        let upscaler = Arc::new(Mutex::new(upscaler));
        let worker = if settings.overlap {
            let worker = BatchWorker::upscaling(upscaler.clone()).map_err(|e| {
                gst::error_msg!(
                    gst::CoreError::Thread,
                    ("Cannot start the worker thread"),
                    ["{e}"]
                )
            })?;
            Some(worker)
        } else {
            None
        };
        let batch = settings.batch as usize;
        let queued = batch > 1 || worker.is_some();
        *self.shared.lock().unwrap() = Shared {
            scale: Some(scale),
            queued,
            held_buffers: if queued {
                settings.batch * if worker.is_some() { 2 } else { 1 }
            } else {
                0
            },
            ..Shared::default()
        };
        *self.state.lock().unwrap() = Some(State {
            upscaler,
            formats: None,
            batch,
            worker,
            pending: Vec::new(),
            ready: VecDeque::new(),
            previous_pts: None,
            frame_duration_known: false,
            discont: false,
            drain_error: None,
        });
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *self.state.lock().unwrap() = None;
        *self.shared.lock().unwrap() = Shared::default();
        Ok(())
    }

    fn transform_caps(
        &self,
        direction: gst::PadDirection,
        caps: &gst::Caps,
        filter: Option<&gst::Caps>,
    ) -> Option<gst::Caps> {
        let scale = self.scale();
        let mut other = gst::Caps::new_empty();
        {
            let other = other.get_mut().unwrap();
            for (s, features) in caps.iter_with_features() {
                let mut s = s.to_owned();
                let mut valid = true;
                for field in ["width", "height"] {
                    if let Ok(value) = s.value(field) {
                        match Self::scale_dimension(value, direction, scale) {
                            Some(v) => s.set_value(field, v),
                            None => valid = false,
                        }
                    }
                }
                if valid {
                    other.append_structure_full(s, Some(features.to_owned()));
                }
            }
        }
        gst::debug!(CAT, imp = self, "{direction:?} {caps} -> {other}");
        Some(match filter {
            Some(filter) => filter.intersect_with_mode(&other, gst::CapsIntersectMode::First),
            None => other,
        })
    }

    fn query(&self, direction: gst::PadDirection, query: &mut gst::QueryRef) -> bool {
        match (direction, query.view_mut()) {
            (gst::PadDirection::Src, gst::QueryViewMut::Latency(q)) => {
                if !self.obj().sink_pad().peer_query(q.query_mut()) {
                    return false;
                }
                let (live, min, max) = q.result();
                let ours = self.shared.lock().unwrap().latency();
                q.set(live, min + ours, max.map(|m| m + ours));
                return true;
            }
            // Frames pushed by a drain bypass BaseTransform's own position bookkeeping.
            (gst::PadDirection::Src, gst::QueryViewMut::Position(q))
                if q.format() == gst::Format::Time && self.queued() =>
            {
                if let Some(position) = self.shared.lock().unwrap().position_out {
                    q.set(position);
                    return true;
                }
            }
            (gst::PadDirection::Sink, gst::QueryViewMut::Drain(_)) => {
                self.drain_keeping_errors();
            }
            _ => {}
        }
        BaseTransformImplExt::parent_query(self, direction, query)
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        if let gst::EventView::FlushStop(_) = event.view() {
            if let Some(state) = self.state.lock().unwrap().as_mut() {
                state.pending.clear();
                // Batches in flight finish on the worker and are dropped.
                if let Some(worker) = state.worker.as_mut() {
                    while let Ok(Some(_)) = worker.wait() {}
                }
                state.ready.clear();
                state.drain_error = None;
                state.discont = false;
            }
            self.shared.lock().unwrap().position_out = None;
        } else if event.is_serialized() && self.queued() {
            // Frames received before an event (GAP, tags, caps, EOS...) leave before it.
            self.drain_keeping_errors();
        }
        self.parent_sink_event(event)
    }

    fn propose_allocation(
        &self,
        decide_query: Option<&gst::query::Allocation>,
        query: &mut gst::query::Allocation,
    ) -> Result<(), gst::LoggableError> {
        self.parent_propose_allocation(decide_query, query)?;
        let held = self.shared.lock().unwrap().held_buffers;
        if held == 0 {
            return Ok(());
        }
        // Upstream's pool must keep the frames waiting in batches on top of its own needs.
        let pools: Vec<_> = query.allocation_pools().collect();
        if pools.is_empty() {
            let size = query
                .caps()
                .and_then(|caps| VideoInfo::from_caps(caps).ok())
                .map_or(0, |info| info.size() as u32);
            query.add_allocation_pool(None::<&gst::BufferPool>, size, held, 0);
        }
        for (index, (pool, size, min, max)) in pools.into_iter().enumerate() {
            let max = if max == 0 { 0 } else { max + held };
            query.set_nth_allocation_pool(index as u32, pool.as_ref(), size, min + held, max);
        }
        if query
            .find_allocation_meta::<gst_video::VideoMeta>()
            .is_none()
        {
            query.add_allocation_meta::<gst_video::VideoMeta>(None);
        }
        Ok(())
    }

    fn decide_allocation(
        &self,
        query: &mut gst::query::Allocation,
    ) -> Result<(), gst::LoggableError> {
        // Output buffers stay with the element while their batch fills and runs: a bounded
        // downstream pool needs that many more, or acquiring the next one blocks for good.
        let held = self.shared.lock().unwrap().held_buffers;
        if held > 0 {
            let pools: Vec<_> = query.allocation_pools().collect();
            for (index, (pool, size, min, max)) in pools.into_iter().enumerate() {
                let max = if max == 0 { 0 } else { max + held };
                query.set_nth_allocation_pool(index as u32, pool.as_ref(), size, min + held, max);
            }
        }
        self.parent_decide_allocation(query)
    }

    fn transform_meta<'a>(
        &self,
        outbuf: &mut gst::BufferRef,
        meta: gst::MetaRef<'a, gst::Meta>,
        inbuf: &'a gst::BufferRef,
    ) -> bool {
        use gst::meta::MetaTag;
        use gst_video::video_meta::tags;
        // As videoconvertscale: metas that depend on nothing or only on the picture's size,
        // orientation or colour space are kept, the size-dependent ones scaled; others (memory
        // layout...) are for the parent class to judge.
        let tags_known = meta.tags().iter().all(|tag| {
            [
                tags::Video::TAG_NAME,
                tags::Size::TAG_NAME,
                tags::Orientation::TAG_NAME,
                tags::Colorspace::TAG_NAME,
            ]
            .iter()
            .any(|known| known.as_str() == tag.as_str())
        });
        if !tags_known {
            return self.parent_transform_meta(outbuf, meta, inbuf);
        }
        if !meta.has_tag::<tags::Size>() {
            return true;
        }
        let Some((in_info, out_info)) = self.shared.lock().unwrap().infos.clone() else {
            return false;
        };
        let scale = gst_video::video_meta::VideoMetaTransformScale::new(&in_info, &out_info);
        if let Err(e) = meta.transform(outbuf, &scale) {
            gst::debug!(CAT, imp = self, "{:?} dropped: {e}", meta.api());
        }
        // Scaled into `outbuf` already: not to be copied as well.
        false
    }

    fn submit_input_buffer(
        &self,
        is_discont: bool,
        inbuf: gst::Buffer,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        if !self.queued() {
            return self.parent_submit_input_buffer(is_discont, inbuf);
        }
        if let Some(error) = self
            .state
            .lock()
            .unwrap()
            .as_mut()
            .and_then(|s| s.drain_error.take())
        {
            return Err(error);
        }
        // BaseTransform negotiates (caps, RECONFIGURE from downstream), refuses buffers
        // before caps and drops late frames (QoS); it keeps the frames it accepts.
        let submitted = self.parent_submit_input_buffer(is_discont, inbuf)?;
        let mut guard = self.state.lock().unwrap();
        let state = guard.as_mut().ok_or(gst::FlowError::Flushing)?;
        let Some(mut inbuf) = self.take_queued_buffer() else {
            state.discont = true;
            return Ok(submitted);
        };
        if std::mem::take(&mut state.discont) {
            inbuf.make_mut().set_flags(gst::BufferFlags::DISCONT);
        }
        let mut latency_moved = self.learn_frame_duration(state, &inbuf);
        state.pending.push(inbuf);
        if state.pending.len() >= state.batch {
            latency_moved |= self.process_pending(state)?;
        }
        drop(guard);
        if latency_moved {
            self.post_latency();
        }
        Ok(gst::FlowSuccess::Ok)
    }

    fn generate_output(&self) -> Result<GenerateOutputSuccess, gst::FlowError> {
        if !self.queued() {
            return self.parent_generate_output();
        }
        let buffer = {
            let mut guard = self.state.lock().unwrap();
            let state = guard.as_mut().ok_or(gst::FlowError::Flushing)?;
            state.ready.pop_front()
        };
        Ok(match buffer {
            Some(buffer) => {
                self.note_output(&buffer);
                GenerateOutputSuccess::Buffer(buffer)
            }
            None => GenerateOutputSuccess::NoOutput,
        })
    }
}

impl VideoFilterImpl for CycleSr {
    fn set_info(
        &self,
        incaps: &gst::Caps,
        in_info: &VideoInfo,
        outcaps: &gst::Caps,
        out_info: &VideoInfo,
    ) -> Result<(), gst::LoggableError> {
        let mut guard = self.state.lock().unwrap();
        let state = guard
            .as_mut()
            .ok_or_else(|| gst::loggable_error!(CAT, "caps set before the model was loaded"))?;
        let scale = self.scale() as u32;
        if out_info.width() != in_info.width() * scale
            || out_info.height() != in_info.height() * scale
        {
            return Err(gst::loggable_error!(
                CAT,
                "output caps {outcaps} are not input caps {incaps} scaled ×{scale}"
            ));
        }
        let layouts = Layout::from_info(in_info)
            .and_then(|i| Ok((i, Layout::from_info(out_info)?)))
            .map_err(|e| gst::loggable_error!(CAT, "{e:#}"))?;
        gst::debug!(CAT, imp = self, "{incaps} -> {outcaps} as {layouts:?}");

        let processing = self.warm_up(state, in_info).map_err(|e| {
            gst::element_imp_error!(
                self,
                gst::StreamError::Failed,
                (
                    "Cannot upscale {}x{} frames in batches of {}",
                    in_info.width(),
                    in_info.height(),
                    state.batch
                ),
                ["{e:#}"]
            );
            gst::loggable_error!(CAT, "warm-up failed: {e:#}")
        })?;
        let fps = in_info.fps();
        let frames = waiting_frames(state.batch as u64, state.worker.is_some());
        // Without a frame rate the wait is learnt from the first frames.
        state.frame_duration_known = fps.numer() > 0;
        state.previous_pts = None;
        let queue_wait = if fps.numer() > 0 {
            gst::ClockTime::SECOND
                .mul_div_floor(frames * fps.denom() as u64, fps.numer() as u64)
                .unwrap_or(gst::ClockTime::ZERO)
        } else {
            gst::ClockTime::ZERO
        };
        state.formats = Some(Formats {
            infos: (in_info.clone(), out_info.clone()),
            layouts,
        });
        {
            let mut shared = self.shared.lock().unwrap();
            shared.infos = Some((in_info.clone(), out_info.clone()));
            shared.processing = processing;
            shared.reported_processing = processing;
            shared.queue_wait = queue_wait;
        }
        drop(guard);
        self.post_latency();
        Ok(())
    }

    fn transform_frame(
        &self,
        inframe: &VideoFrameRef<&gst::BufferRef>,
        outframe: &mut VideoFrameRef<&mut gst::BufferRef>,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let (upscaler, layouts) = {
            let guard = self.state.lock().unwrap();
            let state = guard.as_ref().ok_or(gst::FlowError::Flushing)?;
            let formats = state
                .formats
                .as_ref()
                .ok_or(gst::FlowError::NotNegotiated)?;
            (state.upscaler.clone(), formats.layouts)
        };
        let started = Instant::now();
        let result = upscale_frames(
            &upscaler.lock().unwrap(),
            layouts,
            &[inframe],
            &mut [outframe],
        );
        self.check_frames(result, (inframe.width(), inframe.height()), 1)?;
        if self.shared.lock().unwrap().record_pass(started.elapsed()) {
            self.post_latency();
        }
        Ok(gst::FlowSuccess::Ok)
    }
}

impl CycleSr {
    /// Runs one batch of the negotiated size through the network, so the first frames do not
    /// pay for the device's per-shape set-up (cuDNN's algorithm search), and returns how long
    /// a warm pass took: the processing latency to report.
    fn warm_up(&self, state: &State, info: &VideoInfo) -> anyhow::Result<gst::ClockTime> {
        let upscaler = state.upscaler.lock().unwrap();
        let shape = [
            state.batch as i64,
            3,
            info.height() as i64,
            info.width() as i64,
        ];
        let frames = tch::Tensor::zeros(shape, (tch::Kind::Float, upscaler.device()));
        // On a GPU the first pass at a shape searches for algorithms: time the second.
        let passes = if upscaler.device().is_cuda() { 2 } else { 1 };
        let mut elapsed = Duration::ZERO;
        for _ in 0..passes {
            let started = Instant::now();
            catch_torch(|| {
                let out = upscaler.upscale(&frames);
                // CUDA runs asynchronously: wait for the result before reading the clock.
                let _ = out.sum(tch::Kind::Float).double_value(&[]);
            })?;
            elapsed = started.elapsed();
        }
        gst::debug!(CAT, imp = self, "warm pass of {shape:?}: {elapsed:?}");
        Ok(gst::ClockTime::from_nseconds(elapsed.as_nanos() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reported processing time follows the typical pass: one slow pass does not raise
    /// it for good, and it comes down when passes get faster.
    #[test]
    fn reported_latency_does_not_ratchet_up() {
        let ms = gst::ClockTime::from_mseconds;
        let mut shared = Shared {
            processing: ms(100),
            reported_processing: ms(100),
            ..Shared::default()
        };
        assert!(!shared.record_pass(Duration::from_millis(250)));
        for _ in 0..20 {
            shared.record_pass(Duration::from_millis(100));
        }
        assert_eq!(shared.reported_processing, ms(100));
        let moved = (0..20)
            .map(|_| shared.record_pass(Duration::from_millis(40)))
            .fold(false, |a, b| a | b);
        assert!(moved);
        assert!(shared.reported_processing < ms(75));
    }
}
