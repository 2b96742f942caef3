//! Data: MATLAB-compatible resizing, image and video sources, recording footage from any
//! GStreamer source, the unpaired training loader, paired benchmark sets and blind synthetic
//! degradations.
//!
//! The two training domains are never paired: real LR patches (footage, degraded stills) and HR
//! patches (clean photos) are drawn independently. The synthetic LR of an HR patch is its
//! MATLAB-bicubic downscale, which is what G_s2r translates into the real domain.

mod blind;
mod capture;
mod imresize;
mod loader;
mod paired;
mod source;

use std::fmt;
use std::path::PathBuf;

use anyhow::{ensure, Result};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::degrade::Preset;

pub use blind::blind_degrade;
pub use capture::{record, CaptureLimits, Recording, FIRST_FRAME_TIMEOUT, LIVE_FRAME_INTERVAL};
pub use imresize::{downscale_taps, imresize, imresize_to};
pub use loader::{Loader, TrainingData, UnpairedBatch};
pub(crate) use paired::shifted_overlap;
pub use paired::{PairedItem, PairedSet};
pub use source::{
    decode_video, is_image_file, is_jpeg, list_images, load_image, load_rgb8,
    load_rgb8_for_training, named_images, save_png, FrameRange, Rgb8, StreamSource,
};
pub(crate) use source::{i420_planes, make_element, run_to_appsink};

/// The `[data]` options of a training run.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DataOptions {
    /// Folders (searched recursively) or files of clean HR stills.
    pub hr: Vec<PathBuf>,
    /// Real LR sources: videos, image folders or image files, each optionally with a frame
    /// range (for folders, the range indexes the sorted file list).
    pub real_lr: Vec<SourceSpec>,
    /// Side of LR patches (real and synthetic); HR patches are `lr_patch * scale`. Default 120
    /// (the paper's 480² HR / 120² LR sub-images).
    #[serde(default = "default_lr_patch")]
    pub lr_patch: i64,
    /// Patches per domain in a batch. Default 32.
    #[serde(default = "default_batch")]
    pub batch: i64,
    /// Super-resolution factor. Default 4.
    #[serde(default = "default_scale")]
    pub scale: i64,
    /// Halve HR JPEGs with `imresize` when loading, washing out their blocking (DATA.md).
    /// Default true. Not applied in paired mode, where it would break the pixel correspondence.
    #[serde(default = "default_jpeg_downscale")]
    pub jpeg_downscale: bool,
    /// Also flip and transpose the patches whose degradation is given rather than made here:
    /// real LR patches and the paired oracle's LR/HR crops. The paper augments everything, but a
    /// degradation with a direction or a pixel grid (motion blur, a shift, codec blocks) is then
    /// learned in eight orientations although one camera has one. HR patches of the synthetic
    /// path are always augmented. Default true (the paper).
    #[serde(default = "default_augment_degraded")]
    pub augment_degraded: bool,
    /// Background threads making batches (also decoding files at start-up); 0 makes batches
    /// on the caller's thread. Default 2.
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// Batches made ahead of the one being consumed. Default 4.
    #[serde(default = "default_prefetch")]
    pub prefetch: usize,
    /// Only for the 'paired' oracle mode: an LR folder whose files pair by name with the `hr`
    /// images; each batch then also carries the true LR patch of each HR crop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paired_lr: Option<PathBuf>,
    /// Only for the 'paired' oracle mode, instead of `paired_lr`: degrade each HR crop afresh
    /// with this `train degrade` preset (new blur, noise and compression drawn for every
    /// patch), so the oracle sees the degradation's whole distribution rather than one draw per
    /// photo. The pairs are aligned: the preset's shift is left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paired_preset: Option<Preset>,
}

fn default_lr_patch() -> i64 {
    120
}
fn default_batch() -> i64 {
    32
}
fn default_scale() -> i64 {
    4
}
fn default_jpeg_downscale() -> bool {
    true
}
fn default_augment_degraded() -> bool {
    true
}
fn default_workers() -> usize {
    2
}
fn default_prefetch() -> usize {
    4
}

impl Default for DataOptions {
    /// The defaults of every option, with no sources.
    fn default() -> Self {
        DataOptions {
            hr: Vec::new(),
            real_lr: Vec::new(),
            lr_patch: default_lr_patch(),
            batch: default_batch(),
            scale: default_scale(),
            jpeg_downscale: default_jpeg_downscale(),
            augment_degraded: default_augment_degraded(),
            workers: default_workers(),
            prefetch: default_prefetch(),
            paired_lr: None,
            paired_preset: None,
        }
    }
}

