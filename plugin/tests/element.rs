//! The `cyclesr` element: negotiation, pixels, timestamps and errors.

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};

use common::{init, noise_bytes, temp_dir, write_model, SMALL_SRRESNET};
use gst::prelude::*;
use gst_check::Harness;
use gst_video::{VideoFormat, VideoInfo};
use gstcyclesr::model::checkpoint::SrModel;
use gstcyclesr::model::color::{downsample_chroma, upsample_chroma, ChromaSiting, YuvEncoding};
use gstcyclesr::model::EmbeddedModel;
use gstcyclesr::EmbeddedModelSetting;
use tch::{Device, Kind, Tensor};

fn harness(model: &Path, format: VideoFormat, width: u32, height: u32) -> (Harness, VideoInfo) {
    harness_with(model, format, width, height, &[])
}

fn harness_with(
    model: &Path,
    format: VideoFormat,
    width: u32,
    height: u32,
    properties: &[(&str, u32)],
) -> (Harness, VideoInfo) {
    init();
    let mut element =
        gst::ElementFactory::make("cyclesr").property("model-location", model.to_str().unwrap());
    for (name, value) in properties {
        element = element.property(name, value);
    }
    let mut h = Harness::with_element(&element.build().unwrap(), Some("sink"), Some("src"));
    let info = VideoInfo::builder(format, width, height)
        .fps(gst::Fraction::new(25, 1))
        .build()
        .unwrap();
    h.set_src_caps(info.to_caps().unwrap());
    (h, info)
}

fn push_frame(h: &mut Harness, info: &VideoInfo, data: Vec<u8>, pts_ms: u64) -> gst::Buffer {
    push_only(h, info, data, pts_ms);
    h.pull().unwrap()
}

/// Pushes a frame (PTS `pts_ms`, 40 ms long) without pulling its output.
fn push_only(h: &mut Harness, info: &VideoInfo, data: Vec<u8>, pts_ms: u64) {
    let mut buffer = gst::Buffer::from_mut_slice(data);
    {
        let b = buffer.get_mut().unwrap();
        b.set_pts(gst::ClockTime::from_mseconds(pts_ms));
        b.set_duration(gst::ClockTime::from_mseconds(40));
    }
    gst_video::VideoMeta::add(
        buffer.get_mut().unwrap(),
        gst_video::VideoFrameFlags::empty(),
        info.format(),
        info.width(),
        info.height(),
    )
    .unwrap();
    assert_eq!(h.push(buffer), Ok(gst::FlowSuccess::Ok));
}

fn output_info(h: &Harness) -> VideoInfo {
    VideoInfo::from_caps(&h.sinkpad().unwrap().current_caps().unwrap()).unwrap()
}

/// Plane `index` of a frame as rows of its visible bytes.
fn plane_rows(
    buffer: &gst::Buffer,
    info: &VideoInfo,
    index: usize,
    rows: usize,
    row_bytes: usize,
) -> Vec<u8> {
    let map = buffer.map_readable().unwrap();
    let (offset, stride) = (info.offset()[index], info.stride()[index] as usize);
    (0..rows)
        .flat_map(|r| map[offset + r * stride..offset + r * stride + row_bytes].to_vec())
        .collect()
}

#[test]
fn every_format_negotiates_and_scales_by_four() {
    let dir = temp_dir("formats");
    let model = write_model(&dir, SMALL_SRRESNET);
    for &format in gstcyclesr::FORMATS {
        for (w, h) in [(17, 9), (1, 1), (6, 4)] {
            let (mut harness, info) = harness(&model, format, w, h);
            let out = push_frame(&mut harness, &info, noise_bytes(info.size(), 3), 120);
            let out_info = output_info(&harness);
            assert_eq!(out_info.format(), format);
            assert_eq!(
                (out_info.width(), out_info.height()),
                (w * 4, h * 4),
                "{format:?}"
            );
            assert_eq!(out_info.fps(), gst::Fraction::new(25, 1));
            assert!(
                out.size() >= out_info.size(),
                "{format:?}: {} bytes",
                out.size()
            );
            assert_eq!(out.pts(), Some(gst::ClockTime::from_mseconds(120)));
            assert_eq!(out.duration(), Some(gst::ClockTime::from_mseconds(40)));
        }
    }
}

fn direct_forward(model: &Path, rgb: &Tensor) -> Tensor {
    let model = SrModel::load(model, Device::Cpu).unwrap();
    (model.upscale(rgb).clamp(0.0, 1.0) * 255.0).round()
}

fn assert_within_one(got: &[u8], expected: &Tensor, what: &str) {
    let expected: Vec<f32> = Vec::try_from(expected.flatten(0, -1)).unwrap();
    assert_eq!(got.len(), expected.len(), "{what}");
    let worst = got
        .iter()
        .zip(&expected)
        .map(|(&g, &e)| (g as f32 - e).abs())
        .fold(0.0f32, f32::max);
    assert!(worst <= 1.0, "{what}: worst difference {worst} code values");
}

/// Packed RGB formats give exactly what a direct tch forward pass gives (within 1/255).
#[test]
fn packed_output_equals_direct_forward() {
    let dir = temp_dir("packed");
    let model = write_model(&dir, SMALL_SRRESNET);
    let (w, h) = (13usize, 7usize);
    let rgb_bytes = noise_bytes(w * h * 3, 11);
    let rgb = Tensor::from_slice(&rgb_bytes)
        .view([h as i64, w as i64, 3])
        .permute([2, 0, 1])
        .unsqueeze(0)
        .to_kind(Kind::Float)
        / 255.0;
    let expected = direct_forward(&model, &rgb)
        .squeeze_dim(0)
        .permute([1, 2, 0]); // [H, W, 3]
    let alpha: Vec<u8> = noise_bytes(w * h, 12);

    for format in [
        VideoFormat::Rgb,
        VideoFormat::Bgr,
        VideoFormat::Bgrx,
        VideoFormat::Rgba,
        VideoFormat::Bgra,
    ] {
        let (mut harness, info) = harness(&model, format, w as u32, h as u32);
        let finfo = gst_video::VideoFormatInfo::from_format(format);
        let bpp = finfo.pixel_stride()[0] as usize;
        let offsets: Vec<usize> = (0..3).map(|c| finfo.poffset()[c] as usize).collect();
        let mut data = vec![0u8; info.size()];
        for y in 0..h {
            for x in 0..w {
                let px = y * info.stride()[0] as usize + x * bpp;
                for c in 0..3 {
                    data[px + offsets[c]] = rgb_bytes[(y * w + x) * 3 + c];
                }
                if finfo.has_alpha() {
                    data[px + finfo.poffset()[3] as usize] = alpha[y * w + x];
                }
            }
        }
        let out = push_frame(&mut harness, &info, data, 0);
        let out_info = output_info(&harness);
        let rows = plane_rows(&out, &out_info, 0, h * 4, w * 4 * bpp);
        let got: Vec<u8> = rows
            .chunks(bpp)
            .flat_map(|px| offsets.iter().map(|&o| px[o]).collect::<Vec<_>>())
            .collect();
        assert_within_one(&got, &expected, &format!("{format:?}"));
        if finfo.has_alpha() {
            // Alpha is carried through: upscaled bicubically, not dropped.
            let a = Tensor::from_slice(&alpha)
                .view([1, 1, h as i64, w as i64])
                .to_kind(Kind::Float)
                / 255.0;
            let a = (a
                .upsample_bicubic2d([h as i64 * 4, w as i64 * 4], false, None, None)
                .clamp(0.0, 1.0)
                * 255.0)
                .round();
            let got: Vec<u8> = rows
                .chunks(bpp)
                .map(|px| px[finfo.poffset()[3] as usize])
                .collect();
            assert_within_one(&got, &a, &format!("{format:?} alpha"));
        }
    }
}

type ChromaResampler = Box<dyn Fn(&Tensor, i64, i64) -> Tensor>;
type ChromaDownsampler = Box<dyn Fn(&Tensor) -> Tensor>;

