//! Image quality metrics: PSNR, SSIM, luma, and the NTIRE scoring protocol (borders ignored,
//! best integer shift).
//!
//! Images are `[C, H, W]` float tensors in [0, 1] (peak 1). Everything is computed in float64.

use anyhow::{ensure, Result};
use gstcyclesr::model::color::YuvEncoding;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// PSNR in dB with peak 1; infinite for identical images.
///
/// # Panics
/// If the shapes differ (as every libtorch shape error).
pub fn psnr(a: &Tensor, b: &Tensor) -> f64 {
    let mse = (a.to_kind(Kind::Double) - b.to_kind(Kind::Double))
        .square()
        .mean(Kind::Double)
        .double_value(&[]);
    psnr_from_mse(mse)
}

fn psnr_from_mse(mse: f64) -> f64 {
    if mse <= 0.0 {
        f64::INFINITY
    } else {
        -10.0 * mse.log10()
    }
}

/// Side and standard deviation of SSIM's Gaussian window (Wang et al. 2004).
const SSIM_WINDOW: i64 = 11;
const SSIM_SIGMA: f64 = 1.5;

/// Normalised 1-D Gaussian of `size` taps (f64).
pub(crate) fn gaussian_1d(size: i64, sigma: f64) -> Tensor {
    let centre = (size - 1) as f64 / 2.0;
    let taps: Vec<f64> = (0..size)
        .map(|i| (-((i as f64 - centre).powi(2)) / (2.0 * sigma * sigma)).exp())
        .collect();
    let total: f64 = taps.iter().sum();
    Tensor::from_slice(&taps.iter().map(|t| t / total).collect::<Vec<_>>())
}

/// SSIM of Wang et al.: 11×11 Gaussian window (σ 1.5), K1 0.01, K2 0.03, peak 1, the map over
/// the valid region (no padding), computed per channel and averaged. A single-channel input
/// (e.g. from [`rgb_to_y`]) gives SSIM on that channel. Images smaller than 11 pixels use a
/// window as large as fits.
///
/// # Panics
/// If the shapes differ.
pub fn ssim(a: &Tensor, b: &Tensor) -> f64 {
    let size = a.size();
    let (h, w) = (size[size.len() - 2], size[size.len() - 1]);
    // Channels become a batch of single-channel images.
    let x = a.to_kind(Kind::Double).reshape([-1, 1, h, w]);
    let y = b.to_kind(Kind::Double).reshape([-1, 1, h, w]);
    let channels = x.size()[0];
    let k = SSIM_WINDOW.min(h).min(w);
    let g = gaussian_1d(k, SSIM_SIGMA).to_device(x.device());
    // The five local moments in one separable filtering pass.
    let moments = Tensor::cat(&[&x, &y, &x.square(), &y.square(), &(&x * &y)], 0)
        .conv2d(
            &g.view([1, 1, k, 1]),
            None::<Tensor>,
            [1, 1],
            [0, 0],
            [1, 1],
            1,
        )
        .conv2d(
            &g.view([1, 1, 1, k]),
            None::<Tensor>,
            [1, 1],
            [0, 0],
            [1, 1],
            1,
        );
    let moment = |i: i64| moments.narrow(0, i * channels, channels);
    let (mu_x, mu_y) = (moment(0), moment(1));
    let (mu_xx, mu_yy, mu_xy) = (mu_x.square(), mu_y.square(), &mu_x * &mu_y);
    let var_x = moment(2) - &mu_xx;
    let var_y = moment(3) - &mu_yy;
    let cov = moment(4) - &mu_xy;
    let (c1, c2) = (0.01f64.powi(2), 0.03f64.powi(2));
    let map =
        ((mu_xy * 2.0 + c1) * (cov * 2.0 + c2)) / ((mu_xx + mu_yy + c1) * (var_x + var_y + c2));
    // Every channel's map has the same size, so the global mean is the mean of channel means.
    map.mean(Kind::Double).double_value(&[])
}

