use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Instant;

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
use gst_video::VideoFrameRef;

use super::batch::{self, upscale_frames, Batch, Done, Formats, Worker};
use super::frame::{Layout, FORMATS};
use super::PrecisionSetting;
use crate::model::checkpoint::{read_config, SrModel};
use crate::model::device::{resolve_device, DeviceRequest, Precision};
use crate::model::embedded_default_model;
use crate::model::upscaler::{catch_torch, Tiling, Upscaler};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "cyclesr",
        gst::DebugColorFlags::empty(),
        Some("CycleSR super-resolution"),
    )
});

/// Scale of the embedded default model, parsed once: caps queries ask for it often.
static EMBEDDED_SCALE: LazyLock<Option<i64>> = LazyLock::new(|| {
    embedded_default_model()
        .and_then(|bytes| SrModel::from_bytes(bytes, tch::Device::Cpu).ok())
        .map(|m| m.config.scale)
});

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

/// Input and output caps, known once caps are set.
struct Negotiated {
    formats: Formats,
    /// How long a frame waits before its batch is upscaled, and with `overlap`, until the
    /// next batch is full: (batch − 1) frame durations, plus batch more with `overlap`.
    queue_wait: gst::ClockTime,
}

struct State {
    /// Shared with the worker thread when there is one.
    upscaler: Arc<Mutex<Upscaler>>,
    scale: i64,
    negotiated: Option<Negotiated>,
    /// Frames per forward pass (the `batch` property).
    batch: usize,
    /// Runs the batches with `overlap`.
    worker: Option<Worker>,
    /// Input frames waiting for a full batch.
    pending: Vec<gst::Buffer>,
    /// Upscaled frames not yet pushed.
    ready: VecDeque<gst::Buffer>,
    /// Processing latency reported to latency queries: the slowest forward pass so far.
    latency: gst::ClockTime,
}

#[derive(Default)]
pub struct CycleSr {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
}