/// I420 and NV12: the planes are converted with the caps' colorimetry and chroma siting, run
/// through the network and converted back.
#[test]
fn yuv_output_equals_direct_forward() {
    init();
    let dir = temp_dir("yuv");
    let model = write_model(&dir, SMALL_SRRESNET);
    // Without chroma-site, SD caps mean centred chroma: the reference is then the plain
    // bilinear resampling of `color`.
    yuv_output_equals_direct_forward_with(&model, None);
    yuv_output_equals_direct_forward_with(&model, Some(gst_video::VideoChromaSite::MPEG2));
    yuv_output_equals_direct_forward_with(&model, Some(gst_video::VideoChromaSite::COSITED));
}

fn yuv_output_equals_direct_forward_with(model: &Path, site: Option<gst_video::VideoChromaSite>) {
    let (w, h) = (10i64, 6i64);
    let y = noise_bytes((w * h) as usize, 21);
    let u = noise_bytes((w * h / 4) as usize, 22);
    let v = noise_bytes((w * h / 4) as usize, 23);
    let plane = |b: &[u8], rows, cols| {
        Tensor::from_slice(b)
            .view([rows, cols])
            .to_kind(Kind::Float)
    };
    let enc = YuvEncoding::BT601_LIMITED; // SD caps without colorimetry: GStreamer's default
    let (up, down): (ChromaResampler, ChromaDownsampler) = match site {
        None => (Box::new(upsample_chroma), Box::new(downsample_chroma)),
        Some(site) => {
            let siting = ChromaSiting {
                h_cosited: site.contains(gst_video::VideoChromaSite::H_COSITED),
                v_cosited: site.contains(gst_video::VideoChromaSite::V_COSITED),
            };
            (
                Box::new(move |p, h, w| siting.upsample(p, h, w)),
                Box::new(move |p| siting.downsample(p)),
            )
        }
    };
    let rgb = enc
        .to_rgb(
            &plane(&y, h, w),
            &up(&plane(&u, h / 2, w / 2), h, w),
            &up(&plane(&v, h / 2, w / 2), h, w),
        )
        .clamp(0.0, 1.0)
        .unsqueeze(0);
    let sr = direct_forward(model, &rgb) / 255.0;
    let (ey, eu, ev) = enc.from_rgb(&sr.squeeze_dim(0));
    let (eu, ev) = (down(&eu).round(), down(&ev).round());
    let ey = ey.round();

    for format in [VideoFormat::I420, VideoFormat::Nv12] {
        let mut builder =
            VideoInfo::builder(format, w as u32, h as u32).fps(gst::Fraction::new(25, 1));
        if let Some(site) = site {
            builder = builder.chroma_site(site);
        }
        let info = builder.build().unwrap();
        let mut harness = queued_harness(model, &info, 1, false);
        let mut data = vec![0u8; info.size()];
        let (ws, hs) = (w as usize, h as usize);
        for r in 0..hs {
            let o = info.offset()[0] + r * info.stride()[0] as usize;
            data[o..o + ws].copy_from_slice(&y[r * ws..(r + 1) * ws]);
        }
        for r in 0..hs / 2 {
            for c in 0..ws / 2 {
                let (uu, vv) = (u[r * ws / 2 + c], v[r * ws / 2 + c]);
                if format == VideoFormat::I420 {
                    data[info.offset()[1] + r * info.stride()[1] as usize + c] = uu;
                    data[info.offset()[2] + r * info.stride()[2] as usize + c] = vv;
                } else {
                    let o = info.offset()[1] + r * info.stride()[1] as usize + 2 * c;
                    data[o] = uu;
                    data[o + 1] = vv;
                }
            }
        }
        let out = push_frame(&mut harness, &info, data, 0);
        let oi = output_info(&harness);
        let (ow, oh) = (ws * 4, hs * 4);
        assert_within_one(
            &plane_rows(&out, &oi, 0, oh, ow),
            &ey,
            &format!("{format:?} {site:?} Y"),
        );
        if format == VideoFormat::I420 {
            assert_within_one(
                &plane_rows(&out, &oi, 1, oh / 2, ow / 2),
                &eu,
                &format!("I420 {site:?} U"),
            );
            assert_within_one(
                &plane_rows(&out, &oi, 2, oh / 2, ow / 2),
                &ev,
                &format!("I420 {site:?} V"),
            );
        } else {
            let uv = plane_rows(&out, &oi, 1, oh / 2, ow);
            let got_u: Vec<u8> = uv.iter().step_by(2).copied().collect();
            let got_v: Vec<u8> = uv.iter().skip(1).step_by(2).copied().collect();
            assert_within_one(&got_u, &eu, &format!("NV12 {site:?} U"));
            assert_within_one(&got_v, &ev, &format!("NV12 {site:?} V"));
        }
    }
}

/// Samples of a Y'CbCr format, whatever its layout: plane, row and index in the row.
struct Samples<'a> {
    info: &'a VideoInfo,
    ten_bits: bool,
}

impl Samples<'_> {
    /// Where sample `index` of `component` (0 = Y, 1 = U, 2 = V) of row `row` lives, as
    /// (plane, index of the sample in its plane's row).
    fn place(&self, component: usize, index: usize) -> (usize, usize) {
        match (self.info.format(), component) {
            (VideoFormat::Yuy2, 0) => (0, index / 2 * 4 + index % 2 * 2),
            (VideoFormat::Yuy2, c) => (0, index * 4 + if c == 1 { 1 } else { 3 }),
            (VideoFormat::P01010le, 0) => (0, index),
            (VideoFormat::P01010le, c) => (1, index * 2 + c - 1),
            (_, c) => (c, index),
        }
    }

    fn offset(&self, component: usize, row: usize, index: usize) -> usize {
        let (plane, at) = self.place(component, index);
        let bytes = if self.ten_bits { 2 } else { 1 };
        self.info.offset()[plane] + row * self.info.stride()[plane] as usize + at * bytes
    }

    fn put(&self, data: &mut [u8], component: usize, row: usize, index: usize, value: u16) {
        let o = self.offset(component, row, index);
        match self.info.format() {
            VideoFormat::I42010le => data[o..o + 2].copy_from_slice(&value.to_le_bytes()),
            VideoFormat::P01010le => data[o..o + 2].copy_from_slice(&(value << 6).to_le_bytes()),
            _ => data[o] = value as u8,
        }
    }

    fn get(&self, data: &[u8], component: usize, row: usize, index: usize) -> u16 {
        let o = self.offset(component, row, index);
        let word = || u16::from_le_bytes([data[o], data[o + 1]]);
        match self.info.format() {
            VideoFormat::I42010le => word(),
            VideoFormat::P01010le => word() >> 6,
            _ => data[o] as u16,
        }
    }
}

