//! Video frames ↔ tensors for every format the element accepts.
//!
//! Planes are uploaded as 8- or 16-bit tensors and converted to RGB on the model's device;
//! the result goes back the same way, at the format's bit depth. Alpha does not pass through
//! the network: it is upscaled bicubically on its own.

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
    VideoFormat::Y444,
    VideoFormat::Yuy2,
    VideoFormat::I42010le,
    VideoFormat::P01010le,
];

/// How Y'CbCr samples are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Depth {
    /// One byte per sample.
    Eight,
    /// 10 bits in the low bits of a little-endian 16-bit word (I420_10LE).
    TenLow,
    /// 10 bits in the high bits of a little-endian 16-bit word (P010_10LE).
    TenHigh,
}

impl Depth {
    fn bytes(self) -> i64 {
        match self {
            Depth::Eight => 1,
            Depth::TenLow | Depth::TenHigh => 2,
        }
    }
}

/// Where the chroma samples are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum YuvPlanes {
    /// Three planes Y, U, V; chroma subsampled 2×2 (4:2:0) or not at all (4:4:4).
    Planar { subsampled: bool },
    /// Y plane then one plane of interleaved U, V, 2×2-subsampled (NV12, P010).
    SemiPlanar,
    /// One plane of Y0 U Y1 V: chroma halved horizontally (YUY2, 4:2:2).
    Yuy2,
}

/// How one negotiated format maps onto planes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Layout {
    /// One interleaved plane: bytes per pixel, index of R, G and B, and of alpha if kept.
    Packed {
        bytes: i64,
        rgb: [i64; 3],
        alpha: Option<i64>,
    },
    Yuv {
        planes: YuvPlanes,
        depth: Depth,
        encoding: YuvEncoding,
        siting: ChromaSiting,
    },
}

