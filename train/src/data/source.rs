//! Reading images and video frames into memory.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, ensure, Context, Result};
use gst::prelude::*;
use gstcyclesr::model::color::{upsample_chroma, YuvEncoding};
use tch::{Kind, Tensor};

use super::imresize::imresize;

/// File extensions listed as images (when the `image` crate is built with their decoder).
const IMAGE_EXTENSIONS: [&str; 5] = ["png", "jpg", "jpeg", "bmp", "webp"];

/// An 8-bit RGB image, rows of interleaved R, G, B. Decoded images are kept in this form: a
/// quarter of the memory of float tensors, and plain data that worker threads can share.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rgb8 {
    pub height: usize,
    pub width: usize,
    pub data: Vec<u8>,
}

impl Rgb8 {
    /// `[3, H, W]` float tensor in [0, 1].
    pub fn to_tensor(&self) -> Tensor {
        self.crop_tensor(0, 0, self.height, self.width)
    }

    /// `[3, h, w]` float tensor in [0, 1] of the window at (y, x); the caller keeps it inside.
    pub(crate) fn crop_tensor(&self, y: usize, x: usize, h: usize, w: usize) -> Tensor {
        let mut planar = vec![0f32; 3 * h * w];
        let (r, rest) = planar.split_at_mut(h * w);
        let (g, b) = rest.split_at_mut(h * w);
        for row in 0..h {
            let start = ((y + row) * self.width + x) * 3;
            let src = &self.data[start..start + w * 3];
            for (col, px) in src.chunks_exact(3).enumerate() {
                let i = row * w + col;
                r[i] = f32::from(px[0]) / 255.0;
                g[i] = f32::from(px[1]) / 255.0;
                b[i] = f32::from(px[2]) / 255.0;
            }
        }
        Tensor::from_slice(&planar).view([3, h as i64, w as i64])
    }

    /// Quantises a `[3, H, W]` tensor (values clamped to [0, 1], rounded to 8 bits).
    pub fn from_tensor(img: &Tensor) -> Result<Rgb8> {
        let size = img.size();
        ensure!(
            size.len() == 3 && size[0] == 3,
            "expected an RGB image [3, H, W], got shape {size:?}"
        );
        let hwc = (img.to_kind(Kind::Float).clamp(0.0, 1.0) * 255.0)
            .round()
            .to_kind(Kind::Uint8)
            .permute([1, 2, 0])
            .contiguous()
            .to_device(tch::Device::Cpu);
        let numel = hwc.numel();
        let mut data = vec![0u8; numel];
        hwc.f_copy_data(&mut data, numel)?;
        Ok(Rgb8 {
            height: size[1] as usize,
            width: size[2] as usize,
            data,
        })
    }
}

/// Decodes an image file (format from its content) to 8-bit RGB.
pub fn load_rgb8(path: &Path) -> Result<Rgb8> {
    let decoded = image::ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .map_err(anyhow::Error::from)
        .and_then(|r| r.decode().map_err(anyhow::Error::from))
        .with_context(|| format!("cannot read image {}", path.display()))?;
    let rgb = decoded.into_rgb8();
    Ok(Rgb8 {
        height: rgb.height() as usize,
        width: rgb.width() as usize,
        data: rgb.into_raw(),
    })
}

/// Decodes an image file to a `[3, H, W]` float tensor in [0, 1].
pub fn load_image(path: &Path) -> Result<Tensor> {
    Ok(load_rgb8(path)?.to_tensor())
}

/// Like [`load_rgb8`], and JPEGs are halved with [`imresize`] when `jpeg_downscale` is set:
/// photos saved as JPEG carry 8×8 blocking that an HR domain must not teach (DIV2K did the same).
pub fn load_rgb8_for_training(path: &Path, jpeg_downscale: bool) -> Result<Rgb8> {
    let img = load_rgb8(path)?;
    if jpeg_downscale && is_jpeg(path) {
        Rgb8::from_tensor(&imresize(&img.to_tensor(), 0.5))
            .with_context(|| format!("downscaling {}", path.display()))
    } else {
        Ok(img)
    }
}

/// Writes a `[3, H, W]` tensor in [0, 1] as an 8-bit PNG, atomically.
pub fn save_png(img: &Tensor, path: &Path) -> Result<()> {
    use image::ImageEncoder;
    let rgb = Rgb8::from_tensor(img).with_context(|| format!("writing {}", path.display()))?;
    let mut bytes = Vec::new();
    image::codecs::png::PngEncoder::new(&mut bytes)
        .write_image(
            &rgb.data,
            rgb.width as u32,
            rgb.height as u32,
            image::ExtendedColorType::Rgb8,
        )
        .with_context(|| format!("encoding {}", path.display()))?;
    gstcyclesr::model::checkpoint::write_atomically(path, &bytes)
}

