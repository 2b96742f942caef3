//! Y'CbCr ↔ R'G'B' on tensors, so conversion runs where the model runs (GPU or CPU).
//!
//! Planes are float tensors holding 8-bit code values (0..=255). RGB is [N, 3, H, W] in [0, 1].

use tch::Tensor;

/// A Y'CbCr encoding: luma coefficients of the matrix and the quantisation range.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct YuvEncoding {
    /// Kr and Kb of the matrix (BT.601: 0.299/0.114, BT.709: 0.2126/0.0722).
    pub kr: f64,
    pub kb: f64,
    /// Full range (0..=255) rather than limited (Y 16..=235, C 16..=240).
    pub full_range: bool,
}

impl YuvEncoding {
    pub const BT601_LIMITED: YuvEncoding = YuvEncoding {
        kr: 0.299,
        kb: 0.114,
        full_range: false,
    };
    /// JFIF's, the Y'CbCr of JPEG files.
    pub const BT601_FULL: YuvEncoding = YuvEncoding {
        kr: 0.299,
        kb: 0.114,
        full_range: true,
    };
    pub const BT709_LIMITED: YuvEncoding = YuvEncoding {
        kr: 0.2126,
        kb: 0.0722,
        full_range: false,
    };

    /// The encoding of video caps; an unknown matrix means BT.601 up to 576 lines and BT.709
    /// above (GStreamer's own defaults), so the element and `train`'s video reader agree.
    pub fn from_video_info(info: &gst_video::VideoInfo) -> anyhow::Result<Self> {
        use gst_video::{VideoColorMatrix, VideoColorRange};
        let colorimetry = info.colorimetry();
        let matrix = match colorimetry.matrix() {
            VideoColorMatrix::Unknown if info.height() <= 576 => VideoColorMatrix::Bt601,
            VideoColorMatrix::Unknown => VideoColorMatrix::Bt709,
            m => m,
        };
        let (kr, kb) = matrix
            .kr_kb()
            .map_err(|_| anyhow::anyhow!("colour matrix {matrix:?} is not a Y'CbCr matrix"))?;
        Ok(YuvEncoding {
            kr,
            kb,
            full_range: colorimetry.range() == VideoColorRange::Range0_255,
        })
    }

    /// (offset, span) of luma and (span) of chroma code values.
    fn quantisation(&self) -> (f64, f64, f64) {
        if self.full_range {
            (0.0, 255.0, 255.0)
        } else {
            (16.0, 219.0, 224.0)
        }
    }

    /// Code values [..., H, W] of Y and of Cb/Cr at the same resolution → RGB [..., 3, H, W].
    pub fn to_rgb(&self, y: &Tensor, cb: &Tensor, cr: &Tensor) -> Tensor {
        let (y_off, y_span, c_span) = self.quantisation();
        let luma = (y - y_off) / y_span;
        let pb = (cb - 128.0) / c_span;
        let pr = (cr - 128.0) / c_span;
        let (kr, kb) = (self.kr, self.kb);
        let kg = 1.0 - kr - kb;
        let r = &luma + &pr * (2.0 * (1.0 - kr));
        let b = &luma + &pb * (2.0 * (1.0 - kb));
        let g = (&luma - &r * kr - &b * kb) / kg;
        Tensor::stack(&[r, g, b], -3)
    }

    /// RGB [..., 3, H, W] (clamped to [0, 1] by the caller) → code values (Y, Cb, Cr), each
    /// [..., H, W], not rounded.
    pub fn from_rgb(&self, rgb: &Tensor) -> (Tensor, Tensor, Tensor) {
        let (y_off, y_span, c_span) = self.quantisation();
        let (kr, kb) = (self.kr, self.kb);
        let r = rgb.select(-3, 0);
        let g = rgb.select(-3, 1);
        let b = rgb.select(-3, 2);
        let luma = &r * kr + &g * (1.0 - kr - kb) + &b * kb;
        let pb = (&b - &luma) / (2.0 * (1.0 - kb));
        let pr = (&r - &luma) / (2.0 * (1.0 - kr));
        (
            luma * y_span + y_off,
            pb * c_span + 128.0,
            pr * c_span + 128.0,
        )
    }
}

/// 4:2:0 chroma plane [h/2, w/2] → [h, w], bilinear with centred siting.
pub fn upsample_chroma(plane: &Tensor, height: i64, width: i64) -> Tensor {
    let (ch, cw) = (plane.size()[0], plane.size()[1]);
    plane
        .view([1, 1, ch, cw])
        .upsample_bilinear2d([ch * 2, cw * 2], false, None, None)
        .view([ch * 2, cw * 2])
        .narrow(0, 0, height)
        .narrow(1, 0, width)
}

/// Full-resolution chroma [h, w] → [ceil(h/2), ceil(w/2)] by averaging 2×2 blocks (an odd
/// last row or column averages what exists).
pub fn downsample_chroma(plane: &Tensor) -> Tensor {
    let (h, w) = (plane.size()[0], plane.size()[1]);
    plane
        .view([1, 1, h, w])
        .avg_pool2d([2, 2], [2, 2], [0, 0], true, false, None::<i64>)
        .view([(h + 1) / 2, (w + 1) / 2])
}

