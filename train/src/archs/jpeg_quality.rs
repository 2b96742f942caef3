//! The JPEG quality footage was compressed at, read from its decoded pixels.
//!
//! JPEG stores each 8×8 block's DCT coefficients as multiples of a step per frequency, the
//! quantisation table: the standard table (ITU-T T.81, Annex K) scaled by the IJG quality
//! formula in libjpeg and in the `image` crate alike. Decoding, colour conversion and 8-bit
//! rounding move the coefficients off those multiples by well under a step, so a decoded
//! frame's luma still lies on that lattice, and the quality whose table it fits best is the
//! one it was made with (a forensic method after Fan and de Queiroz, "Identification of bitmap
//! compression history", IEEE TIP 2003). Stage 1 then compresses at the footage's own
//! qualities instead of a range picked by hand. Footage scaled or filtered after its JPEG, or
//! compressed by another codec (H.264's 4×4 transform and deblocking), shows no lattice, and
//! the estimate says so.

use anyhow::{ensure, Result};
use tch::{Device, Kind, Tensor};

use gstcyclesr::model::color::YuvEncoding;

use crate::data::Rgb8;

/// The luminance table of ITU-T T.81, Annex K.1, row by row (vertical frequency first).
const LUMA_TABLE: [u16; 64] = [
    16, 11, 10, 16, 24, 40, 51, 61, //
    12, 12, 14, 19, 26, 58, 60, 55, //
    14, 13, 16, 24, 40, 57, 69, 56, //
    14, 17, 22, 29, 51, 87, 80, 62, //
    18, 22, 37, 56, 68, 109, 103, 77, //
    24, 35, 55, 64, 81, 104, 113, 92, //
    49, 64, 78, 87, 103, 121, 120, 101, //
    72, 92, 95, 98, 112, 100, 103, 99, //
];

/// Coefficients closer to zero than this take no part: every lattice holds zero, so they
/// would favour the coarsest table.
const MIN_COEFFICIENT: f64 = 1.5;

/// Spread of a decoded coefficient around its lattice point: the RGB rounding and the
/// decoder's own rounding, about 0.35 on luma, with room for clipping.
const LATTICE_SIGMA: f64 = 0.5;

/// Blocks sampled to find the grid's offset, and to estimate the quality at it.
const OFFSET_BLOCKS: i64 = 64;
const QUALITY_BLOCKS: i64 = 2048;

/// Mean log-likelihood gain per coefficient over quality 100 (a step of 1 everywhere, which
/// any image fits) that counts as a lattice, and the coefficients it needs.
const MIN_GAIN: f64 = 0.1;
const MIN_COEFFICIENTS: i64 = 100;

/// What [`estimate_jpeg_quality`] found in one image.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct JpegEstimate {
    /// The IJG quality (1–100) whose luminance table the image fits best.
    pub quality: u8,
    /// The 8×8 grid's origin in the image, `(row, column)`, each in 0..8.
    pub offset: (i64, i64),
    /// Mean log-likelihood gain per coefficient of that table over quality 100.
    pub gain: f64,
}

/// The luminance table of IJG quality `quality` (1–100), as the `image` crate and libjpeg
/// scale it.
pub fn luma_table(quality: u8) -> [u16; 64] {
    let quality = u32::from(quality.clamp(1, 100));
    let scale = if quality < 50 {
        5000 / quality
    } else {
        200 - 2 * quality
    };
    LUMA_TABLE.map(|base| ((u32::from(base) * scale + 50) / 100).clamp(1, 255) as u16)
}

/// The JPEG quality an image was compressed at, from its decoded pixels; None when its luma
/// shows no JPEG lattice at any grid offset (never compressed, compressed by another codec,
/// or scaled since).
pub fn estimate_jpeg_quality(image: &Rgb8) -> Result<Option<JpegEstimate>> {
    ensure!(
        image.height >= 16 && image.width >= 16,
        "a {}x{} image is too small to read its JPEG quality",
        image.width,
        image.height
    );
    let luma = jpeg_luma(image);
    let tables = Tensor::from_slice(
        &(1..=100u8)
            .flat_map(|q| luma_table(q).map(f64::from))
            .collect::<Vec<_>>(),
    )
    .view([100, 1, 64])
    .narrow(2, 1, 63);

    // Frames are compressed whole, so the grid is nearly always at the origin: look there
    // first, and search the other 63 offsets only when it holds no lattice.
    if let Some(estimate) = estimate_at(&luma, (0, 0), &tables)? {
        return Ok(Some(estimate));
    }
    let mut best: Option<(f64, (i64, i64))> = None;
    for offset in (0..64).map(|i| (i / 8, i % 8)).skip(1) {
        let coefficients = block_dct(&luma, offset, OFFSET_BLOCKS);
        if let Some((_, gain)) = best_quality(&coefficients, &tables)? {
            if best.is_none_or(|(g, _)| gain > g) {
                best = Some((gain, offset));
            }
        }
    }
    match best {
        Some((_, offset)) => estimate_at(&luma, offset, &tables),
        None => Ok(None),
    }
}

/// The estimate on the grid at `offset`, if its best table is a lattice.
fn estimate_at(luma: &Tensor, offset: (i64, i64), tables: &Tensor) -> Result<Option<JpegEstimate>> {
    let coefficients = block_dct(luma, offset, QUALITY_BLOCKS);
    Ok(match best_quality(&coefficients, tables)? {
        Some((quality, gain)) if gain >= MIN_GAIN && quality < 100 => Some(JpegEstimate {
            quality,
            offset,
            gain,
        }),
        _ => None,
    })
}