impl DataOptions {
    /// Checks the numeric options; sources are checked when loaded.
    pub fn validate(&self) -> Result<()> {
        ensure!(
            self.lr_patch >= 1,
            "data.lr_patch must be positive, got {}",
            self.lr_patch
        );
        ensure!(
            self.batch >= 1,
            "data.batch must be positive, got {}",
            self.batch
        );
        ensure!(
            self.scale >= 1,
            "data.scale must be positive, got {}",
            self.scale
        );
        ensure!(
            self.paired_lr.is_none() || self.paired_preset.is_none(),
            "data.paired_lr and data.paired_preset are two sources of the oracle's LR: set one"
        );
        for spec in &self.real_lr {
            spec.range()
                .validate()
                .map_err(|e| anyhow::anyhow!("data.real_lr source {}: {e}", spec.path.display()))?;
        }
        Ok(())
    }
}

/// A real-LR source: a video, an image folder or an image file, with the frames to use.
/// In a TOML file either a plain path string or a table
/// `{ path = "...", start_frame = 0, end_frame = 600, step = 2, lossless = false, codec = "jpeg" }`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SourceSpec {
    pub path: PathBuf,
    /// First frame (0-based). Default 0.
    pub start_frame: u64,
    /// One past the last frame; none = to the end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_frame: Option<u64>,
    /// Keep every `step`-th frame from `start_frame`. Default 1.
    pub step: u64,
    /// The footage was never lossily compressed (e.g. PNG frames of a simulated camera), so
    /// the explicit G_s2r adds no compression for it. Default false: video and camera JPEGs
    /// are compressed.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub lossless: bool,
    /// The codec the footage went through, which the explicit G_s2r imitates. Default
    /// `"jpeg"`; not allowed with `lossless`.
    #[serde(skip_serializing_if = "FootageCodec::is_jpeg")]
    pub codec: FootageCodec,
}

/// `codec` of a real-LR source: how compressed footage was compressed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FootageCodec {
    /// JPEG, or a codec of 8-px DCT blocks like it (MJPEG, MPEG-2, DV).
    #[default]
    Jpeg,
    /// H.264 (AVC): 4- and 16-px transform blocks, an in-loop deblocking filter.
    H264,
}

impl FootageCodec {
    fn is_jpeg(&self) -> bool {
        *self == FootageCodec::Jpeg
    }
}

impl SourceSpec {
    pub fn range(&self) -> FrameRange {
        FrameRange {
            start: self.start_frame,
            end: self.end_frame,
            step: self.step,
        }
    }
}

impl From<PathBuf> for SourceSpec {
    /// Every frame of `path`.
    fn from(path: PathBuf) -> Self {
        SourceSpec {
            path,
            start_frame: 0,
            end_frame: None,
            step: 1,
            lossless: false,
            codec: FootageCodec::Jpeg,
        }
    }
}

/// The table form, with its own field checks and defaults.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceTable {
    path: PathBuf,
    #[serde(default)]
    start_frame: u64,
    #[serde(default)]
    end_frame: Option<u64>,
    #[serde(default = "default_step")]
    step: u64,
    #[serde(default)]
    lossless: bool,
    #[serde(default)]
    codec: Option<FootageCodec>,
}

fn default_step() -> u64 {
    1
}

impl<'de> Deserialize<'de> for SourceSpec {
    // Hand-written rather than `#[serde(untagged)]`, which would replace a table's precise
    // error (e.g. an unknown field) with "did not match any variant".
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SpecVisitor;
        impl<'de> Visitor<'de> for SpecVisitor {
            type Value = SourceSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a path or a table { path, start_frame, end_frame, step, lossless, codec }",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<SourceSpec, E> {
                Ok(SourceSpec::from(PathBuf::from(v)))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<SourceSpec, A::Error> {
                let t = SourceTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                if t.lossless && t.codec.is_some() {
                    return Err(de::Error::custom(format!(
                        "real LR source {}: `lossless` footage went through no codec; give `lossless` or `codec`, not both",
                        t.path.display()
                    )));
                }
                Ok(SourceSpec {
                    path: t.path,
                    start_frame: t.start_frame,
                    end_frame: t.end_frame,
                    step: t.step,
                    lossless: t.lossless,
                    codec: t.codec.unwrap_or_default(),
                })
            }
        }
        deserializer.deserialize_any(SpecVisitor)
    }
}
