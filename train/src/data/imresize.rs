//! MATLAB-compatible `imresize` (bicubic, antialiased) on tensors.
//!
//! Super-resolution benchmarks define their LR images with MATLAB's `imresize`, whose bicubic
//! differs from PyTorch's (Keys kernel with a = -0.5, a kernel widened by 1/scale when
//! downscaling, mirrored borders). Each axis is resampled with weight matrices built per call
//! and applied as matrix products: exact, batched, and on the tensor's device.

use tch::{Kind, Tensor};

/// Support of the cubic kernel, in input pixels at scale 1.
const KERNEL_WIDTH: f64 = 4.0;

/// Input samples read by one block of outputs (see `resize_axis`).
const BLOCK_INPUT: usize = 512;

/// Keys' cubic convolution kernel with a = -0.5 (MATLAB's `cubic`).
fn cubic(x: f64) -> f64 {
    let a = x.abs();
    let (a2, a3) = (a * a, a * a * a);
    if a <= 1.0 {
        1.5 * a3 - 2.5 * a2 + 1.0
    } else if a <= 2.0 {
        -0.5 * a3 + 2.5 * a2 - 4.0 * a + 2.0
    } else {
        0.0
    }
}

/// 0-based index `j` (possibly outside `0..n`) reflected into `0..n` with the edge sample
/// repeated, as MATLAB's `[1:n, n:-1:1]` lookup.
fn mirror(j: i64, n: i64) -> i64 {
    let r = j.rem_euclid(2 * n);
    if r < n {
        r
    } else {
        2 * n - 1 - r
    }
}

/// Taps of one axis: for each output sample, `(input index, weight)` pairs. MATLAB's
/// `contributions`, with the taps that fall outside the image mirrored back into it.
fn contributions(in_len: i64, out_len: i64, scale: f64) -> Vec<Vec<(i64, f64)>> {
    // Downscaling stretches the kernel by 1/scale: it then averages every input pixel that maps
    // into an output pixel (antialiasing) instead of point-sampling.
    let (kernel_scale, width) = if scale < 1.0 {
        (scale, KERNEL_WIDTH / scale)
    } else {
        (1.0, KERNEL_WIDTH)
    };
    let taps = width.ceil() as i64 + 2;
    (0..out_len)
        .map(|i| {
            // Centre of output pixel i in 1-based input coordinates (MATLAB's convention).
            let u = (i + 1) as f64 / scale + 0.5 * (1.0 - 1.0 / scale);
            let left = (u - width / 2.0).floor() as i64;
            let weights: Vec<(i64, f64)> = (left..left + taps)
                .map(|j| (mirror(j - 1, in_len), cubic(kernel_scale * (u - j as f64))))
                .collect();
            let total: f64 = weights.iter().map(|(_, w)| w).sum();
            weights.into_iter().map(|(j, w)| (j, w / total)).collect()
        })
        .collect()
}

/// The weights of one output sample of a ×1/`scale` downscale, away from the borders, in
/// input order: the antialiasing filter every output sample applies, once sampled.
pub fn downscale_taps(scale: i64) -> Vec<f64> {
    let (out_len, in_len) = (8, 8 * scale);
    contributions(in_len, out_len, 1.0 / scale as f64)[out_len as usize / 2]
        .iter()
        .map(|&(_, w)| w)
        .collect()
}

/// Resamples dimension `dim` (-2 or -1) of `x` from `in_len` to `out_len` samples.
///
/// The resampling matrix is banded, so it is applied in blocks of output samples, each a matmul
/// with the dense sub-matrix of the input range the block reads: linear in the image size
/// (a full `[out, in]` matrix would be quadratic, minutes for a 16 MP photo).
fn resize_axis(x: &Tensor, dim: i64, in_len: i64, out_len: i64, scale: f64) -> Tensor {
    let taps = contributions(in_len, out_len, scale);
    // Blocks reading about BLOCK_INPUT input samples: big enough GEMMs to run at BLAS speed (a
    // 480-pixel patch is one block, i.e. one dense matrix), few enough zeros to waste little.
    let support = taps.first().map_or(1, Vec::len) as f64;
    let block = (((BLOCK_INPUT as f64 - support) * scale) as usize).max(8);
    let parts: Vec<Tensor> = taps
        .chunks(block)
        .map(|rows| {
            let indices = rows.iter().flatten().map(|&(j, _)| j);
            let lo = indices.clone().min().unwrap_or(0);
            let span = indices.max().unwrap_or(0) - lo + 1;
            let mut matrix = vec![0.0; rows.len() * span as usize];
            for (r, row) in rows.iter().enumerate() {
                for &(j, w) in row {
                    // A mirrored tap adds to the weight of the pixel it reads.
                    matrix[r * span as usize + (j - lo) as usize] += w;
                }
            }
            let matrix = Tensor::from_slice(&matrix)
                .view([rows.len() as i64, span])
                .to_kind(x.kind())
                .to_device(x.device());
            let slab = if span == in_len {
                x.shallow_clone()
            } else {
                x.narrow(dim, lo, span)
            };
            if dim == -2 {
                matrix.matmul(&slab)
            } else {
                slab.matmul(&matrix.tr())
            }
        })
        .collect();
    match parts.as_slice() {
        [single] => single.shallow_clone(),
        _ => Tensor::cat(&parts, dim),
    }
}

