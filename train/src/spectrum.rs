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

/// Upper edges of the radial bands of [`LinearResponse::band_gains`], in cycles per pixel (the
/// corners beyond Nyquist left out).
pub const RESPONSE_BANDS: [f64; 4] = [0.125, 0.25, 0.375, 0.5];

/// What a degradation does to the Y of images it is given, read from aligned pairs of its
/// input and output: the sums over [`REPORT_TILE`]² tiles of the input's power, the output's
/// power and their cross spectrum. The linear response H(f) = Σ O·S̄ / Σ |S|² is the blur (and
/// a codec's mean smoothing) as a pair shows it; noise, independent of the input, averages out
/// of it and stays in what H does not explain, Σ |O|² − |Σ O·S̄|² / Σ |S|². Unlike an unpaired
/// spectrum, neither mixes blur with noise or with what the photos show.
pub struct LinearResponse {
    input_power: Tensor,
    output_power: Tensor,
    cross: Tensor,
    tiles: i64,
}

impl Default for LinearResponse {
    fn default() -> Self {
        let zeros = || Tensor::zeros([REPORT_TILE, REPORT_TILE], (Kind::Double, tch::Device::Cpu));
        LinearResponse {
            input_power: zeros(),
            output_power: zeros(),
            cross: zeros().to_kind(Kind::ComplexDouble),
            tiles: 0,
        }
    }
}

impl LinearResponse {
    /// Adds the tiles of one pair of `[3, H, W]` images in [0, 1], `output` the degradation of
    /// `input` aligned pixel for pixel. An image with no whole tile adds nothing.
    pub fn add(&mut self, input: &Tensor, output: &Tensor) -> Result<()> {
        ensure!(
            input.size() == output.size(),
            "a degradation's input {:?} and output {:?} differ in size",
            input.size(),
            output.size()
        );
        let size = input.size();
        if size.len() == 3 && (size[1] < REPORT_TILE || size[2] < REPORT_TILE) {
            return Ok(());
        }
        let spectrum = |image: &Tensor| -> Result<Tensor> {
            let tiles = y_tiles(
                &image.to_device(tch::Device::Cpu).to_kind(Kind::Double),
                REPORT_TILE,
            )? * 255.0;
            let window = hann(REPORT_TILE, &tiles).to_kind(Kind::Double);
            let centred = &tiles - tiles.mean_dim(&[2i64, 3][..], true, Kind::Double);
            Ok((centred * window)
                .squeeze_dim(1)
                .fft_fft2(None::<&[i64]>, [-2i64, -1], "backward"))
        };
        let (s, o) = (spectrum(input)?, spectrum(output)?);
        self.input_power += s.abs().square().sum_dim_intlist(0, false, Kind::Double);
        self.output_power += o.abs().square().sum_dim_intlist(0, false, Kind::Double);
        self.cross += (&o * s.conj()).sum_dim_intlist(0, false, Kind::ComplexDouble);
        self.tiles += s.size()[0];
        Ok(())
    }

    /// Tiles added so far.
    pub fn tiles(&self) -> i64 {
        self.tiles
    }

    /// |H(f)| `[p, p]` (unshifted FFT layout), 0 at the zero frequency, which the tiles' means
    /// remove.
    pub fn gain(&self) -> Tensor {
        let input = self.input_power.clamp_min(1e-12);
        (self.cross.abs() / input).masked_fill(&self.zero_frequency(), 0.0)
    }

    /// The mean |H| over the bins of each of [`RESPONSE_BANDS`] (the zero frequency left out).
    pub fn band_gains(&self) -> Vec<f64> {
        let gain = self.gain();
        let f = radial_frequency(REPORT_TILE, &gain).to_kind(Kind::Double);
        let mut lower = 0.0;
        RESPONSE_BANDS
            .iter()
            .map(|&upper| {
                let band = f.gt(lower).logical_and(&f.le(upper + 1e-9));
                lower = upper;
                gain.masked_select(&band)
                    .mean(Kind::Double)
                    .double_value(&[])
            })
            .collect()
    }

    /// σ in code values of the part of the output no linear filter of the input explains:
    /// noise, a codec's errors, and aliasing the input's own downscale does not share.
    pub fn unexplained_sigma(&self) -> f64 {
        let explained = self.cross.abs().square() / self.input_power.clamp_min(1e-12);
        let residual = (&self.output_power - explained).clamp_min(0.0);
        (residual.mean(Kind::Double).double_value(&[]) / self.normaliser()).sqrt()
    }

    /// PSNR in dB between what this degradation's |H| and `other`'s make of this one's
    /// inputs: Σ_f (|H| − |H_other|)² times the inputs' mean power spectrum, the mean squared
    /// difference per pixel of the two blurred images with the phase (a shift the scores search
    /// out) left aside. Infinite for equal responses.
    pub fn psnr_against(&self, other: &LinearResponse) -> f64 {
        let difference = (self.gain() - other.gain()).square();
        let mse = (difference * &self.input_power)
            .mean(Kind::Double)
            .double_value(&[])
            / self.normaliser();
        10.0 * (255.0 * 255.0 / mse).log10()
    }

    /// The same PSNR against the identity (H = 1): how far the degradation is from none.
    pub fn psnr_against_identity(&self) -> f64 {
        let identity = LinearResponse {
            input_power: self.input_power.shallow_clone(),
            output_power: self.input_power.shallow_clone(),
            cross: self.input_power.to_kind(Kind::ComplexDouble),
            tiles: self.tiles,
        };
        self.psnr_against(&identity)
    }

    /// Tiles times the window's energy: turns summed |FFT|² into a per-pixel power, as
    /// [`mean_power_spectrum`] does.
    fn normaliser(&self) -> f64 {
        let window = hann(REPORT_TILE, &self.input_power).to_kind(Kind::Double);
        self.tiles.max(1) as f64 * window.square().sum(Kind::Double).double_value(&[])
    }

    fn zero_frequency(&self) -> Tensor {
        radial_frequency(REPORT_TILE, &self.input_power).eq(0.0)
    }
}