/// Luma of RGB `[..., 3, H, W]` in [0, 1] as MATLAB's `rgb2ycbcr` (BT.601, limited range:
/// Y = 16 + 65.481 R + 128.553 G + 24.966 B), divided by 255: `[..., 1, H, W]` with values in
/// [16/255, 235/255]. This is the Y on which SR papers report PSNR/SSIM.
pub fn rgb_to_y(img: &Tensor) -> Tensor {
    let (y, _, _) = YuvEncoding::BT601_LIMITED.from_rgb(&img.to_kind(Kind::Double));
    (y / 255.0).unsqueeze(-3)
}

/// Immerkær's 3×3 operator `[1, 1, 3, 3]`, the difference of two Laplacians (the outer product
/// of [1, −2, 1] with itself): zero where content is linear along either axis, 36σ² of variance
/// on white noise of σ.
pub fn immerkaer_operator(options: (Kind, tch::Device)) -> Tensor {
    Tensor::from_slice(&[1.0f64, -2.0, 1.0, -2.0, 4.0, -2.0, 1.0, -2.0, 1.0])
        .to_kind(options.0)
        .to_device(options.1)
        .view([1, 1, 3, 3])
}

/// The principal axes of a 2-D covariance `(xx, yy, xy)`: its variances along them (major,
/// minor) and the major axis's angle in degrees counter-clockwise from x (y up).
pub(crate) fn principal_axes(xx: f64, yy: f64, xy: f64) -> (f64, f64, f64) {
    let mean = (xx + yy) / 2.0;
    let spread = (((xx - yy) / 2.0).powi(2) + xy * xy).sqrt();
    let angle = 0.5 * (2.0 * xy).atan2(xx - yy);
    (mean + spread, mean - spread, angle.to_degrees())
}

/// Standard deviation of an image's noise on Y, in 8-bit code values, by Immerkær's method
/// ("Fast noise variance estimation", 1996): the mean absolute response to the difference of two
/// Laplacians, which cancels smooth image content. Edges and fine texture add to it, so it
/// compares images of the same content (e.g. a clean image and degraded versions of it).
/// `[3, H, W]` in [0, 1], at least 3×3.
pub fn noise_sigma(img: &Tensor) -> f64 {
    let y = rgb_to_y(img).unsqueeze(0) * 255.0;
    let kernel = immerkaer_operator((Kind::Double, y.device()));
    let response = y.conv2d(&kernel, None::<Tensor>, [1, 1], [0, 0], [1, 1], 1);
    let mean_abs = response.abs().mean(Kind::Double).double_value(&[]);
    (std::f64::consts::PI / 2.0).sqrt() * mean_abs / 6.0
}

/// NTIRE-style scoring of an SR output against its HR ground truth.
///
/// LR inputs of realistic benchmarks are blurred and shifted, so the output is compared at every
/// integer shift `(dy, dx)` in `[-max_shift, max_shift]²` (output pixel `(y + dy, x + dx)`
/// against HR pixel `(y, x)`), and the shift with the best PSNR on Y is kept. Every shift is
/// compared on the same HR region: the HR image minus `border + max_shift` pixels on each side
/// (so every shifted window stays inside the output, and the PSNRs compare like with like),
/// reduced to its centre `crop × crop` square when `crop` is set. If the output and HR sizes
/// differ (an HR size that is not a multiple of the scale), their common top-left part is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NtireProtocol {
    pub border: i64,
    pub max_shift: i64,
    pub crop: Option<i64>,
}

/// Scores of one image at its best shift.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Score {
    pub psnr_rgb: f64,
    pub ssim_rgb: f64,
    pub psnr_y: f64,
    pub ssim_y: f64,
    /// `(dy, dx)`: output pixel `(y + dy, x + dx)` matches HR pixel `(y, x)`.
    pub shift: (i64, i64),
}