/// Y444, YUY2, I420_10LE and P010_10LE give what the documented conversion and a direct
/// forward pass give, within one code value at the format's own depth: 10-bit samples are not
/// rounded to 8 bits on the way.
#[test]
fn more_yuv_formats_equal_direct_forward() {
    init();
    let dir = temp_dir("yuv-more");
    let model_path = write_model(&dir, SMALL_SRRESNET);
    let model = SrModel::load(&model_path, Device::Cpu).unwrap();
    let (w, h) = (10usize, 6usize);
    for format in [
        VideoFormat::Y444,
        VideoFormat::Yuy2,
        VideoFormat::I42010le,
        VideoFormat::P01010le,
    ] {
        let info = VideoInfo::builder(format, w as u32, h as u32)
            .fps(gst::Fraction::new(25, 1))
            .build()
            .unwrap();
        let ten_bits = matches!(format, VideoFormat::I42010le | VideoFormat::P01010le);
        let (max, scale) = if ten_bits { (1023u16, 4.0) } else { (255, 1.0) };
        let (cw, ch) = match format {
            VideoFormat::Y444 => (w, h),
            VideoFormat::Yuy2 => (w / 2, h),
            _ => (w / 2, h / 2),
        };
        let samples = |len: usize, seed: u64| -> Vec<u16> {
            noise_bytes(len * 2, seed)
                .chunks(2)
                .map(|b| u16::from_le_bytes([b[0], b[1]]) % (max + 1))
                .collect()
        };
        let sizes = [(w, h), (cw, ch), (cw, ch)];
        let planes: Vec<Vec<u16>> = (0..3)
            .map(|c| samples(sizes[c].0 * sizes[c].1, 30 + c as u64))
            .collect();
        let layout = Samples {
            info: &info,
            ten_bits,
        };
        let mut data = vec![0u8; info.size()];
        for (c, plane) in planes.iter().enumerate() {
            let (pw, ph) = sizes[c];
            for r in 0..ph {
                for i in 0..pw {
                    layout.put(&mut data, c, r, i, plane[r * pw + i]);
                }
            }
        }

        // The reference: samples on the 8-bit scale, chroma resampled where it sits, RGB
        // through the network unrounded, and back.
        let encoding = YuvEncoding::from_video_info(&info).unwrap();
        let siting = ChromaSiting::from_video_info(&info);
        let tensor = |c: usize| {
            let (pw, ph) = sizes[c];
            let values: Vec<f32> = planes[c].iter().map(|&v| v as f32 / scale).collect();
            Tensor::from_slice(&values).view([ph as i64, pw as i64])
        };
        let (up, down): (ChromaResampler, ChromaDownsampler) = match format {
            VideoFormat::Y444 => (
                Box::new(|p, _, _| p.shallow_clone()),
                Box::new(|p| p.shallow_clone()),
            ),
            VideoFormat::Yuy2 => (
                Box::new(move |p, _, w| siting.upsample_width(p, w)),
                Box::new(move |p| siting.downsample_width(p)),
            ),
            _ => (
                Box::new(move |p, h, w| siting.upsample(p, h, w)),
                Box::new(move |p| siting.downsample(p)),
            ),
        };
        let (hi, wi) = (h as i64, w as i64);
        let rgb = encoding
            .to_rgb(&tensor(0), &up(&tensor(1), hi, wi), &up(&tensor(2), hi, wi))
            .clamp(0.0, 1.0)
            .unsqueeze(0);
        let sr = model.upscale(&rgb).clamp(0.0, 1.0).squeeze_dim(0);
        let (ey, eu, ev) = encoding.from_rgb(&sr);
        let expected =
            [ey, down(&eu), down(&ev)].map(|t| (t * scale as f64).round().clamp(0.0, max as f64));

        let mut harness = queued_harness(&model_path, &info, 1, false);
        let mut buffer = gst::Buffer::from_mut_slice(data);
        buffer.get_mut().unwrap().set_pts(gst::ClockTime::ZERO);
        assert_eq!(harness.push(buffer), Ok(gst::FlowSuccess::Ok));
        let out = harness.pull().unwrap();
        let out_info = output_info(&harness);
        assert_eq!(out_info.format(), format);
        let out_layout = Samples {
            info: &out_info,
            ten_bits,
        };
        let map = out.map_readable().unwrap();
        for (c, expected) in expected.iter().enumerate() {
            let (rows, cols) = (expected.size()[0] as usize, expected.size()[1] as usize);
            let expected: Vec<f32> = Vec::try_from(expected.flatten(0, -1)).unwrap();
            let worst = (0..rows * cols)
                .map(|k| (out_layout.get(&map, c, k / cols, k % cols) as f32 - expected[k]).abs())
                .fold(0.0f32, f32::max);
            assert!(
                worst <= 1.0,
                "{format:?} component {c}: worst difference {worst} code values"
            );
        }
    }
}

#[test]
fn tiled_element_output_matches_whole_frame() {
    let dir = temp_dir("tiled-element");
    let model = write_model(&dir, SMALL_SRRESNET);
    let frame = noise_bytes(
        VideoInfo::builder(VideoFormat::Rgb, 40, 24)
            .build()
            .unwrap()
            .size(),
        5,
    );
    let mut outputs = Vec::new();
    for tile_size in [0u32, 16] {
        let properties = [("tile-size", tile_size), ("tile-overlap", 12)];
        let (mut h, info) = harness_with(&model, VideoFormat::Rgb, 40, 24, &properties);
        let out = push_frame(&mut h, &info, frame.clone(), 0);
        outputs.push(out.map_readable().unwrap().to_vec());
    }
    let worst = outputs[0]
        .iter()
        .zip(&outputs[1])
        .map(|(a, b)| a.abs_diff(*b))
        .max()
        .unwrap();
    assert!(worst <= 1, "tiled vs whole frame: {worst} code values");
}

#[test]
fn scale_property_and_caps_follow_the_model() {
    init();
    let dir = temp_dir("caps");
    let model = write_model(
        &dir,
        gstcyclesr::model::arch::SrConfig {
            scale: 2,
            ..SMALL_SRRESNET
        },
    );
    let element = gst::ElementFactory::make("cyclesr")
        .property("model-location", model.to_str().unwrap())
        .build()
        .unwrap();
    assert_eq!(element.property::<i32>("scale"), 2);
    // Unlinked: the source pad offers the template caps scaled, in steps of the scale.
    let caps = element.static_pad("src").unwrap().query_caps(None);
    let s = caps.structure(0).unwrap();
    let width = s.get::<gst::IntRange<i32>>("width").unwrap();
    assert_eq!((width.min(), width.step()), (2, 2));
    // And the reverse direction only accepts multiples of the scale.
    let mut h = Harness::with_element(&element, Some("sink"), Some("src"));
    h.set_sink_caps_str("video/x-raw,format=RGB,width=34,height=18,framerate=25/1");
    let allowed = element.static_pad("sink").unwrap().query_caps(None);
    let s = allowed.structure(0).unwrap();
    assert_eq!(
        (
            s.get::<i32>("width").unwrap(),
            s.get::<i32>("height").unwrap()
        ),
        (17, 9)
    );
}

