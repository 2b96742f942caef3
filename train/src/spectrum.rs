//! Power spectra of image patches: what a degradation does to each spatial frequency.
//!
//! Blur multiplies a natural image's power spectrum by |K(f)|², noise adds its own spectrum, a
//! codec removes high frequencies and adds block edges. Comparing the mean spectrum of real LR
//! patches with that of synthetic (bicubic-downscaled) ones shows all of it without pairs. The
//! explicit degradation model fits its kernel on these spectra, and the stage-1 report measures
//! how close G_s2r brings the synthetic spectrum to the real one.

use anyhow::{ensure, Result};
use tch::{Kind, Tensor};

use crate::metrics::rgb_to_y;

/// Lower edge of the high band, in cycles per pixel (Nyquist is 0.5): the octave below Nyquist
/// and the corners above it, where blur removes energy and noise adds it.
pub const HIGH_BAND_START: f64 = 0.25;

/// The separable Hann window of a `p × p` patch, `[p, p]`, on `like`'s device.
fn hann(p: i64, like: &Tensor) -> Tensor {
    let n = Tensor::arange(p, (Kind::Float, like.device()));
    let w = (n * (2.0 * std::f64::consts::PI / p as f64)).cos() * -0.5 + 0.5;
    w.unsqueeze(1) * w.unsqueeze(0)
}

/// The mean power spectrum `[p, p]` (unshifted FFT layout) of `[N, 1, p, p]` patches: each
/// patch minus its mean, Hann-windowed, |FFT|², averaged over patches and normalised by the
/// window's energy, so that white noise of variance σ² has a flat spectrum of about σ².
/// Differentiable (the explicit degradation model fits through it).
pub fn mean_power_spectrum(patches: &Tensor) -> Tensor {
    let p = patches.size()[3];
    let window = hann(p, patches);
    let energy = window.square().sum(Kind::Float);
    let centred = patches - patches.mean_dim(&[2i64, 3][..], true, Kind::Float);
    let spectrum = (centred * &window).fft_fft2(None::<&[i64]>, [-2i64, -1], "backward");
    spectrum
        .abs()
        .square()
        .mean_dim(&[0i64, 1][..], false, Kind::Float)
        / energy
}

/// Radial frequency in cycles per pixel of every bin of a `[p, p]` FFT, on `like`'s device.
pub fn radial_frequency(p: i64, like: &Tensor) -> Tensor {
    let f = Tensor::fft_fftfreq(p, 1.0, (Kind::Float, like.device()));
    (f.unsqueeze(1).square() + f.unsqueeze(0).square()).sqrt()
}

/// Non-overlapping `tile × tile` Y patches `[N, 1, tile, tile]` of a `[3, H, W]` image in [0, 1].
pub fn y_tiles(image: &Tensor, tile: i64) -> Result<Tensor> {
    let size = image.size();
    ensure!(
        size.len() == 3 && size[0] == 3,
        "expected an RGB image [3, H, W], got shape {size:?}"
    );
    let (rows, cols) = (size[1] / tile, size[2] / tile);
    ensure!(
        rows > 0 && cols > 0,
        "a {}x{} image has no {tile}x{tile} tile",
        size[2],
        size[1]
    );
    let y = rgb_to_y(&image.narrow(1, 0, rows * tile).narrow(2, 0, cols * tile));
    Ok(y.view([rows, tile, cols, tile])
        .permute([0, 2, 1, 3])
        .reshape([rows * cols, 1, tile, tile]))
}

/// Tile side of [`high_band_energy`], in pixels.
pub const REPORT_TILE: i64 = 32;

/// Mean power per frequency bin of an image's Y channel (code values², so white noise of σ
/// code values gives about σ²) over the high band (radial frequency ≥ [`HIGH_BAND_START`]),
/// measured on non-overlapping [`REPORT_TILE`]² tiles (smaller ones on smaller images).
pub fn high_band_energy(image: &Tensor) -> Result<f64> {
    let size = image.size();
    let tile = REPORT_TILE
        .min(size[size.len() - 1])
        .min(size[size.len() - 2]);
    ensure!(
        tile >= 4,
        "a {size:?} image is too small for a power spectrum"
    );
    let tiles = y_tiles(&image.to_kind(Kind::Float), tile)? * 255.0;
    let spectrum = mean_power_spectrum(&tiles);
    let band = radial_frequency(tile, &spectrum).ge(HIGH_BAND_START);
    Ok(spectrum
        .masked_select(&band)
        .mean(Kind::Double)
        .double_value(&[]))
}