pub fn is_jpeg(path: &Path) -> bool {
    extension(path).is_some_and(|e| e == "jpg" || e == "jpeg")
}

fn extension(path: &Path) -> Option<String> {
    path.extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
}

/// Whether the file name looks like an image this build can decode.
pub fn is_image_file(path: &Path) -> bool {
    extension(path).is_some_and(|e| {
        IMAGE_EXTENSIONS.contains(&e.as_str())
            && image::ImageFormat::from_extension(&e).is_some_and(|f| f.reading_enabled())
    })
}

/// Image files under `root` (recursively, symlinks followed once), sorted by path; `root`
/// itself when it is an image file. Errors name `root` when it cannot be read.
pub fn list_images(root: &Path) -> Result<Vec<PathBuf>> {
    let meta =
        std::fs::metadata(root).with_context(|| format!("cannot access {}", root.display()))?;
    if meta.is_file() {
        ensure!(
            is_image_file(root),
            "{} is not an image file ({} supported)",
            root.display(),
            supported_extensions()
        );
        return Ok(vec![root.to_path_buf()]);
    }
    let mut found = Vec::new();
    let mut visited = HashSet::new();
    walk(root, &mut found, &mut visited)?;
    found.sort();
    Ok(found)
}

fn walk(dir: &Path, found: &mut Vec<PathBuf>, visited: &mut HashSet<PathBuf>) -> Result<()> {
    // Canonical paths guard against symlink cycles.
    let canonical = dir
        .canonicalize()
        .with_context(|| format!("cannot access {}", dir.display()))?;
    if !visited.insert(canonical) {
        return Ok(());
    }
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    for entry in entries {
        let path = entry
            .with_context(|| format!("cannot list {}", dir.display()))?
            .path();
        if path.is_dir() {
            walk(&path, found, visited)?;
        } else if is_image_file(&path) {
            found.push(path);
        }
    }
    Ok(())
}

fn supported_extensions() -> String {
    IMAGE_EXTENSIONS
        .iter()
        .filter(|e| image::ImageFormat::from_extension(e).is_some_and(|f| f.reading_enabled()))
        .copied()
        .collect::<Vec<_>>()
        .join(", ")
}

/// The images under `root` keyed by name: the path relative to `root` without its extension,
/// folders joined with `_` (so names are valid file names; `a/b.jpg` → `a_b`). A lone file is
/// named by its stem. Two files with one name (`x.png` and `x.jpg`) are an error naming both.
pub fn named_images(root: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let mut named = BTreeMap::new();
    for path in list_images(root)? {
        let relative = path.strip_prefix(root).unwrap_or(&path);
        let relative = if relative.as_os_str().is_empty() {
            Path::new(path.file_name().unwrap_or_default())
        } else {
            relative
        };
        let name = relative
            .with_extension("")
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("_");
        if let Some(previous) = named.insert(name.clone(), path.clone()) {
            bail!(
                "{} and {} both have the name '{name}'",
                previous.display(),
                path.display()
            );
        }
    }
    Ok(named)
}

/// Which frames of a sequence to keep: indices `start, start+step, ...` below `end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameRange {
    pub start: u64,
    pub end: Option<u64>,
    pub step: u64,
}

impl FrameRange {
    pub const ALL: FrameRange = FrameRange {
        start: 0,
        end: None,
        step: 1,
    };

    pub fn validate(&self) -> Result<()> {
        ensure!(self.step >= 1, "frame step must be at least 1, got 0");
        if let Some(end) = self.end {
            ensure!(
                end > self.start,
                "end frame {end} must be after start frame {}",
                self.start
            );
        }
        Ok(())
    }

    pub fn contains(&self, index: u64) -> bool {
        index >= self.start
            && self.end.is_none_or(|end| index < end)
            && (index - self.start).is_multiple_of(self.step)
    }

    /// No index at or after `index` can be kept.
    fn is_past(&self, index: u64) -> bool {
        self.end.is_some_and(|end| index >= end)
    }
}

/// Decodes the frames of `range` from any video file GStreamer can play
/// (`filesrc ! decodebin ! videoconvert ! RGB appsink`). Fails, naming the file and GStreamer's
/// message, if it cannot be decoded (missing plugin, not a video, corrupt).
pub fn decode_video(path: &Path, range: FrameRange) -> Result<Vec<Rgb8>> {
    range.validate()?;
    decode_video_inner(path, range)
        .with_context(|| format!("cannot decode video {}", path.display()))
}