/// Runs `description` to its end and returns the text of the first error or warning.
fn run_pipeline(description: &str) -> (Option<String>, Vec<String>) {
    init();
    let pipeline = gst::parse::launch(description).unwrap();
    let bus = pipeline.bus().unwrap();
    let _ = pipeline.set_state(gst::State::Playing);
    let mut warnings = Vec::new();
    let mut error = None;
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(60)) {
        match msg.view() {
            gst::MessageView::Error(e) => {
                error = Some(format!("{} ({})", e.error(), e.debug().unwrap_or_default()));
                break;
            }
            gst::MessageView::Warning(w) => {
                warnings.push(format!("{} ({})", w.error(), w.debug().unwrap_or_default()))
            }
            gst::MessageView::Eos(_) => break,
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    (error, warnings)
}

fn pipeline_error(element: &str) -> String {
    let (error, _) = run_pipeline(&format!(
        "videotestsrc num-buffers=1 ! video/x-raw,width=8,height=8 ! {element} ! fakesink"
    ));
    error.expect("the pipeline should fail")
}

#[test]
fn bad_models_and_devices_are_clear_bus_errors() {
    let dir = temp_dir("bus-errors");
    for (embedded, nick) in [
        (EmbeddedModel::Quality, "quality"),
        (EmbeddedModel::Fast, "fast"),
    ] {
        if embedded.bytes().is_none() {
            let e = pipeline_error(&format!("cyclesr embedded-model={nick}"));
            assert!(
                e.contains(embedded.file_name()) && e.contains("set model-location"),
                "{e}"
            );
        }
    }

    let missing = dir.join("nope.safetensors");
    let e = pipeline_error(&format!("cyclesr model-location={}", missing.display()));
    assert!(
        e.contains("nope.safetensors") && e.contains("cannot read"),
        "{e}"
    );

    let corrupt = dir.join("corrupt.safetensors");
    std::fs::write(&corrupt, noise_bytes(64, 9)).unwrap();
    let e = pipeline_error(&format!("cyclesr model-location={}", corrupt.display()));
    assert!(
        e.contains("corrupt.safetensors") && e.contains("not a valid safetensors"),
        "{e}"
    );

    let model = write_model(&dir, SMALL_SRRESNET);
    if tch::Cuda::device_count() == 0 {
        let e = pipeline_error(&format!(
            "cyclesr model-location={} device=cuda",
            model.display()
        ));
        assert!(e.contains("no CUDA device"), "{e}");
    }
    let e = pipeline_error(&format!(
        "cyclesr model-location={} device=tpu",
        model.display()
    ));
    assert!(e.contains("invalid device 'tpu'"), "{e}");
}

#[test]
fn unsupported_caps_are_not_negotiated() {
    let dir = temp_dir("not-negotiated");
    let model = write_model(&dir, SMALL_SRRESNET);
    let (mut h, _) = harness(&model, VideoFormat::Rgb, 8, 8);
    h.set_src_caps_str("video/x-raw,format=GRAY8,width=8,height=8,framerate=25/1");
    let buffer = gst::Buffer::from_mut_slice(vec![0u8; 64]);
    assert_eq!(h.push(buffer), Err(gst::FlowError::NotNegotiated));
    // A pipeline refuses to link it in the first place.
    init();
    let launch = format!(
        "videotestsrc ! video/x-raw,format=GRAY8 ! cyclesr model-location={} ! fakesink",
        model.display()
    );
    let e = gst::parse::launch(&launch).unwrap_err();
    assert!(e.to_string().contains("can't handle caps"), "{e}");
}

#[test]
fn auto_device_and_fp16_fall_back_with_warnings() {
    let dir = temp_dir("fallback");
    let model = write_model(&dir, SMALL_SRRESNET);
    if tch::Cuda::device_count() > 0 {
        return; // this test is about the CPU fallbacks
    }
    let (error, warnings) = run_pipeline(&format!(
        "videotestsrc num-buffers=2 ! video/x-raw,width=8,height=8 ! cyclesr model-location={} precision=fp16 ! fakesink",
        model.display()
    ));
    assert_eq!(error, None);
    let all = warnings.join("\n");
    assert!(all.contains("no CUDA device found"), "{all}");
    assert!(all.contains("fp16 needs CUDA"), "{all}");
}

#[test]
fn reduced_precision_loads_the_model_once() {
    let dir = temp_dir("load-once");
    let model = write_model(&dir, SMALL_SRRESNET);
    init();
    // The element's "loading ..." lines, per element name.
    let loads = Arc::new(Mutex::new(Vec::<String>::new()));
    let recorded = loads.clone();
    let log = gst::log::add_log_function(move |category, _, _, _, _, object, message| {
        let text = message.get().map(|m| m.to_string()).unwrap_or_default();
        if category.name() == "cyclesr" && text.starts_with("loading ") {
            let object = object.map(|o| o.to_string()).unwrap_or_default();
            recorded.lock().unwrap().push(object);
        }
    });
    gst::log::set_threshold_for_name("cyclesr", gst::DebugLevel::Info);
    for precision in ["fp32", "fp16", "bf16"] {
        let (error, warnings) = run_pipeline(&format!(
            "videotestsrc num-buffers=2 ! video/x-raw,width=8,height=8 ! cyclesr name=once-{precision} model-location={} precision={precision} ! fakesink",
            model.display()
        ));
        assert_eq!(error, None, "{precision}");
        let loads = loads.lock().unwrap();
        let count = loads
            .iter()
            .filter(|o| o.contains(&format!("once-{precision}")))
            .count();
        // Only a device that cannot run the precision loads the model again, for fp32.
        let fell_back = warnings.iter().any(|w| w.contains("falling back to fp32"));
        assert_eq!(
            count,
            1 + usize::from(fell_back),
            "{precision}: {loads:?} {warnings:?}"
        );
        if tch::Cuda::device_count() == 0 && precision == "bf16" {
            assert!(!fell_back, "bf16 runs on the CPU: {warnings:?}");
        }
    }
    gst::log::remove_log_function(log);
    gst::log::unset_threshold_for_name("cyclesr");
}

/// A harness with `batch` and `overlap` set.
fn queued_harness(model: &Path, info: &VideoInfo, batch: u32, overlap: bool) -> Harness {
    init();
    let element = gst::ElementFactory::make("cyclesr")
        .property("model-location", model.to_str().unwrap())
        .property("batch", batch)
        .property("overlap", overlap)
        .build()
        .unwrap();
    let mut h = Harness::with_element(&element, Some("sink"), Some("src"));
    h.set_src_caps(info.to_caps().unwrap());
    h
}

/// With `batch`, frames come out a batch at a time (with `overlap`, one batch later: the
/// worker upscales it while the next one fills), the last partial batch at EOS, each with its
/// own timestamps and the pixels of one-frame-at-a-time processing (within one code value: a
/// batched convolution may round differently). Latency includes the frames a batch waits for.
#[test]
fn batches_give_one_frame_results_in_order_and_drain_at_eos() {
    let dir = temp_dir("batch");
    let model = write_model(&dir, SMALL_SRRESNET);
    let (mut single, info) = harness(&model, VideoFormat::I420, 12, 8);
    let frames: Vec<Vec<u8>> = (0..7).map(|i| noise_bytes(info.size(), 10 + i)).collect();
    let expected: Vec<gst::Buffer> = frames
        .iter()
        .enumerate()
        .map(|(i, f)| push_frame(&mut single, &info, f.clone(), 40 * i as u64))
        .collect();
    let out_info = output_info(&single);
    let latency = |h: &mut Harness| {
        let mut query = gst::query::Latency::new();
        assert!(h
            .element()
            .unwrap()
            .static_pad("src")
            .unwrap()
            .query(&mut query));
        query.result().1
    };

    for (batch, overlap) in [(3, false), (1, true), (2, true)] {
        let what = format!("batch {batch}, overlap {overlap}");
        let mut h = queued_harness(&model, &info, batch, overlap);
        let mut outputs = Vec::new();
        for (i, frame) in frames.iter().enumerate() {
            push_only(&mut h, &info, frame.clone(), 40 * i as u64);
            while let Some(buffer) = h.try_pull() {
                outputs.push(buffer);
            }
            let full = (i + 1) / batch as usize;
            let done = if overlap {
                full.saturating_sub(1)
            } else {
                full
            };
            assert_eq!(
                outputs.len(),
                done * batch as usize,
                "{what}, {} frames",
                i + 1
            );
        }
        assert!(h.push_event(gst::event::Eos::new()));
        while let Some(buffer) = h.try_pull() {
            outputs.push(buffer);
        }
        assert_eq!(outputs.len(), 7, "{what}: everything is drained at EOS");

        let (w, hh) = (out_info.width() as usize, out_info.height() as usize);
        for (i, (got, expected)) in outputs.iter().zip(&expected).enumerate() {
            assert_eq!(
                got.pts(),
                Some(gst::ClockTime::from_mseconds(40 * i as u64))
            );
            for (plane, rows, row_bytes) in [(0, hh, w), (1, hh / 2, w / 2), (2, hh / 2, w / 2)] {
                let got = plane_rows(got, &out_info, plane, rows, row_bytes);
                let expected = plane_rows(expected, &out_info, plane, rows, row_bytes);
                let worst = got
                    .iter()
                    .zip(&expected)
                    .map(|(&a, &b)| a.abs_diff(b))
                    .max()
                    .unwrap();
                assert!(worst <= 1, "{what}, frame {i} plane {plane}: {worst} apart");
            }
        }

        // At 25 fps a frame waits (batch − 1) frames for its batch, and with overlap a whole
        // batch more before it is taken back.
        let frames_waited = batch as u64 - 1 + if overlap { batch as u64 } else { 0 };
        let ours = latency(&mut h);
        assert!(
            ours >= gst::ClockTime::from_mseconds(40 * frames_waited),
            "{what}: latency {ours}, expected {frames_waited} frames and the processing"
        );
    }
}

/// A flush drops the frames waiting for a batch and those in flight on the worker: none of
/// them comes out afterwards.
#[test]
fn flush_discards_a_partial_batch() {
    let dir = temp_dir("batch-flush");
    let model = write_model(&dir, SMALL_SRRESNET);
    init();
    let info = VideoInfo::builder(VideoFormat::Rgb, 8, 8)
        .fps(gst::Fraction::new(25, 1))
        .build()
        .unwrap();
    for overlap in [false, true] {
        let mut h = queued_harness(&model, &info, 3, overlap);
        // With overlap, the first batch is in flight on the worker and the second is pending.
        for i in 0..5 {
            push_only(&mut h, &info, noise_bytes(info.size(), i), 40 * i);
        }
        while h.try_pull().is_some() {}
        assert!(h.push_event(gst::event::FlushStart::new()));
        assert!(h.push_event(gst::event::FlushStop::new(true)));
        h.set_src_caps(info.to_caps().unwrap());
        for i in 0..3 {
            push_only(&mut h, &info, noise_bytes(info.size(), i), 1000 + 40 * i);
        }
        assert!(h.push_event(gst::event::Eos::new()));
        let pts: Vec<_> = std::iter::from_fn(|| h.try_pull())
            .map(|b| b.pts().unwrap().mseconds())
            .collect();
        assert_eq!(pts, [1000, 1040, 1080], "overlap {overlap}");
    }
}

#[test]
fn latency_query_includes_processing_time() {
    let dir = temp_dir("latency");
    let model = write_model(&dir, SMALL_SRRESNET);
    init();
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc is-live=true num-buffers=3 ! video/x-raw,width=32,height=32,framerate=30/1 ! cyclesr name=sr model-location={} ! fakesink sync=false",
        model.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(60)) {
        if let gst::MessageView::Eos(_) | gst::MessageView::Error(_) = msg.view() {
            break;
        }
    }
    let sr = pipeline.by_name("sr").unwrap();
    let mut upstream = gst::query::Latency::new();
    assert!(sr.static_pad("sink").unwrap().peer_query(&mut upstream));
    let mut ours = gst::query::Latency::new();
    assert!(sr.static_pad("src").unwrap().query(&mut ours));
    let (live, min, _) = ours.result();
    assert!(live);
    assert!(
        min > upstream.result().1,
        "{min} should exceed upstream's {}",
        upstream.result().1
    );
    pipeline.set_state(gst::State::Null).unwrap();
}

