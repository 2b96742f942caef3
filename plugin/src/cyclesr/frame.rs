//! Video frames ↔ tensors for every format the element accepts.
//!
//! Planes are uploaded as 8-bit tensors and converted to RGB on the model's device; the
//! result goes back the same way. Alpha does not pass through the network: it is upscaled
//! bicubically on its own.

use anyhow::{bail, Result};
use gst_video::prelude::*;
use gst_video::{VideoFormat, VideoFrameRef, VideoInfo};
use tch::{Device, Kind, Tensor};

use crate::model::color::{ChromaSiting, YuvEncoding};

/// The formats the element negotiates, each handled natively (same format out as in).
pub const FORMATS: &[VideoFormat] = &[
    VideoFormat::Rgb,
    VideoFormat::Bgr,
    VideoFormat::Rgbx,
    VideoFormat::Bgrx,
    VideoFormat::Rgba,
    VideoFormat::Bgra,
    VideoFormat::I420,
    VideoFormat::Nv12,
];

/// How one negotiated format maps onto planes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Layout {
    /// One interleaved plane: bytes per pixel, index of R, G and B, and of alpha if kept.
    Packed {
        bytes: i64,
        rgb: [i64; 3],
        alpha: Option<i64>,
    },
    /// Three planes Y, U, V with 2×2-subsampled chroma.
    I420(YuvEncoding, ChromaSiting),
    /// Y plane then one plane of interleaved U, V (2×2-subsampled).
    Nv12(YuvEncoding, ChromaSiting),
}

impl Layout {
    pub fn from_info(info: &VideoInfo) -> Result<Self> {
        let packed = |bytes, rgb, alpha| Ok(Layout::Packed { bytes, rgb, alpha });
        match info.format() {
            VideoFormat::Rgb => packed(3, [0, 1, 2], None),
            VideoFormat::Bgr => packed(3, [2, 1, 0], None),
            VideoFormat::Rgbx => packed(4, [0, 1, 2], None),
            VideoFormat::Bgrx => packed(4, [2, 1, 0], None),
            VideoFormat::Rgba => packed(4, [0, 1, 2], Some(3)),
            VideoFormat::Bgra => packed(4, [2, 1, 0], Some(3)),
            VideoFormat::I420 => Ok(Layout::I420(
                YuvEncoding::from_video_info(info)?,
                ChromaSiting::from_video_info(info),
            )),
            VideoFormat::Nv12 => Ok(Layout::Nv12(
                YuvEncoding::from_video_info(info)?,
                ChromaSiting::from_video_info(info),
            )),
            other => bail!("unsupported video format {other:?}"),
        }
    }
}

/// Plane `index` as a u8 tensor [rows, row_bytes] on `device` (padding at row ends dropped).
fn plane_tensor(
    frame: &VideoFrameRef<&gst::BufferRef>,
    index: u32,
    rows: i64,
    row_bytes: i64,
    device: Device,
) -> Result<Tensor> {
    let data = frame.plane_data(index)?;
    let stride = frame.plane_stride()[index as usize] as i64;
    let len = ((rows - 1) * stride + row_bytes) as usize;
    if data.len() < len {
        bail!(
            "plane {index} holds {} bytes, expected at least {len}",
            data.len()
        );
    }
    // Rows may be padded to the stride: view the span with that stride, keep the pixels.
    let span = Tensor::from_slice(&data[..len]);
    let t = span.as_strided([rows, row_bytes], [stride, 1], None::<i64>);
    Ok(t.to_device(device).contiguous())
}

/// Input frame → (RGB [1, 3, H, W] float in [0, 1], alpha [1, 1, H, W] in [0, 1] if any).
pub fn frame_to_rgb(
    layout: Layout,
    frame: &VideoFrameRef<&gst::BufferRef>,
    device: Device,
) -> Result<(Tensor, Option<Tensor>)> {
    let (h, w) = (frame.height() as i64, frame.width() as i64);
    let (ch, cw) = ((h + 1) / 2, (w + 1) / 2);
    match layout {
        Layout::Packed { bytes, rgb, alpha } => {
            let pixels = plane_tensor(frame, 0, h, w * bytes, device)?
                .view([h, w, bytes])
                .permute([2, 0, 1])
                .to_kind(Kind::Float)
                / 255.0;
            let order = Tensor::from_slice(&rgb).to_device(device);
            let colour = pixels.index_select(0, &order).unsqueeze(0);
            let alpha = alpha.map(|a| pixels.narrow(0, a, 1).unsqueeze(0));
            Ok((colour, alpha))
        }
        Layout::I420(enc, siting) => {
            let y = plane_tensor(frame, 0, h, w, device)?.to_kind(Kind::Float);
            let u = plane_tensor(frame, 1, ch, cw, device)?.to_kind(Kind::Float);
            let v = plane_tensor(frame, 2, ch, cw, device)?.to_kind(Kind::Float);
            let rgb = enc.to_rgb(&y, &siting.upsample(&u, h, w), &siting.upsample(&v, h, w));
            Ok((rgb.unsqueeze(0).clamp(0.0, 1.0), None))
        }
        Layout::Nv12(enc, siting) => {
            let y = plane_tensor(frame, 0, h, w, device)?.to_kind(Kind::Float);
            let uv = plane_tensor(frame, 1, ch, cw * 2, device)?
                .view([ch, cw, 2])
                .to_kind(Kind::Float);
            let u = siting.upsample(&uv.select(2, 0), h, w);
            let v = siting.upsample(&uv.select(2, 1), h, w);
            Ok((enc.to_rgb(&y, &u, &v).unsqueeze(0).clamp(0.0, 1.0), None))
        }
    }
}