impl NtireProtocol {
    /// Scores `sr` against `hr` (both `[3, H, W]` in [0, 1], on the same device). Errors when
    /// the images are not RGB or too small for the border and shift range.
    pub fn score(&self, sr: &Tensor, hr: &Tensor) -> Result<Score> {
        ensure!(
            self.border >= 0 && self.max_shift >= 0,
            "border {} and max shift {} must not be negative",
            self.border,
            self.max_shift
        );
        if let Some(crop) = self.crop {
            ensure!(crop > 0, "crop must be positive, got {crop}");
        }
        let (sr_size, hr_size) = (sr.size(), hr.size());
        ensure!(
            sr_size.len() == 3 && sr_size[0] == 3 && hr_size.len() == 3 && hr_size[0] == 3,
            "expected RGB images [3, H, W], got {sr_size:?} and {hr_size:?}"
        );
        let (h, w) = (sr_size[1].min(hr_size[1]), sr_size[2].min(hr_size[2]));
        let margin = self.border + self.max_shift;
        let (mut rh, mut rw) = (h - 2 * margin, w - 2 * margin);
        ensure!(
            rh > 0 && rw > 0,
            "a {w}x{h} image is too small for border {} and max shift {}",
            self.border,
            self.max_shift
        );
        let (mut y0, mut x0) = (margin, margin);
        if let Some(crop) = self.crop {
            if crop < rh {
                y0 += (rh - crop) / 2;
                rh = crop;
            }
            if crop < rw {
                x0 += (rw - crop) / 2;
                rw = crop;
            }
        }
        let sr = sr.to_kind(Kind::Double);
        let hr_region = hr.to_kind(Kind::Double).narrow(1, y0, rh).narrow(2, x0, rw);
        let (dy, dx) = if self.max_shift == 0 {
            (0, 0)
        } else {
            let s = self.max_shift;
            let window = sr
                .narrow(1, y0 - s, rh + 2 * s)
                .narrow(2, x0 - s, rw + 2 * s);
            best_shift(
                &rgb_to_y(&window).squeeze_dim(0),
                &rgb_to_y(&hr_region).squeeze_dim(0),
                s,
            )
        };
        let sr_region = sr.narrow(1, y0 + dy, rh).narrow(2, x0 + dx, rw);
        let (sr_y, hr_y) = (rgb_to_y(&sr_region), rgb_to_y(&hr_region));
        Ok(Score {
            psnr_rgb: psnr(&sr_region, &hr_region),
            ssim_rgb: ssim(&sr_region, &hr_region),
            psnr_y: psnr(&sr_y, &hr_y),
            ssim_y: ssim(&sr_y, &hr_y),
            shift: (dy, dx),
        })
    }
}

/// The shift `(dy, dx)` in `[-s, s]²` minimising the squared error between `target` `[h, w]`
/// and the `h × w` sub-window of `window` `[h + 2s, w + 2s]` at offset `(s + dy, s + dx)`.
///
/// Every shift at once: SSE = Σ window² (box sums, from an integral image) − 2 · correlation
/// (one FFT product) + Σ target², instead of one pass over the region per shift.
fn best_shift(window: &Tensor, target: &Tensor, s: i64) -> (i64, i64) {
    let (wh, ww) = (window.size()[0], window.size()[1]);
    let (h, w) = (target.size()[0], target.size()[1]);
    let n = 2 * s + 1;
    // Zero-padded to the window's size, the target's circular correlation has no wrap-around
    // for offsets up to 2s.
    let f_window = window.fft_rfft2([wh, ww].as_slice(), [0, 1], "backward");
    let f_target = target.fft_rfft2([wh, ww].as_slice(), [0, 1], "backward");
    let correlation = (f_window * f_target.conj())
        .fft_irfft2([wh, ww].as_slice(), [0, 1], "backward")
        .narrow(0, 0, n)
        .narrow(1, 0, n);
    let integral = window
        .square()
        .cumsum(0, Kind::Double)
        .cumsum(1, Kind::Double)
        .pad([1, 0, 1, 0], "constant", 0.0);
    let corner = |y: i64, x: i64| integral.narrow(0, y, n).narrow(1, x, n);
    let box_sums = corner(h, w) - corner(0, w) - corner(h, 0) + corner(0, 0);
    let sse = box_sums - correlation * 2.0 + target.square().sum(Kind::Double);
    let best = sse.argmin(None, false).int64_value(&[]);
    (best / n - s, best % n - s)
}