/// The built plugin loads from a fresh registry without LD_LIBRARY_PATH (rpath to libtorch).
#[test]
fn plugin_loads_with_fresh_registry_and_no_ld_library_path() {
    let exe = std::env::current_exe().unwrap();
    let target_dir = exe.parent().unwrap().parent().unwrap(); // target/release/deps/..
    let so = target_dir.join("libgstcyclesr.so");
    assert!(
        so.exists(),
        "{} not built (cargo build --release -p gst-plugin-cyclesr)",
        so.display()
    );
    let dir = temp_dir("registry");
    let output = std::process::Command::new("gst-inspect-1.0")
        .arg(&so)
        .env_remove("LD_LIBRARY_PATH")
        .env("GST_REGISTRY", dir.join("registry.bin"))
        .env("GST_PLUGIN_PATH", target_dir)
        .output()
        .expect("gst-inspect-1.0 (gstreamer1.0-tools)");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains("cyclesr"), "{text}");
    let output = std::process::Command::new("gst-inspect-1.0")
        .arg("cyclesr")
        .env_remove("LD_LIBRARY_PATH")
        .env("GST_REGISTRY", dir.join("registry.bin"))
        .env("GST_PLUGIN_PATH", target_dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("model-location") && text.contains("tile-overlap"),
        "{text}"
    );
}