fn decode_video_inner(path: &Path, range: FrameRange) -> Result<Vec<Rgb8>> {
    ensure!(path.is_file(), "no such file");
    let (pipeline, sink) = decoding_pipeline(&StreamSource::File(path.to_path_buf()))?;
    let mut frames = Vec::new();
    let mut index = 0u64;
    run_to_appsink(&pipeline, &sink, |sample| {
        if range.contains(index) {
            frames.push(sample_to_rgb8(sample)?);
        }
        index += 1;
        Ok(!range.is_past(index))
    })?;
    ensure!(index > 0, "the file holds no video frames");
    Ok(frames)
}

/// Where a video stream comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamSource {
    /// A file GStreamer can demux and decode.
    File(PathBuf),
    /// Any URI `uridecodebin` opens: `file://`, `rtsp://`, `http://`, ...
    Uri(String),
    /// A `gst-launch-1.0` description of a source, e.g. `v4l2src device=/dev/video0`; its
    /// output is decoded if it is not raw video.
    Description(String),
}

/// `SOURCE ! decodebin ! videoconvert ! appsink` (RGB or I420), the first video stream linked
/// once the decoder has found it; `uridecodebin` for a URI.
pub(crate) fn decoding_pipeline(
    source: &StreamSource,
) -> Result<(gst::Pipeline, gst_app::AppSink)> {
    gst::init()?;
    let pipeline = gst::Pipeline::new();
    let decode = match source {
        StreamSource::File(path) => {
            let location = path
                .to_str()
                .ok_or_else(|| anyhow!("path is not valid UTF-8"))?;
            let src = make_element("filesrc")?;
            src.set_property("location", location);
            let decode = make_element("decodebin")?;
            pipeline.add_many([&src, &decode])?;
            src.link(&decode)?;
            decode
        }
        StreamSource::Uri(uri) => {
            let decode = make_element("uridecodebin")?;
            decode.set_property("uri", uri);
            pipeline.add(&decode)?;
            decode
        }
        StreamSource::Description(description) => {
            // The queue decouples a live source's thread from decoding, and lets the
            // description end in caps (`v4l2src ! image/jpeg,width=1280`).
            let src = gst::parse::bin_from_description(&format!("{description} ! queue"), true)
                .with_context(|| format!("'{description}' is not a GStreamer source"))?;
            let decode = make_element("decodebin")?;
            pipeline.add_many([src.upcast_ref(), &decode])?;
            src.link(&decode)
                .with_context(|| format!("'{description}' has no output to decode"))?;
            decode
        }
    };
    let convert = make_element("videoconvert")?;
    let sink = rgb_or_i420_appsink();
    pipeline.add_many([&convert, sink.upcast_ref()])?;
    gst::Element::link_many([&convert, sink.upcast_ref()])?;
    let convert_weak = convert.downgrade();
    // The decoder exposes its pads once it has found the streams: link the first video one.
    decode.connect_pad_added(move |_, pad| {
        let Some(convert) = convert_weak.upgrade() else {
            return;
        };
        let Some(sink_pad) = convert.static_pad("sink") else {
            return;
        };
        let is_video = pad
            .current_caps()
            .and_then(|caps| caps.structure(0).map(|s| s.name().starts_with("video/")))
            .unwrap_or(false);
        if is_video && !sink_pad.is_linked() {
            // A failure here surfaces as a not-linked error on the bus.
            let _ = pad.link(&sink_pad);
        }
    });
    Ok((pipeline, sink))
}

pub(crate) fn make_element(factory: &str) -> Result<gst::Element> {
    gst::ElementFactory::make(factory)
        .build()
        .with_context(|| format!("GStreamer element '{factory}' is not available"))
}

/// An appsink taking RGB or I420, whichever needs no conversion upstream. YUV frames are
/// converted here rather than by `videoconvert`, whose 8-bit YUV→RGB path darkens by about two
/// codes; most decoders output I420.
pub(crate) fn rgb_or_i420_appsink() -> gst_app::AppSink {
    gst_app::AppSink::builder()
        .caps(
            &gst_video::VideoCapsBuilder::new()
                .format_list([gst_video::VideoFormat::I420, gst_video::VideoFormat::Rgb])
                .build(),
        )
        .sync(false)
        .build()
}