/// Rounds float code values to u8 on their device.
fn to_u8(t: &Tensor) -> Tensor {
    t.round().clamp(0.0, 255.0).to_kind(Kind::Uint8)
}

/// Copies a u8 tensor [rows, row_bytes] (on any device) into plane `index` of the output
/// frame: one copy, straight from the device into the buffer's memory, keeping its stride.
fn write_plane(
    frame: &mut VideoFrameRef<&mut gst::BufferRef>,
    index: u32,
    values: &Tensor,
) -> Result<()> {
    let (rows, row_bytes) = (values.size()[0], values.size()[1]);
    let stride = frame.plane_stride()[index as usize] as i64;
    let data = frame.plane_data_mut(index)?;
    let len = ((rows - 1) * stride + row_bytes) as usize;
    if stride < row_bytes || data.len() < len {
        bail!(
            "output plane {index} holds {} bytes with stride {stride}, expected {rows} rows of {row_bytes} bytes",
            data.len()
        );
    }
    // SAFETY: the view spans `len` bytes of `data`, checked above, and is dropped before this
    // function returns, while `data` stays mapped and exclusively borrowed.
    let mut view = unsafe {
        Tensor::from_blob(
            data.as_mut_ptr(),
            &[rows, row_bytes],
            &[stride, 1],
            Kind::Uint8,
            Device::Cpu,
        )
    };
    view.f_copy_(values)?;
    Ok(())
}

/// RGB [1, 3, H, W] in [0, 1] (+ alpha [1, 1, H, W]) → the output frame's planes.
pub fn rgb_to_frame(
    layout: Layout,
    rgb: &Tensor,
    alpha: Option<&Tensor>,
    frame: &mut VideoFrameRef<&mut gst::BufferRef>,
) -> Result<()> {
    let (h, w) = (frame.height() as i64, frame.width() as i64);
    let rgb = rgb.squeeze_dim(0);
    match layout {
        Layout::Packed {
            bytes,
            rgb: order,
            alpha: alpha_index,
        } => {
            let mut channels: Vec<Tensor> = (0..bytes)
                .map(|_| Tensor::full([h, w], 1.0, (Kind::Float, rgb.device())))
                .collect();
            for (c, &i) in order.iter().enumerate() {
                channels[i as usize] = rgb.select(0, c as i64);
            }
            if let (Some(a), Some(i)) = (alpha, alpha_index) {
                channels[i as usize] = a.view([h, w]);
            }
            let packed = Tensor::stack(&channels, 2).view([h, w * bytes]) * 255.0;
            write_plane(frame, 0, &to_u8(&packed))
        }
        Layout::I420(enc, siting) => {
            let (y, u, v) = enc.from_rgb(&rgb);
            write_plane(frame, 0, &to_u8(&y))?;
            write_plane(frame, 1, &to_u8(&siting.downsample(&u)))?;
            write_plane(frame, 2, &to_u8(&siting.downsample(&v)))
        }
        Layout::Nv12(enc, siting) => {
            let (y, u, v) = enc.from_rgb(&rgb);
            let uv = Tensor::stack(&[siting.downsample(&u), siting.downsample(&v)], 2);
            let (ch, cw) = (uv.size()[0], uv.size()[1]);
            write_plane(frame, 0, &to_u8(&y))?;
            write_plane(frame, 1, &to_u8(&uv.view([ch, cw * 2])))
        }
    }
}

/// Alpha [1, 1, H, W] → [1, 1, sH, sW], bicubic, clamped.
pub fn upscale_alpha(alpha: &Tensor, scale: i64) -> Tensor {
    let (h, w) = (alpha.size()[2], alpha.size()[3]);
    alpha
        .upsample_bicubic2d([h * scale, w * scale], false, None, None)
        .clamp(0.0, 1.0)
}