/// Inspecting the plugin (what every registry scan does) leaves libtorch's CUDA backend
/// unloaded: it is loaded when an element picks its device.
#[test]
fn registry_scan_does_not_load_the_cuda_backend() {
    let exe = std::env::current_exe().unwrap();
    let target_dir = exe.parent().unwrap().parent().unwrap();
    let dir = temp_dir("scan");
    let output = std::process::Command::new("gst-inspect-1.0")
        .arg(target_dir.join("libgstcyclesr.so"))
        .env("GST_REGISTRY", dir.join("registry.bin"))
        .env("LD_DEBUG", "files")
        .output()
        .expect("gst-inspect-1.0 (gstreamer1.0-tools)");
    assert!(output.status.success());
    let loads = String::from_utf8_lossy(&output.stderr);
    assert!(
        !loads.contains("libtorch_cuda"),
        "{}",
        loads
            .lines()
            .filter(|l| l.contains("libtorch_cuda"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Without `model-location` the element runs the embedded model `embedded-model` names
/// (`quality` by default), pixel for pixel as a direct forward pass of that file.
#[test]
fn embedded_models_run_without_model_location() {
    init();
    let default = gst::ElementFactory::make("cyclesr").build().unwrap();
    assert_eq!(
        default.property::<EmbeddedModelSetting>("embedded-model"),
        EmbeddedModelSetting::Quality
    );
    let (w, h) = (11i64, 9i64);
    let rgb_bytes = noise_bytes((w * h * 3) as usize, 4);
    let rgb = Tensor::from_slice(&rgb_bytes)
        .view([h, w, 3])
        .permute([2, 0, 1])
        .unsqueeze(0)
        .to_kind(Kind::Float)
        / 255.0;
    for (embedded, setting) in [
        (EmbeddedModel::Quality, EmbeddedModelSetting::Quality),
        (EmbeddedModel::Fast, EmbeddedModelSetting::Fast),
    ] {
        let Some(bytes) = embedded.bytes() else {
            continue; // this build does not embed it (plugin/models/ lacks the file)
        };
        let model = SrModel::from_bytes(bytes, Device::Cpu).unwrap();
        let scale = model.config.scale;
        let expected = (model.upscale(&rgb).clamp(0.0, 1.0) * 255.0)
            .round()
            .squeeze_dim(0)
            .permute([1, 2, 0]);

        let element = gst::ElementFactory::make("cyclesr")
            .property("embedded-model", setting)
            .build()
            .unwrap();
        assert_eq!(element.property::<i32>("scale") as i64, scale);
        let mut harness = Harness::with_element(&element, Some("sink"), Some("src"));
        let info = VideoInfo::builder(VideoFormat::Rgb, w as u32, h as u32)
            .fps(gst::Fraction::new(25, 1))
            .build()
            .unwrap();
        harness.set_src_caps(info.to_caps().unwrap());
        let mut data = vec![0u8; info.size()];
        for y in 0..h as usize {
            let row = y * info.stride()[0] as usize;
            let src = y * w as usize * 3;
            data[row..row + w as usize * 3].copy_from_slice(&rgb_bytes[src..src + w as usize * 3]);
        }
        let out = push_frame(&mut harness, &info, data, 0);
        let out_info = output_info(&harness);
        assert_eq!(
            (out_info.width() as i64, out_info.height() as i64),
            (w * scale, h * scale)
        );
        let got = plane_rows(
            &out,
            &out_info,
            0,
            (h * scale) as usize,
            (w * scale * 3) as usize,
        );
        assert_within_one(&got, &expected, embedded.file_name());
    }
}

/// A harness with `batch` and `overlap` set whose caps are not set yet.
fn queued_harness_without_caps(model: &Path, batch: u32, overlap: bool) -> Harness {
    init();
    let element = gst::ElementFactory::make("cyclesr")
        .property("model-location", model.to_str().unwrap())
        .property("batch", batch)
        .property("overlap", overlap)
        .build()
        .unwrap();
    Harness::with_element(&element, Some("sink"), Some("src"))
}

/// Every way frames go through the element: one at a time, in batches, and on the worker.
const MODES: [(u32, bool); 3] = [(1, false), (3, false), (2, true)];

fn small_rgb() -> VideoInfo {
    init();
    VideoInfo::builder(VideoFormat::Rgb, 8, 8)
        .fps(gst::Fraction::new(25, 1))
        .build()
        .unwrap()
}

#[test]
fn buffers_before_caps_are_not_negotiated_in_every_mode() {
    let dir = temp_dir("before-caps");
    let model = write_model(&dir, SMALL_SRRESNET);
    for (batch, overlap) in MODES {
        let mut h = queued_harness_without_caps(&model, batch, overlap);
        let buffer = gst::Buffer::from_mut_slice(vec![0u8; small_rgb().size()]);
        assert_eq!(
            h.push(buffer),
            Err(gst::FlowError::NotNegotiated),
            "batch {batch}, overlap {overlap}"
        );
    }
}

/// Frames that QoS says are late are dropped before inference, and the first frame after
/// the gap carries DISCONT.
#[test]
fn late_frames_are_dropped_in_every_mode() {
    let dir = temp_dir("qos");
    let model = write_model(&dir, SMALL_SRRESNET);
    let info = small_rgb();
    for (batch, overlap) in MODES {
        let what = format!("batch {batch}, overlap {overlap}");
        let mut h = queued_harness(&model, &info, batch, overlap);
        // Downstream is one second behind: frames before running time 1 s are late.
        let qos = gst::event::Qos::new(
            gst::QOSType::Underflow,
            1.0,
            1_000_000_000,
            Some(gst::ClockTime::ZERO),
        );
        assert!(h.push_upstream_event(qos), "{what}");
        for pts_ms in [0, 40, 80, 1200, 1240, 1280] {
            push_only(&mut h, &info, noise_bytes(info.size(), pts_ms), pts_ms);
        }
        assert!(h.push_event(gst::event::Eos::new()));
        let outputs: Vec<gst::Buffer> = std::iter::from_fn(|| h.try_pull()).collect();
        let pts: Vec<u64> = outputs
            .iter()
            .map(|b| b.pts().unwrap().mseconds())
            .collect();
        assert_eq!(pts, [1200, 1240, 1280], "{what}");
        assert!(
            outputs[0].flags().contains(gst::BufferFlags::DISCONT),
            "{what}: the frame after the dropped ones marks the gap"
        );
    }
}

/// A RECONFIGURE event from downstream is acted on with the next frame.
#[test]
fn reconfigure_is_handled_in_every_mode() {
    let dir = temp_dir("reconfigure");
    let model = write_model(&dir, SMALL_SRRESNET);
    let info = small_rgb();
    for (batch, overlap) in MODES {
        let mut h = queued_harness(&model, &info, batch, overlap);
        push_only(&mut h, &info, noise_bytes(info.size(), 1), 0);
        let src = h.element().unwrap().static_pad("src").unwrap();
        assert!(h.push_upstream_event(gst::event::Reconfigure::new()));
        assert!(src.needs_reconfigure());
        push_only(&mut h, &info, noise_bytes(info.size(), 2), 40);
        assert!(
            !src.needs_reconfigure(),
            "batch {batch}, overlap {overlap}: RECONFIGURE left pending"
        );
    }
}

fn latency_of(h: &Harness) -> gst::ClockTime {
    let mut query = gst::query::Latency::new();
    assert!(h
        .element()
        .unwrap()
        .static_pad("src")
        .unwrap()
        .query(&mut query));
    query.result().1
}

/// Latency is measured by a warm pass at the negotiated size, before any frame arrives.
#[test]
fn latency_is_known_once_caps_are_set() {
    let dir = temp_dir("latency-warm");
    let model = write_model(&dir, SMALL_SRRESNET);
    let (h, _) = harness(&model, VideoFormat::Rgb, 64, 48);
    assert!(latency_of(&h) > gst::ClockTime::ZERO);
}

/// Without a frame rate in the caps, the batch wait is learnt from the frames' durations.
#[test]
fn latency_counts_the_batch_wait_without_a_frame_rate() {
    let dir = temp_dir("latency-vfr");
    let model = write_model(&dir, SMALL_SRRESNET);
    let info = VideoInfo::builder(VideoFormat::Rgb, 8, 8)
        .fps(gst::Fraction::new(0, 1))
        .build()
        .unwrap();
    let mut h = queued_harness(&model, &info, 3, false);
    for i in 0..3 {
        push_only(&mut h, &info, noise_bytes(info.size(), i), 40 * i);
    }
    let latency = latency_of(&h);
    assert!(
        latency >= gst::ClockTime::from_mseconds(80),
        "latency {latency}: two 40 ms frames wait for the third"
    );
}

/// Upstream's pool is asked for enough buffers to fill the batches the element holds.
#[test]
fn upstream_pool_covers_the_frames_held() {
    let dir = temp_dir("propose");
    let model = write_model(&dir, SMALL_SRRESNET);
    let info = small_rgb();
    let mut h = queued_harness(&model, &info, 4, true);
    push_only(&mut h, &info, noise_bytes(info.size(), 1), 0);
    let mut query = gst::query::Allocation::new(Some(&info.to_caps().unwrap()), true);
    let sink = h.element().unwrap().static_pad("sink").unwrap();
    assert!(sink.query(&mut query));
    let min = query.allocation_pools().map(|(_, _, min, _)| min).max();
    assert!(
        min >= Some(8),
        "pools {:?}",
        query.allocation_pools().collect::<Vec<_>>()
    );
}

/// A downstream pool of two buffers: the element widens it by the buffers it holds, where
/// it used to wait for good for a third buffer while holding two.
#[test]
fn bounded_downstream_pool_does_not_stall_batches() {
    let dir = temp_dir("bounded-pool");
    let model = write_model(&dir, SMALL_SRRESNET);
    init();
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers=30 ! video/x-raw,format=RGB,width=8,height=8,framerate=25/1 ! cyclesr model-location={} batch=4 overlap=true ! fakesink name=sink",
        model.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let sink = pipeline
        .by_name("sink")
        .unwrap()
        .static_pad("sink")
        .unwrap();
    sink.add_probe(gst::PadProbeType::QUERY_DOWNSTREAM, |_, info| {
        let Some(gst::QueryViewMut::Allocation(q)) = info.query_mut().map(|q| q.view_mut()) else {
            return gst::PadProbeReturn::Ok;
        };
        let (caps, _) = q.get_owned();
        let size = VideoInfo::from_caps(&caps.unwrap()).unwrap().size() as u32;
        let pool = gst_video::VideoBufferPool::new();
        q.add_allocation_pool(Some(&pool), size, 2, 2);
        gst::PadProbeReturn::Handled
    });
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let end = bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(60),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    match end.as_ref().map(|m| m.view()) {
        Some(gst::MessageView::Eos(_)) => pipeline.set_state(gst::State::Null).unwrap(),
        Some(gst::MessageView::Error(e)) => panic!("{} ({:?})", e.error(), e.debug()),
        _ => {
            // Stalled: shutting it down would block too.
            std::mem::forget(pipeline);
            panic!("no EOS within 60 s: the pipeline stalled");
        }
    };
}

/// What left the element's source pad, in order: "buffer" or the event's type name.
fn record_output(h: &Harness) -> Arc<Mutex<Vec<String>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let src = h.element().unwrap().static_pad("src").unwrap();
    let record = seen.clone();
    src.add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
        move |_, info| {
            let item = match &info.data {
                Some(gst::PadProbeData::Buffer(_)) => "buffer".to_string(),
                Some(gst::PadProbeData::Event(e)) => e.type_().name().to_string(),
                _ => return gst::PadProbeReturn::Ok,
            };
            record.lock().unwrap().push(item);
            gst::PadProbeReturn::Ok
        },
    );
    seen
}

/// A GAP event does not overtake the frames still waiting for their batch.
#[test]
fn gap_events_follow_pending_frames() {
    let dir = temp_dir("gap");
    let model = write_model(&dir, SMALL_SRRESNET);
    let info = small_rgb();
    for (batch, overlap) in MODES {
        let mut h = queued_harness(&model, &info, batch, overlap);
        let seen = record_output(&h);
        push_only(&mut h, &info, noise_bytes(info.size(), 1), 0);
        push_only(&mut h, &info, noise_bytes(info.size(), 2), 40);
        let gap = gst::event::Gap::new(
            gst::ClockTime::from_mseconds(80),
            gst::ClockTime::from_mseconds(40),
        );
        assert!(h.push_event(gap));
        let seen = seen.lock().unwrap();
        let after_caps: Vec<&str> = seen
            .iter()
            .map(String::as_str)
            .filter(|s| ["buffer", "gap"].contains(s))
            .collect();
        assert_eq!(
            after_caps,
            ["buffer", "buffer", "gap"],
            "batch {batch}, overlap {overlap}"
        );
    }
}

/// A downstream error met while draining before an event reaches upstream with its next
/// frame.
#[test]
fn drain_flow_errors_reach_upstream() {
    let dir = temp_dir("drain-flow");
    let model = write_model(&dir, SMALL_SRRESNET);
    let info = small_rgb();
    let mut h = queued_harness(&model, &info, 3, false);
    push_only(&mut h, &info, noise_bytes(info.size(), 1), 0);
    let src = h.element().unwrap().static_pad("src").unwrap();
    let peer = src.peer().unwrap();
    src.unlink(&peer).unwrap();
    let gap = gst::event::Gap::new(
        gst::ClockTime::from_mseconds(40),
        gst::ClockTime::from_mseconds(40),
    );
    h.push_event(gap);
    let mut buffer = gst::Buffer::from_mut_slice(noise_bytes(info.size(), 2));
    buffer
        .get_mut()
        .unwrap()
        .set_pts(gst::ClockTime::from_mseconds(80));
    assert_eq!(h.push(buffer), Err(gst::FlowError::NotLinked));
}

/// Position queries count the frames pushed by a drain.
#[test]
fn position_includes_drained_frames() {
    let dir = temp_dir("position");
    let model = write_model(&dir, SMALL_SRRESNET);
    let info = small_rgb();
    let mut h = queued_harness(&model, &info, 2, false);
    for i in 0..3 {
        push_only(&mut h, &info, noise_bytes(info.size(), i), 40 * i);
    }
    assert!(h.push_event(gst::event::Eos::new()));
    let src = h.element().unwrap().static_pad("src").unwrap();
    assert_eq!(
        src.query_position::<gst::ClockTime>(),
        Some(gst::ClockTime::from_mseconds(120))
    );
}

#[test]
fn interlaced_caps_are_not_negotiated() {
    let dir = temp_dir("interlaced");
    let model = write_model(&dir, SMALL_SRRESNET);
    let (mut h, _) = harness(&model, VideoFormat::I420, 8, 8);
    h.set_src_caps_str(
        "video/x-raw,format=I420,width=8,height=8,framerate=25/1,interlace-mode=interleaved",
    );
    let buffer = gst::Buffer::from_mut_slice(vec![0u8; 96]);
    assert_eq!(h.push(buffer), Err(gst::FlowError::NotNegotiated));
}

/// Crop and region-of-interest metas follow the picture: scaled, not dropped.
#[test]
fn size_metas_are_scaled_in_every_mode() {
    let dir = temp_dir("metas");
    let model = write_model(&dir, SMALL_SRRESNET);
    let info = small_rgb();
    for (batch, overlap) in MODES {
        let what = format!("batch {batch}, overlap {overlap}");
        let mut h = queued_harness(&model, &info, batch, overlap);
        for i in 0..batch as u64 * 2 {
            let mut buffer = gst::Buffer::from_mut_slice(noise_bytes(info.size(), i));
            {
                let b = buffer.get_mut().unwrap();
                b.set_pts(gst::ClockTime::from_mseconds(40 * i));
                gst_video::VideoCropMeta::add(b, (2, 1, 4, 6));
                gst_video::VideoRegionOfInterestMeta::add(b, "face", (1, 2, 3, 4));
            }
            assert_eq!(h.push(buffer), Ok(gst::FlowSuccess::Ok));
        }
        let out = h.pull().unwrap();
        let crop = out.meta::<gst_video::VideoCropMeta>().expect(&what);
        assert_eq!(crop.rect(), (8, 4, 16, 24), "{what}");
        let roi = out
            .meta::<gst_video::VideoRegionOfInterestMeta>()
            .expect(&what);
        assert_eq!(roi.rect(), (4, 8, 12, 16), "{what}");
        assert_eq!(roi.roi_type(), "face", "{what}");
    }
}

/// Input whose rows are padded (its strides in a `VideoMeta`) gives the same output.
#[test]
fn custom_strides_give_the_same_output() {
    let dir = temp_dir("strides");
    let model = write_model(&dir, SMALL_SRRESNET);
    let (w, hh) = (5usize, 3usize);
    let pixels = noise_bytes(w * hh * 3, 8);
    let (mut plain, info) = harness(&model, VideoFormat::Rgb, w as u32, hh as u32);
    let mut packed = vec![0u8; info.size()];
    for r in 0..hh {
        let o = r * info.stride()[0] as usize;
        packed[o..o + w * 3].copy_from_slice(&pixels[r * w * 3..(r + 1) * w * 3]);
    }
    let expected = push_frame(&mut plain, &info, packed, 0);

    let (mut padded, _) = harness(&model, VideoFormat::Rgb, w as u32, hh as u32);
    let (offset, stride) = (7usize, 40usize);
    let mut data = vec![0u8; offset + stride * hh];
    for r in 0..hh {
        let o = offset + r * stride;
        data[o..o + w * 3].copy_from_slice(&pixels[r * w * 3..(r + 1) * w * 3]);
    }
    let mut buffer = gst::Buffer::from_mut_slice(data);
    gst_video::VideoMeta::add_full(
        buffer.get_mut().unwrap(),
        gst_video::VideoFrameFlags::empty(),
        VideoFormat::Rgb,
        w as u32,
        hh as u32,
        &[offset],
        &[stride as i32],
    )
    .unwrap();
    assert_eq!(padded.push(buffer), Ok(gst::FlowSuccess::Ok));
    let got = padded.pull().unwrap();
    let out_info = output_info(&padded);
    assert_eq!(
        plane_rows(&got, &out_info, 0, hh * 4, w * 12),
        plane_rows(&expected, &out_info, 0, hh * 4, w * 12)
    );
}

/// The bus error says what failed in a line; the chain of causes is in its debug part.
#[test]
fn error_messages_are_short_with_details_in_debug() {
    init();
    let dir = temp_dir("short-errors");
    let corrupt = dir.join("corrupt.safetensors");
    std::fs::write(&corrupt, noise_bytes(64, 9)).unwrap();
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers=1 ! video/x-raw,width=8,height=8 ! cyclesr model-location={} ! fakesink",
        corrupt.display()
    ))
    .unwrap();
    let bus = pipeline.bus().unwrap();
    let _ = pipeline.set_state(gst::State::Playing);
    let msg = bus
        .timed_pop_filtered(gst::ClockTime::from_seconds(60), &[gst::MessageType::Error])
        .expect("an error");
    pipeline.set_state(gst::State::Null).unwrap();
    let gst::MessageView::Error(e) = msg.view() else {
        unreachable!("filtered")
    };
    let message = e.error().to_string();
    let debug = e.debug().unwrap().to_string();
    assert!(message.contains("corrupt.safetensors"), "{message}");
    assert!(
        !message.contains("model file"),
        "one line, no chain: {message}"
    );
    assert!(
        debug.contains("model file") && debug.contains("not a valid safetensors"),
        "{debug}"
    );
}