/// Where 4:2:0 chroma samples sit relative to luma, per axis: centred between two luma
/// samples, or co-sited with the first (MPEG-2 and later codecs: co-sited horizontally).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChromaSiting {
    pub h_cosited: bool,
    pub v_cosited: bool,
}

impl ChromaSiting {
    pub const CENTRED: ChromaSiting = ChromaSiting {
        h_cosited: false,
        v_cosited: false,
    };
    pub const MPEG2: ChromaSiting = ChromaSiting {
        h_cosited: true,
        v_cosited: false,
    };

    /// The siting of video caps; without one, GStreamer's defaults: centred up to 576 lines,
    /// MPEG-2 above.
    pub fn from_video_info(info: &gst_video::VideoInfo) -> Self {
        use gst_video::VideoChromaSite;
        let site = info.chroma_site();
        if site.is_empty() {
            return if info.height() > 576 {
                Self::MPEG2
            } else {
                Self::CENTRED
            };
        }
        ChromaSiting {
            h_cosited: site.contains(VideoChromaSite::H_COSITED),
            v_cosited: site.contains(VideoChromaSite::V_COSITED),
        }
    }

    /// 4:2:0 chroma plane [h/2, w/2] → [h, w], linear between the samples where they sit.
    pub fn upsample(&self, plane: &Tensor, height: i64, width: i64) -> Tensor {
        let rows = upsample_axis(plane, 0, self.v_cosited).narrow(0, 0, height);
        upsample_axis(&rows, 1, self.h_cosited).narrow(1, 0, width)
    }

    /// 4:2:2 chroma plane [h, w/2] → [h, w].
    pub fn upsample_width(&self, plane: &Tensor, width: i64) -> Tensor {
        upsample_axis(plane, 1, self.h_cosited).narrow(1, 0, width)
    }

    /// Full-resolution chroma [h, w] → [h, ceil(w/2)], as [`Self::downsample`] across.
    pub fn downsample_width(&self, plane: &Tensor) -> Tensor {
        downsample_axis(plane, 1, self.h_cosited)
    }

    /// Full-resolution chroma [h, w] → [ceil(h/2), ceil(w/2)]: each sample filters the luma
    /// positions around where it sits (a 2-tap average when centred, 1-2-1 when co-sited).
    pub fn downsample(&self, plane: &Tensor) -> Tensor {
        let rows = downsample_axis(plane, 0, self.v_cosited);
        downsample_axis(&rows, 1, self.h_cosited)
    }
}

/// The samples along `dim` shifted by one towards higher (`1`) or lower (`-1`) indices'
/// neighbour, the edge sample repeated.
fn neighbour(t: &Tensor, dim: i64, step: i64) -> Tensor {
    let n = t.size()[dim as usize];
    if n == 1 {
        return t.shallow_clone();
    }
    if step > 0 {
        Tensor::cat(&[t.narrow(dim, 1, n - 1), t.narrow(dim, n - 1, 1)], dim)
    } else {
        Tensor::cat(&[t.narrow(dim, 0, 1), t.narrow(dim, 0, n - 1)], dim)
    }
}

/// Doubles a 2-D plane along `dim` (0 or 1) by linear interpolation.
fn upsample_axis(plane: &Tensor, dim: i64, cosited: bool) -> Tensor {
    let next = neighbour(plane, dim, 1);
    let (even, odd) = if cosited {
        // Luma 2i is on sample i, luma 2i+1 halfway to the next.
        (plane.shallow_clone(), (plane + &next) * 0.5)
    } else {
        // Luma 2i is a quarter before sample i, luma 2i+1 a quarter after.
        let previous = neighbour(plane, dim, -1);
        (plane * 0.75 + previous * 0.25, plane * 0.75 + next * 0.25)
    };
    let mut size = plane.size();
    size[dim as usize] *= 2;
    Tensor::stack(&[even, odd], dim + 1).reshape(&size)
}

/// Halves a 2-D plane along `dim` (an odd last sample repeated).
fn downsample_axis(plane: &Tensor, dim: i64, cosited: bool) -> Tensor {
    let n = plane.size()[dim as usize];
    let padded = if n % 2 == 1 {
        Tensor::cat(&[plane.shallow_clone(), plane.narrow(dim, n - 1, 1)], dim)
    } else {
        plane.shallow_clone()
    };
    let half = (n + 1) / 2;
    let mut pairs = padded.size();
    pairs[dim as usize] = half;
    pairs.insert(dim as usize + 1, 2);
    let pairs = padded.reshape(&pairs);
    let even = pairs.select(dim + 1, 0);
    let odd = pairs.select(dim + 1, 1);
    if cosited {
        let previous_odd =
            Tensor::cat(&[even.narrow(dim, 0, 1), odd.narrow(dim, 0, half - 1)], dim);
        previous_odd * 0.25 + even * 0.5 + odd * 0.25
    } else {
        (even + odd) * 0.5
    }
}