/// Plays `pipeline` and hands each sample reaching `sink` to `on_sample` until it returns
/// false or the stream ends; errors carry the bus's message. The pipeline is stopped on return.
pub(crate) fn run_to_appsink(
    pipeline: &gst::Pipeline,
    sink: &gst_app::AppSink,
    mut on_sample: impl FnMut(&gst::Sample) -> Result<bool>,
) -> Result<()> {
    let result = (|| -> Result<()> {
        if pipeline.set_state(gst::State::Playing).is_err() {
            return Err(
                bus_error(pipeline).unwrap_or_else(|| anyhow!("the pipeline did not start"))
            );
        }
        loop {
            // Polling with a timeout: after a streaming error the sink never sees EOS.
            if let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_mseconds(100)) {
                if !on_sample(&sample)? {
                    return Ok(());
                }
            } else if let Some(error) = bus_error(pipeline) {
                return Err(error);
            } else if sink.is_eos() {
                return Ok(());
            }
        }
    })();
    let _ = pipeline.set_state(gst::State::Null);
    result
}

pub(crate) fn bus_error(pipeline: &gst::Pipeline) -> Option<anyhow::Error> {
    let message = pipeline.bus()?.pop_filtered(&[gst::MessageType::Error])?;
    match message.view() {
        gst::MessageView::Error(err) => {
            let source = err
                .src()
                .map(|s| s.path_string().to_string())
                .unwrap_or_default();
            let debug = err.debug().map(|d| format!(" ({d})")).unwrap_or_default();
            Some(anyhow!("{source}: {}{debug}", err.error()))
        }
        _ => None,
    }
}

/// An RGB frame from a sample in RGB or I420 (see [`rgb_or_i420_appsink`]).
pub(crate) fn sample_to_rgb8(sample: &gst::Sample) -> Result<Rgb8> {
    let info = sample_info(sample)?;
    if info.format() == gst_video::VideoFormat::I420 {
        let [y, cb, cr] = i420_planes(sample)?;
        let (h, w) = (i64::from(info.height()), i64::from(info.width()));
        let rgb = YuvEncoding::from_video_info(&info)?.to_rgb(
            &y,
            &upsample_chroma(&cb, h, w),
            &upsample_chroma(&cr, h, w),
        );
        return Rgb8::from_tensor(&rgb);
    }
    let buffer = sample.buffer().context("sample without buffer")?;
    let map = buffer.map_readable().context("mapping a frame")?;
    let (width, height) = (info.width() as usize, info.height() as usize);
    let (offset, stride) = (info.offset()[0], info.stride()[0] as usize);
    // RGB rows are padded to 4 bytes: copy row by row.
    let mut data = Vec::with_capacity(width * height * 3);
    for row in 0..height {
        let start = offset + row * stride;
        let line = map
            .get(start..start + width * 3)
            .context("frame buffer smaller than its caps")?;
        data.extend_from_slice(line);
    }
    Ok(Rgb8 {
        height,
        width,
        data,
    })
}

fn sample_info(sample: &gst::Sample) -> Result<gst_video::VideoInfo> {
    let caps = sample.caps().context("frame without caps")?;
    gst_video::VideoInfo::from_caps(caps).context("frame caps")
}

/// Y, Cb and Cr code values (float `[rows, cols]`, chroma at half resolution rounded up) of an
/// I420 sample.
pub(crate) fn i420_planes(sample: &gst::Sample) -> Result<[Tensor; 3]> {
    let info = sample_info(sample)?;
    ensure!(
        info.format() == gst_video::VideoFormat::I420,
        "expected an I420 frame, got {:?}",
        info.format()
    );
    let buffer = sample.buffer().context("sample without buffer")?;
    let map = buffer.map_readable().context("mapping a frame")?;
    let (height, width) = (info.height() as usize, info.width() as usize);
    let plane = |p: usize| -> Result<Tensor> {
        let (rows, cols) = if p == 0 {
            (height, width)
        } else {
            (height.div_ceil(2), width.div_ceil(2))
        };
        let (offset, stride) = (info.offset()[p], info.stride()[p] as usize);
        let mut values = Vec::with_capacity(rows * cols);
        for r in 0..rows {
            let start = offset + r * stride;
            let line = map
                .get(start..start + cols)
                .context("frame buffer smaller than its caps")?;
            values.extend_from_slice(line);
        }
        Ok(Tensor::from_slice(&values)
            .view([rows as i64, cols as i64])
            .to_kind(Kind::Float))
    };
    Ok([plane(0)?, plane(1)?, plane(2)?])
}