/// Setting a property that only applies at start while running says so in the log.
#[test]
fn properties_set_while_running_warn() {
    let dir = temp_dir("running-props");
    let model = write_model(&dir, SMALL_SRRESNET);
    init();
    let warnings = Arc::new(Mutex::new(Vec::new()));
    let record = warnings.clone();
    let log = gst::log::add_log_function(move |category, level, _, _, _, _, message| {
        if category.name() == "cyclesr" && level == gst::DebugLevel::Warning {
            if let Some(text) = message.get() {
                record.lock().unwrap().push(text.to_string());
            }
        }
    });
    gst::DebugCategory::get("cyclesr")
        .unwrap()
        .set_threshold(gst::DebugLevel::Warning);
    gst::log::set_active(true);
    let (h, _) = harness(&model, VideoFormat::Rgb, 8, 8);
    h.element().unwrap().set_property("tile-size", 64u32);
    gst::log::remove_log_function(log);
    let warnings = warnings.lock().unwrap();
    assert!(
        warnings.iter().any(|w| w.contains("tile-size")),
        "{warnings:?}"
    );
}

/// Start and stop 200 times, every third time with batches filling and on the worker.
#[test]
fn two_hundred_state_cycles() {
    let dir = temp_dir("cycles");
    let model = write_model(&dir, SMALL_SRRESNET);
    init();
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc ! video/x-raw,format=I420,width=8,height=8,framerate=1000/1 ! cyclesr name=sr model-location={} batch=3 overlap=true ! fakesink name=sink",
        model.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let frames = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = frames.clone();
    pipeline
        .by_name("sink")
        .unwrap()
        .static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            gst::PadProbeReturn::Ok
        });
    let bus = pipeline.bus().unwrap();
    for cycle in 0..200 {
        pipeline.set_state(gst::State::Playing).unwrap();
        if cycle % 3 == 0 {
            let before = frames.load(std::sync::atomic::Ordering::SeqCst);
            let started = std::time::Instant::now();
            while frames.load(std::sync::atomic::Ordering::SeqCst) < before + 4 {
                assert!(
                    started.elapsed() < std::time::Duration::from_secs(30),
                    "cycle {cycle}: no frames"
                );
                std::thread::yield_now();
            }
        }
        pipeline.set_state(gst::State::Null).unwrap();
        if let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
            panic!("cycle {cycle}: {msg:?}");
        }
    }
}

