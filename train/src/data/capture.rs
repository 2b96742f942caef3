//! Recording footage: frames of a video file, a URI or a live GStreamer source, spread over
//! the stream and written as PNG files, so that a run (and its resume) trains on fixed frames
//! whatever the source was.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use gst::prelude::*;

use super::source::{bus_error, decoding_pipeline, sample_to_rgb8, StreamSource};
use super::{save_png, Rgb8};

/// How much of a stream to record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CaptureLimits {
    /// Stop at this stream time (a live source's wall time); the whole stream when absent.
    pub duration: Option<Duration>,
    /// Frames kept, spread evenly over what is recorded.
    pub frames: usize,
}

/// Spacing of the frames kept from a live source recorded without a duration: consecutive
/// frames of a camera show nearly the same content.
pub const LIVE_FRAME_INTERVAL: Duration = Duration::from_secs(1);

/// How long a source may take to deliver its first frame (an RTSP or HTTP server answering,
/// a camera starting) before it counts as unreachable.
pub const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(30);

/// What a recording kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recording {
    /// The PNG files, in stream order.
    pub files: Vec<PathBuf>,
    /// Frames the stream delivered.
    pub decoded: u64,
    pub width: usize,
    pub height: usize,
    pub live: bool,
}

/// Records `source` into `dir` as `frame-NNNNNNNN.png` (the frame's index in the stream).
/// `before_writing` sees the first frame and the number of frames to be kept before anything
/// is written (to check its size and the free space). A live source needs a duration or a
/// frame count in `limits`; a finite one keeps at most `limits.frames` frames evenly spread
/// over the stream, thinning what it wrote as the stream goes on.
pub fn record(
    source: &StreamSource,
    limits: CaptureLimits,
    dir: &Path,
    mut before_writing: impl FnMut(&Rgb8, bool) -> Result<()>,
) -> Result<Recording> {
    ensure!(
        limits.frames >= 1,
        "the number of frames to keep must be positive"
    );
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let (pipeline, sink) = decoding_pipeline(source)?;
    let result = (|| -> Result<Recording> {
        if pipeline.set_state(gst::State::Playing).is_err() {
            return Err(bus_error(&pipeline).unwrap_or_else(|| anyhow!("the source did not start")));
        }
        // Whether the source is live is known once data flows.
        let mut thinning: Option<Thinning> = None;
        let started = Instant::now();
        let mut first_pts = None;
        let mut decoded = 0u64;
        let mut size = (0, 0);
        loop {
            let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_mseconds(100)) else {
                if let Some(error) = bus_error(&pipeline) {
                    return Err(error);
                }
                if sink.is_eos() {
                    break;
                }
                if decoded == 0 && started.elapsed() > FIRST_FRAME_TIMEOUT {
                    bail!(
                        "no frame within {} s (is it reachable?)",
                        FIRST_FRAME_TIMEOUT.as_secs()
                    );
                }
                continue;
            };
            let pts = sample
                .buffer()
                .and_then(|b| b.pts())
                .map(|t| Duration::from_nanos(t.nseconds()));
            let first = *first_pts.get_or_insert(pts.unwrap_or_default());
            let time = pts.map_or(started.elapsed(), |t| t.saturating_sub(first));
            if limits.duration.is_some_and(|d| time >= d) {
                break;
            }
            let kept = thinning.get_or_insert_with(|| Thinning::new(limits, is_live(&sink)));
            let index = decoded;
            decoded += 1;
            if !kept.wants(index, time) {
                continue;
            }
            let frame = sample_to_rgb8(&sample)?;
            if index == 0 {
                before_writing(&frame, kept.is_live())?;
                size = (frame.width, frame.height);
            }
            let path = dir.join(format!("frame-{index:08}.png"));
            save_png(&frame.to_tensor(), &path)?;
            kept.push(index, path)?;
            if kept.is_complete() {
                break;
            }
        }
        let Some(kept) = thinning else {
            bail!("the stream holds no video frames");
        };
        Ok(Recording {
            live: kept.is_live(),
            files: kept.finish()?,
            decoded,
            width: size.0,
            height: size.1,
        })
    })();
    let _ = pipeline.set_state(gst::State::Null);
    result
}