impl Layout {
    pub fn from_info(info: &VideoInfo) -> Result<Self> {
        let packed = |bytes, rgb, alpha| Ok(Layout::Packed { bytes, rgb, alpha });
        let yuv = |planes, depth| {
            Ok(Layout::Yuv {
                planes,
                depth,
                encoding: YuvEncoding::from_video_info(info)?,
                siting: ChromaSiting::from_video_info(info),
            })
        };
        let i420 = YuvPlanes::Planar { subsampled: true };
        match info.format() {
            VideoFormat::Rgb => packed(3, [0, 1, 2], None),
            VideoFormat::Bgr => packed(3, [2, 1, 0], None),
            VideoFormat::Rgbx => packed(4, [0, 1, 2], None),
            VideoFormat::Bgrx => packed(4, [2, 1, 0], None),
            VideoFormat::Rgba => packed(4, [0, 1, 2], Some(3)),
            VideoFormat::Bgra => packed(4, [2, 1, 0], Some(3)),
            VideoFormat::I420 => yuv(i420, Depth::Eight),
            VideoFormat::Nv12 => yuv(YuvPlanes::SemiPlanar, Depth::Eight),
            VideoFormat::Y444 => yuv(YuvPlanes::Planar { subsampled: false }, Depth::Eight),
            VideoFormat::Yuy2 => yuv(YuvPlanes::Yuy2, Depth::Eight),
            VideoFormat::I42010le => yuv(i420, Depth::TenLow),
            VideoFormat::P01010le => yuv(YuvPlanes::SemiPlanar, Depth::TenHigh),
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

/// Samples of plane `index` as float code values on the 8-bit scale (10-bit samples keep
/// their precision as fractions): [rows, samples].
fn plane_values(
    frame: &VideoFrameRef<&gst::BufferRef>,
    index: u32,
    rows: i64,
    samples: i64,
    depth: Depth,
    device: Device,
) -> Result<Tensor> {
    let bytes = plane_tensor(frame, index, rows, samples * depth.bytes(), device)?;
    Ok(match depth {
        Depth::Eight => bytes.to_kind(Kind::Float),
        Depth::TenLow | Depth::TenHigh => {
            // Little-endian words, read as signed 16-bit and brought back to 0..65535.
            let words = bytes.view_dtype(Kind::Int16).to_kind(Kind::Int);
            let words = (words + 65536).remainder(65536).to_kind(Kind::Float);
            if depth == Depth::TenLow {
                words / 4.0
            } else {
                words / 256.0
            }
        }
    })
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
        Layout::Yuv {
            planes,
            depth,
            encoding,
            siting,
        } => {
            let (y, u, v) = match planes {
                YuvPlanes::Planar { subsampled } => {
                    let y = plane_values(frame, 0, h, w, depth, device)?;
                    let (rows, samples) = if subsampled { (ch, cw) } else { (h, w) };
                    let u = plane_values(frame, 1, rows, samples, depth, device)?;
                    let v = plane_values(frame, 2, rows, samples, depth, device)?;
                    if subsampled {
                        (y, siting.upsample(&u, h, w), siting.upsample(&v, h, w))
                    } else {
                        (y, u, v)
                    }
                }
                YuvPlanes::SemiPlanar => {
                    let y = plane_values(frame, 0, h, w, depth, device)?;
                    let uv = plane_values(frame, 1, ch, cw * 2, depth, device)?.view([ch, cw, 2]);
                    let u = siting.upsample(&uv.select(2, 0), h, w);
                    let v = siting.upsample(&uv.select(2, 1), h, w);
                    (y, u, v)
                }
                YuvPlanes::Yuy2 => {
                    let yuyv = plane_values(frame, 0, h, cw * 4, depth, device)?.view([h, cw, 4]);
                    let y = Tensor::stack(&[yuyv.select(2, 0), yuyv.select(2, 2)], 2)
                        .reshape([h, cw * 2])
                        .narrow(1, 0, w);
                    let u = siting.upsample_width(&yuyv.select(2, 1), w);
                    let v = siting.upsample_width(&yuyv.select(2, 3), w);
                    (y, u, v)
                }
            };
            Ok((
                encoding.to_rgb(&y, &u, &v).unsqueeze(0).clamp(0.0, 1.0),
                None,
            ))
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

/// Float code values on the 8-bit scale → the samples of `depth`, as the bytes of a plane's
/// rows: [rows, samples × bytes per sample] u8.
fn plane_bytes(values: &Tensor, depth: Depth) -> Tensor {
    match depth {
        Depth::Eight => to_u8(values),
        Depth::TenLow | Depth::TenHigh => {
            let ten = (values * 4.0).round().clamp(0.0, 1023.0).to_kind(Kind::Int);
            let words = if depth == Depth::TenHigh {
                ten * 64
            } else {
                ten
            };
            // Stored as signed 16-bit, whose bytes are the little-endian word.
            let signed = &words - words.ge(32768).to_kind(Kind::Int) * 65536;
            signed
                .to_kind(Kind::Int16)
                .contiguous()
                .view_dtype(Kind::Uint8)
        }
    }
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
        Layout::Yuv {
            planes,
            depth,
            encoding,
            siting,
        } => {
            let (y, u, v) = encoding.from_rgb(&rgb);
            match planes {
                YuvPlanes::Planar { subsampled } => {
                    let (u, v) = if subsampled {
                        (siting.downsample(&u), siting.downsample(&v))
                    } else {
                        (u, v)
                    };
                    write_plane(frame, 0, &plane_bytes(&y, depth))?;
                    write_plane(frame, 1, &plane_bytes(&u, depth))?;
                    write_plane(frame, 2, &plane_bytes(&v, depth))
                }
                YuvPlanes::SemiPlanar => {
                    let uv = Tensor::stack(&[siting.downsample(&u), siting.downsample(&v)], 2);
                    let (ch, cw) = (uv.size()[0], uv.size()[1]);
                    write_plane(frame, 0, &plane_bytes(&y, depth))?;
                    write_plane(frame, 1, &plane_bytes(&uv.view([ch, cw * 2]), depth))
                }
                YuvPlanes::Yuy2 => {
                    let (u, v) = (siting.downsample_width(&u), siting.downsample_width(&v));
                    let cw = u.size()[1];
                    // An odd last pixel pairs with a copy of itself.
                    let y = if w % 2 == 1 {
                        Tensor::cat(&[y.shallow_clone(), y.narrow(1, w - 1, 1)], 1)
                    } else {
                        y
                    }
                    .view([h, cw, 2]);
                    let yuyv =
                        Tensor::stack(&[y.select(2, 0), u, y.select(2, 1), v], 2).view([h, cw * 4]);
                    write_plane(frame, 0, &plane_bytes(&yuyv, depth))
                }
            }
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