/// New caps while a batch is partly filled: its frames come out at the old size, before the
/// frames of the new size.
#[test]
fn renegotiation_drains_a_partial_batch() {
    let dir = temp_dir("renegotiate");
    let model = write_model(&dir, SMALL_SRRESNET);
    let info = small_rgb();
    for overlap in [false, true] {
        let mut h = queued_harness(&model, &info, 3, overlap);
        for i in 0..4 {
            push_only(&mut h, &info, noise_bytes(info.size(), i), 40 * i);
        }
        let wide = VideoInfo::builder(VideoFormat::Rgb, 12, 8)
            .fps(gst::Fraction::new(25, 1))
            .build()
            .unwrap();
        h.set_src_caps(wide.to_caps().unwrap());
        for i in 4..6 {
            push_only(&mut h, &wide, noise_bytes(wide.size(), i), 40 * i);
        }
        assert!(h.push_event(gst::event::Eos::new()));
        let outputs: Vec<gst::Buffer> = std::iter::from_fn(|| h.try_pull()).collect();
        let sizes: Vec<usize> = outputs.iter().map(|b| b.size()).collect();
        let (small, large) = (32 * 32 * 3, 48 * 32 * 3);
        assert_eq!(
            sizes,
            [small, small, small, small, large, large],
            "overlap {overlap}"
        );
        let pts: Vec<u64> = outputs
            .iter()
            .map(|b| b.pts().unwrap().mseconds())
            .collect();
        assert_eq!(pts, [0, 40, 80, 120, 160, 200], "overlap {overlap}");
    }
}

/// A live 30 fps source whose sink falls behind (each frame held 50 ms downstream, against
/// a 33 ms budget): the element drops late frames in every mode, says so on the bus, and
/// the pipeline's latency stays bounded.
#[test]
fn live_late_frames_are_dropped_in_every_mode() {
    let dir = temp_dir("live-qos");
    let model = write_model(&dir, SMALL_SRRESNET);
    init();
    for (batch, overlap) in MODES {
        let what = format!("batch {batch}, overlap {overlap}");
        let pipeline = gst::parse::launch(&format!(
            "videotestsrc is-live=true num-buffers=60 ! video/x-raw,format=RGB,width=8,height=8,framerate=30/1 \
             ! cyclesr name=sr model-location={} batch={batch} overlap={overlap} \
             ! identity sleep-time=50000 ! fakesink sync=true qos=true",
            model.display()
        ))
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        let sr = pipeline.by_name("sr").unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        let bus = pipeline.bus().unwrap();
        let mut dropped = 0;
        for msg in bus.iter_timed(gst::ClockTime::from_seconds(60)) {
            match msg.view() {
                gst::MessageView::Qos(q) if msg.src() == Some(sr.upcast_ref()) => {
                    dropped = dropped.max(q.stats().1.value());
                }
                gst::MessageView::Eos(_) => break,
                gst::MessageView::Error(e) => panic!("{what}: {}", e.error()),
                _ => {}
            }
        }
        let mut query = gst::query::Latency::new();
        assert!(pipeline.query(&mut query), "{what}");
        let (live, min, _) = query.result();
        pipeline.set_state(gst::State::Null).unwrap();
        assert!(dropped > 0, "{what}: no late frame dropped");
        assert!(live, "{what}");
        assert!(
            min < gst::ClockTime::from_mseconds(500),
            "{what}: latency {min}"
        );
    }
}

/// Runs `f` on another thread and gives its result if it comes within ten seconds.
fn within_ten_seconds<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(f());
    });
    receiver
        .recv_timeout(std::time::Duration::from_secs(10))
        .ok()
}

/// While the streaming thread is held inside a batch (here: waiting for an output buffer from
/// a pool that downstream has drained), latency, position and the `scale` property still
/// answer.
#[test]
fn queries_do_not_wait_for_a_batch() {
    let dir = temp_dir("queries-during-batch");
    let model = write_model(&dir, SMALL_SRRESNET);
    let info = small_rgb();
    let mut h = queued_harness_without_caps(&model, 2, false);
    let element = h.element().unwrap();
    let src = element.static_pad("src").unwrap();
    // Downstream's pool, asked for with the caps: two buffers, widened by the element to four.
    src.add_probe(gst::PadProbeType::QUERY_DOWNSTREAM, |_, probe| {
        let Some(gst::QueryViewMut::Allocation(q)) = probe.query_mut().map(|q| q.view_mut()) else {
            return gst::PadProbeReturn::Ok;
        };
        let (caps, _) = q.get_owned();
        let size = VideoInfo::from_caps(&caps.unwrap()).unwrap().size() as u32;
        q.add_allocation_pool(Some(&gst_video::VideoBufferPool::new()), size, 2, 2);
        gst::PadProbeReturn::Handled
    });
    h.set_src_caps(info.to_caps().unwrap());
    let frame = |i: u64| {
        let mut buffer = gst::Buffer::from_mut_slice(noise_bytes(info.size(), i));
        let b = buffer.get_mut().unwrap();
        b.set_pts(gst::ClockTime::from_mseconds(40 * i));
        b.set_duration(gst::ClockTime::from_mseconds(40));
        buffer
    };
    // The first frame through the harness, which sends the stream's events; the next ones
    // from a thread, so a pool that stalls fails the test instead of hanging it.
    push_only(&mut h, &info, noise_bytes(info.size(), 0), 0);
    let upstream = h.srcpad().unwrap();
    let frames: Vec<gst::Buffer> = (1..4).map(frame).collect();
    let pushed = within_ten_seconds({
        let upstream = upstream.clone();
        move || {
            frames
                .into_iter()
                .map(|f| upstream.push(f))
                .collect::<Vec<_>>()
        }
    });
    if pushed != Some(vec![Ok(gst::FlowSuccess::Ok); 3]) {
        // Stalled: tearing the harness down would block too.
        std::mem::forget(h);
        panic!("the pool stalled: {pushed:?}");
    }
    // Downstream keeps every buffer of the pool.
    let held: Vec<gst::Buffer> = std::iter::from_fn(|| h.try_pull()).collect();
    assert_eq!(held.len(), 4);

    // The next batch waits for a buffer, inside the element.
    let (first, second) = (frame(4), frame(5));
    let pushing = std::thread::spawn(move || (upstream.push(first), upstream.push(second)));

    let latency = within_ten_seconds({
        let src = src.clone();
        move || src.query(&mut gst::query::Latency::new())
    });
    let position = within_ten_seconds({
        let src = src.clone();
        move || src.query_position::<gst::ClockTime>()
    });
    let scale = within_ten_seconds({
        let element = element.clone();
        move || element.property::<i32>("scale")
    });
    drop(held);
    let (first, second) = pushing.join().unwrap();
    assert_eq!(
        (first, second),
        (Ok(gst::FlowSuccess::Ok), Ok(gst::FlowSuccess::Ok))
    );
    assert_eq!(
        latency,
        Some(true),
        "the latency query waited for the batch"
    );
    assert_eq!(
        position,
        Some(Some(gst::ClockTime::from_mseconds(160))),
        "the position query waited for the batch"
    );
    assert_eq!(scale, Some(4), "the scale property waited for the batch");
}