/// JPEG's luma (JFIF's BT.601 full range) minus 128, `[H, W]`, double precision.
fn jpeg_luma(image: &Rgb8) -> Tensor {
    let (luma, _, _) = YuvEncoding::BT601_FULL.from_rgb(&image.to_tensor().to_kind(Kind::Double));
    luma - 128.0
}

/// The orthonormal 8-point DCT-II matrix: JPEG's forward transform is `D · block · Dᵀ`.
fn dct_matrix() -> Tensor {
    let values: Vec<f64> = (0..8)
        .flat_map(|u| {
            (0..8).map(move |x| {
                let c = if u == 0 { (1.0f64 / 8.0).sqrt() } else { 0.5 };
                c * (((2 * x + 1) as f64 * u as f64 * std::f64::consts::PI) / 16.0).cos()
            })
        })
        .collect();
    Tensor::from_slice(&values).view([8, 8])
}

/// The AC coefficients `[N, 63]` of up to `limit` 8×8 blocks of the grid at `offset`, spread
/// evenly over the image.
fn block_dct(luma: &Tensor, offset: (i64, i64), limit: i64) -> Tensor {
    let (h, w) = (luma.size()[0], luma.size()[1]);
    let (rows, cols) = ((h - offset.0) / 8, (w - offset.1) / 8);
    let blocks = luma
        .narrow(0, offset.0, rows * 8)
        .narrow(1, offset.1, cols * 8)
        .view([rows, 8, cols, 8])
        .permute([0, 2, 1, 3])
        .reshape([rows * cols, 8, 8]);
    let count = rows * cols;
    let blocks = if count > limit {
        let index = Tensor::linspace(0.0, (count - 1) as f64, limit, (Kind::Float, Device::Cpu))
            .round()
            .to_kind(Kind::Int64);
        blocks.index_select(0, &index)
    } else {
        blocks
    };
    let d = dct_matrix();
    d.matmul(&blocks)
        .matmul(&d.transpose(0, 1))
        .reshape([-1, 64])
        .narrow(1, 1, 63)
}

/// The quality (1–100) whose table `[100, 1, 63]` the coefficients fit best, and its mean
/// log-likelihood gain per coefficient over quality 100; None when too few coefficients are
/// away from zero.
///
/// Each coefficient away from zero is scored as a point of the lattice of its step q, blurred
/// by the decoding's rounding: log q + log Σ φ(c − n·q) over the three nearest n. A finer
/// lattice holds the data too, but spreads its probability over more points, so the coarsest
/// table the data lies on wins; a table coarser than the true one leaves coefficients between
/// its points.
fn best_quality(coefficients: &Tensor, tables: &Tensor) -> Result<Option<(u8, f64)>> {
    let counted = coefficients.abs().ge(MIN_COEFFICIENT).to_kind(Kind::Double);
    let count = i64::try_from(counted.sum(Kind::Int64))?;
    if count < MIN_COEFFICIENTS {
        return Ok(None);
    }
    let c = coefficients.unsqueeze(0);
    let weights = counted.unsqueeze(0);
    let density = |x: Tensor| (x.square() * (-0.5 / (LATTICE_SIGMA * LATTICE_SIGMA))).exp();
    // Ten tables at a time keeps the [tables, blocks, 63] temporaries near 10 MB each.
    let scores = Tensor::cat(
        &tables
            .split(10, 0)
            .iter()
            .map(|steps| {
                let e = &c - (&c / steps).round() * steps;
                let mass = density(&e - steps) + density(e.shallow_clone()) + density(&e + steps);
                ((steps.log() + mass.clamp_min(1e-300).log()) * &weights).sum_dim_intlist(
                    &[1i64, 2][..],
                    false,
                    Kind::Double,
                )
            })
            .collect::<Vec<_>>(),
        0,
    );
    let best = i64::try_from(scores.argmax(0, false))?;
    let gain = (f64::try_from(scores.get(best))? - f64::try_from(scores.get(99))?) / count as f64;
    Ok(Some(((best + 1) as u8, gain)))
}

/// Images of one source [`read_footage`] looks at, spread evenly over it.
pub const SAMPLED_IMAGES: usize = 16;

/// What [`read_footage`] found in a source's images.
#[derive(Clone, Debug, PartialEq)]
pub struct FootageJpeg {
    /// Images looked at.
    pub sampled: usize,
    /// The qualities of those that showed a JPEG lattice, in order.
    pub qualities: Vec<u8>,
}

impl FootageJpeg {
    /// Whether the footage is JPEG: at least half the images looked at show a lattice.
    pub fn is_jpeg(&self) -> bool {
        self.sampled > 0 && 2 * self.qualities.len() >= self.sampled
    }
}

/// The JPEG qualities of up to [`SAMPLED_IMAGES`] of `images`, spread evenly; images too small
/// to read are skipped.
pub fn read_footage(images: &[&Rgb8]) -> Result<FootageJpeg> {
    let count = images.len().min(SAMPLED_IMAGES);
    let mut sampled = 0;
    let mut qualities = Vec::new();
    for image in (0..count).map(|i| images[i * images.len() / count]) {
        if image.height < 16 || image.width < 16 {
            continue;
        }
        sampled += 1;
        if let Some(estimate) = estimate_jpeg_quality(image)? {
            qualities.push(estimate.quality);
        }
    }
    Ok(FootageJpeg { sampled, qualities })
}