/// Whether what feeds `sink` is live, asked upstream of it (the sink itself does not sync to
/// the clock, so it would answer no).
fn is_live(sink: &gst_app::AppSink) -> bool {
    let mut query = gst::query::Latency::new();
    sink.static_pad("sink")
        .is_some_and(|pad| pad.peer_query(&mut query))
        && query.result().0
}

/// Which frames a recording keeps.
enum Thinning {
    /// A live source: one frame every `interval` of wall time, until `frames` are kept (or
    /// the duration ends the recording).
    Timed {
        interval: Duration,
        next: Duration,
        frames: usize,
        kept: Vec<PathBuf>,
    },
    /// A finite stream: every `step`-th frame; at twice the frames wanted, every other kept
    /// frame is deleted and the step doubles, so the kept frames stay evenly spread and at
    /// most twice the wanted number are ever on disk.
    Stepped {
        step: u64,
        frames: usize,
        kept: Vec<(u64, PathBuf)>,
    },
}

impl Thinning {
    fn new(limits: CaptureLimits, live: bool) -> Thinning {
        if live {
            let interval = limits
                .duration
                .map_or(LIVE_FRAME_INTERVAL, |d| d / limits.frames as u32);
            Thinning::Timed {
                interval,
                next: Duration::ZERO,
                frames: limits.frames,
                kept: Vec::new(),
            }
        } else {
            Thinning::Stepped {
                step: 1,
                frames: limits.frames,
                kept: Vec::new(),
            }
        }
    }

    fn is_live(&self) -> bool {
        matches!(self, Thinning::Timed { .. })
    }

    fn wants(&self, index: u64, time: Duration) -> bool {
        match self {
            Thinning::Timed { next, .. } => time >= *next,
            Thinning::Stepped { step, .. } => index.is_multiple_of(*step),
        }
    }

    fn push(&mut self, index: u64, path: PathBuf) -> Result<()> {
        match self {
            Thinning::Timed {
                interval,
                next,
                kept,
                ..
            } => {
                *next += *interval;
                kept.push(path);
            }
            Thinning::Stepped { step, frames, kept } => {
                kept.push((index, path));
                if kept.len() >= 2 * *frames {
                    *step *= 2;
                    let (stay, go): (Vec<_>, Vec<_>) = std::mem::take(kept)
                        .into_iter()
                        .partition(|(i, _)| i.is_multiple_of(*step));
                    remove(go.iter().map(|(_, p)| p))?;
                    *kept = stay;
                }
            }
        }
        Ok(())
    }

    fn is_complete(&self) -> bool {
        match self {
            Thinning::Timed { frames, kept, .. } => kept.len() >= *frames,
            Thinning::Stepped { .. } => false,
        }
    }

    /// The kept files; a finite stream's are cut down to the wanted number, evenly spaced.
    fn finish(self) -> Result<Vec<PathBuf>> {
        match self {
            Thinning::Timed { kept, .. } => Ok(kept),
            Thinning::Stepped { frames, kept, .. } => {
                let n = kept.len();
                let chosen: Vec<usize> = if n <= frames {
                    (0..n).collect()
                } else {
                    (0..frames).map(|k| k * n / frames).collect()
                };
                let mut files = Vec::with_capacity(chosen.len());
                let mut dropped = Vec::new();
                for (k, (_, path)) in kept.into_iter().enumerate() {
                    if chosen.binary_search(&k).is_ok() {
                        files.push(path);
                    } else {
                        dropped.push(path);
                    }
                }
                remove(dropped.iter())?;
                Ok(files)
            }
        }
    }
}

fn remove<'a>(paths: impl Iterator<Item = &'a PathBuf>) -> Result<()> {
    for path in paths {
        std::fs::remove_file(path).with_context(|| format!("removing {}", path.display()))?;
    }
    Ok(())
}