impl CycleSr {
    fn scale(&self) -> i64 {
        if let Some(state) = self.state.lock().unwrap().as_ref() {
            return state.scale;
        }
        let settings = self.settings.lock().unwrap();
        settings
            .model_scale
            .or_else(|| {
                settings
                    .model_location
                    .is_none()
                    .then_some(*EMBEDDED_SCALE)
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
        if let Some(warning) = warning {
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
        // The model is only moved to another precision once it proved it can run there.
        let fp32_copy = if precision != Precision::Fp32 {
            Some(self.load_model(settings, device)?)
        } else {
            None
        };
        match Upscaler::new(model, precision, tiling) {
            Ok(upscaler) => Ok(upscaler),
            Err(e) if precision != Precision::Fp32 => {
                self.warn(&format!("{e:#}; falling back to fp32"));
                Upscaler::new(
                    fp32_copy.expect("loaded for a non-fp32 precision"),
                    Precision::Fp32,
                    tiling,
                )
                .map_err(|e| gst::error_msg!(gst::LibraryError::Failed, ("{e:#}")))
            }
            Err(e) => Err(gst::error_msg!(gst::LibraryError::Failed, ("{e:#}"))),
        }
    }

    /// The model of `model-location`, or the embedded default model when it is not set.
    fn load_model(
        &self,
        settings: &Settings,
        device: tch::Device,
    ) -> Result<SrModel, gst::ErrorMessage> {
        match (&settings.model_location, embedded_default_model()) {
            (Some(path), _) => catch_torch(|| SrModel::load(path, device))
                .and_then(|r| r)
                .map_err(|e| {
                    gst::error_msg!(gst::ResourceError::OpenRead, ("Cannot load model {}: {e:#}", path.display()))
                }),
            (None, Some(bytes)) => catch_torch(|| SrModel::from_bytes(bytes, device))
                .and_then(|r| r)
                .map_err(|e| gst::error_msg!(gst::LibraryError::Init, ("Embedded default model: {e:#}"))),
            (None, None) => Err(gst::error_msg!(
                gst::ResourceError::NotFound,
                ("No model: set model-location to a cyclesr checkpoint (.safetensors); this build has no embedded default model")
            )),
        }
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
    /// Finished frames go to `ready`. Returns whether the latency grew (see
    /// [`Self::raise_latency`]).
    fn process_pending(&self, state: &mut State) -> Result<bool, gst::FlowError> {
        let inputs = std::mem::take(&mut state.pending);
        if inputs.is_empty() {
            return Ok(false);
        }
        let formats = state
            .negotiated
            .as_ref()
            .ok_or(gst::FlowError::NotNegotiated)?
            .formats
            .clone();
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
                worker.submit(batch);
                if worker.in_flight() > 1 {
                    worker.wait()
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

    /// Waits for every batch in flight on the worker and queues its frames.
    fn finish_in_flight(&self, state: &mut State) -> Result<bool, gst::FlowError> {
        let mut raised = false;
        while let Some(done) = state.worker.as_mut().and_then(Worker::wait) {
            raised |= self.finish(state, done)?;
        }
        Ok(raised)
    }

    /// Queues a processed batch's frames, or posts an error naming them.
    fn finish(&self, state: &mut State, done: Done) -> Result<bool, gst::FlowError> {
        let frames = done.outputs.len();
        self.check_frames(done.result, done.input_size, frames)?;
        state.ready.extend(done.outputs);
        Ok(self.raise_latency(state, done.elapsed))
    }

    /// Posts an error naming the frames on failure.
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
                ("Super-resolution of {frames} {width}x{height} frame(s) failed: {e:#}")
            );
            gst::FlowError::Error
        })
    }

    /// Raises the reported latency when a forward pass that took `elapsed` was the slowest
    /// so far; the caller then posts [`Self::post_latency`] once the state is unlocked
    /// (handling the message may query the element's latency).
    fn raise_latency(&self, state: &mut State, elapsed: std::time::Duration) -> bool {
        let elapsed = gst::ClockTime::from_nseconds(elapsed.as_nanos() as u64);
        let raised = elapsed > state.latency;
        if raised {
            state.latency = elapsed;
            gst::debug!(CAT, imp = self, "processing latency now {elapsed}");
        }
        raised
    }

    fn post_latency(&self) {
        let _ = self
            .obj()
            .post_message(gst::message::Latency::builder().src(&*self.obj()).build());
    }

    /// Upscales the frames still waiting for a full batch and pushes them downstream: before
    /// EOS, new caps or a new segment, and on drain queries.
    fn drain(&self) {
        let (outputs, raised) = {
            let mut guard = self.state.lock().unwrap();
            let Some(state) = guard.as_mut() else {
                return;
            };
            let Ok(pending) = self.process_pending(state) else {
                return;
            };
            let Ok(in_flight) = self.finish_in_flight(state) else {
                return;
            };
            (std::mem::take(&mut state.ready), pending || in_flight)
        };
        if raised {
            self.post_latency();
        }
        for buffer in outputs {
            if let Err(e) = self.obj().src_pad().push(buffer) {
                gst::debug!(CAT, imp = self, "drained frame not pushed: {e:?}");
                break;
            }
        }
    }

    /// Whether frames go through the batch queue rather than BaseTransform's one-in-one-out
    /// path.
    fn queued(&self) -> bool {
        self.state
            .lock()
            .unwrap()
            .as_ref()
            .is_some_and(|s| s.batch > 1 || s.worker.is_some())
    }
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
                    .blurb("G_l2h checkpoint (.safetensors) written by `train export`; unset = the model embedded in this build, if any")
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
                    .blurb("Upscaling factor of the model (read from model-location)")
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
            let caps = gst_video::VideoCapsBuilder::new()
                .format_list(FORMATS.iter().copied())
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
            let worker = Worker::spawn(upscaler.clone()).map_err(|e| {
                gst::error_msg!(
                    gst::CoreError::Thread,
                    ("Cannot start the worker thread: {e}")
                )
            })?;
            Some(worker)
        } else {
            None
        };
        *self.state.lock().unwrap() = Some(State {
            upscaler,
            scale,
            negotiated: None,
            batch: settings.batch as usize,
            worker,
            pending: Vec::new(),
            ready: VecDeque::new(),
            latency: gst::ClockTime::ZERO,
        });
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *self.state.lock().unwrap() = None;
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
        if direction == gst::PadDirection::Src {
            if let gst::QueryViewMut::Latency(q) = query.view_mut() {
                if !self.obj().sink_pad().peer_query(q.query_mut()) {
                    return false;
                }
                let (live, min, max) = q.result();
                let ours = self
                    .state
                    .lock()
                    .unwrap()
                    .as_ref()
                    .map_or(gst::ClockTime::ZERO, |s| {
                        let wait = s
                            .negotiated
                            .as_ref()
                            .map_or(gst::ClockTime::ZERO, |n| n.queue_wait);
                        s.latency + wait
                    });
                q.set(live, min + ours, max.map(|m| m + ours));
                return true;
            }
        }
        if direction == gst::PadDirection::Sink {
            if let gst::QueryViewMut::Drain(_) = query.view_mut() {
                self.drain();
            }
        }
        BaseTransformImplExt::parent_query(self, direction, query)
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::Eos(_) | gst::EventView::Caps(_) | gst::EventView::Segment(_) => {
                self.drain()
            }
            gst::EventView::FlushStop(_) => {
                if let Some(state) = self.state.lock().unwrap().as_mut() {
                    state.pending.clear();
                    // Batches in flight finish on the worker and are dropped.
                    while state.worker.as_mut().and_then(Worker::wait).is_some() {}
                    state.ready.clear();
                }
            }
            _ => {}
        }
        self.parent_sink_event(event)
    }

    fn submit_input_buffer(
        &self,
        is_discont: bool,
        inbuf: gst::Buffer,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        if !self.queued() {
            return self.parent_submit_input_buffer(is_discont, inbuf);
        }
        let mut guard = self.state.lock().unwrap();
        let state = guard.as_mut().ok_or(gst::FlowError::Flushing)?;
        state.pending.push(inbuf);
        if state.pending.len() >= state.batch && self.process_pending(state)? {
            drop(guard);
            self.post_latency();
        }
        Ok(gst::FlowSuccess::Ok)
    }

    fn generate_output(&self) -> Result<GenerateOutputSuccess, gst::FlowError> {
        if !self.queued() {
            return self.parent_generate_output();
        }
        let mut guard = self.state.lock().unwrap();
        let state = guard.as_mut().ok_or(gst::FlowError::Flushing)?;
        Ok(match state.ready.pop_front() {
            Some(buffer) => GenerateOutputSuccess::Buffer(buffer),
            None => GenerateOutputSuccess::NoOutput,
        })
    }
}