/// Output length for a scale factor: `ceil(len * scale)` as MATLAB, tolerant of the rounding of
/// factors such as 1/3 (480 · (1/3) must give 160, not 161).
fn scaled_len(len: i64, scale: f64) -> i64 {
    ((len as f64 * scale - 1e-9).ceil() as i64).max(1)
}

/// Resamples the last two axes of `img` (`[..., H, W]`, e.g. `[3, H, W]` or `[N, 3, H, W]`) by
/// `scale` like MATLAB's `imresize(img, scale)` (bicubic, antialiasing on): the output is
/// `ceil(H·scale) × ceil(W·scale)`. Float inputs keep their kind; others are converted to float.
/// Values are not clamped (bicubic overshoots slightly at edges).
///
/// # Panics
/// If `scale` is not a positive finite number.
pub fn imresize(img: &Tensor, scale: f64) -> Tensor {
    assert!(
        scale.is_finite() && scale > 0.0,
        "imresize: invalid scale {scale}"
    );
    let (h, w) = spatial_size(img);
    resize(
        img,
        (h, scaled_len(h, scale), scale),
        (w, scaled_len(w, scale), scale),
    )
}

/// Resamples the last two axes of `img` to `out_h × out_w` like MATLAB's
/// `imresize(img, [out_h out_w])` (the scale of each axis is out/in).
///
/// # Panics
/// If an output size is not positive.
pub fn imresize_to(img: &Tensor, out_h: i64, out_w: i64) -> Tensor {
    assert!(
        out_h > 0 && out_w > 0,
        "imresize_to: invalid output size {out_h}x{out_w}"
    );
    let (h, w) = spatial_size(img);
    resize(
        img,
        (h, out_h, out_h as f64 / h as f64),
        (w, out_w, out_w as f64 / w as f64),
    )
}

fn spatial_size(img: &Tensor) -> (i64, i64) {
    let size = img.size();
    assert!(
        size.len() >= 2,
        "imresize: expected [..., H, W], got shape {size:?}"
    );
    (size[size.len() - 2], size[size.len() - 1])
}

/// `(in_len, out_len, scale)` per axis.
fn resize(img: &Tensor, rows: (i64, i64, f64), cols: (i64, i64, f64)) -> Tensor {
    let img = if img.is_floating_point() {
        img.shallow_clone()
    } else {
        img.to_kind(Kind::Float)
    };
    let axis = |x: &Tensor, dim: i64, (in_len, out_len, scale): (i64, i64, f64)| {
        // A unit scale is the identity (the kernel is 1 at 0 and 0 at other integers).
        if scale == 1.0 && in_len == out_len {
            x.shallow_clone()
        } else {
            resize_axis(x, dim, in_len, out_len, scale)
        }
    };
    // The axis shrinking most goes first (MATLAB's order), so the second pass is smaller.
    if rows.2 <= cols.2 {
        axis(&axis(&img, -2, rows), -1, cols)
    } else {
        axis(&axis(&img, -1, cols), -2, rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_repeats_the_edge() {
        let n = 4;
        let got: Vec<i64> = (-3..8).map(|j| mirror(j, n)).collect();
        assert_eq!(got, vec![2, 1, 0, 0, 1, 2, 3, 3, 2, 1, 0]);
    }

    #[test]
    fn weights_sum_to_one() {
        for (i, o, s) in [(480, 120, 0.25), (7, 14, 2.0), (10, 3, 0.3)] {
            for row in contributions(i, o, s) {
                let total: f64 = row.iter().map(|(_, w)| w).sum();
                assert!((total - 1.0).abs() < 1e-12);
                assert!(row.iter().all(|&(j, _)| (0..i).contains(&j)));
            }
        }
    }
}