impl VideoFilterImpl for CycleSr {
    fn set_info(
        &self,
        incaps: &gst::Caps,
        in_info: &gst_video::VideoInfo,
        outcaps: &gst::Caps,
        out_info: &gst_video::VideoInfo,
    ) -> Result<(), gst::LoggableError> {
        let mut state = self.state.lock().unwrap();
        let state = state
            .as_mut()
            .ok_or_else(|| gst::loggable_error!(CAT, "caps set before the model was loaded"))?;
        let scale = state.scale as u32;
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
        let fps = in_info.fps();
        let batch = state.batch as u64;
        let waiting_frames = batch - 1 + if state.worker.is_some() { batch } else { 0 };
        // Without a frame rate the wait cannot be known in advance.
        let queue_wait = if fps.numer() > 0 && waiting_frames > 0 {
            gst::ClockTime::SECOND
                .mul_div_floor(waiting_frames * fps.denom() as u64, fps.numer() as u64)
                .unwrap_or(gst::ClockTime::ZERO)
        } else {
            gst::ClockTime::ZERO
        };
        state.negotiated = Some(Negotiated {
            formats: Formats {
                infos: (in_info.clone(), out_info.clone()),
                layouts,
            },
            queue_wait,
        });
        Ok(())
    }

    fn transform_frame(
        &self,
        inframe: &VideoFrameRef<&gst::BufferRef>,
        outframe: &mut VideoFrameRef<&mut gst::BufferRef>,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let started = Instant::now();
        let mut guard = self.state.lock().unwrap();
        let state = guard.as_mut().ok_or(gst::FlowError::Flushing)?;
        let layouts = state
            .negotiated
            .as_ref()
            .ok_or(gst::FlowError::NotNegotiated)?
            .formats
            .layouts;
        let result = upscale_frames(
            &state.upscaler.lock().unwrap(),
            layouts,
            &[inframe],
            &mut [outframe],
        );
        self.check_frames(result, (inframe.width(), inframe.height()), 1)?;
        if self.raise_latency(state, started.elapsed()) {
            drop(guard);
            self.post_latency();
        }
        Ok(gst::FlowSuccess::Ok)
    }
}
