//! Edge widths by direction: a blur statistic that sees the blur's direction.
//!
//! Blur widens every step edge by its own spread along the edge's normal. The sharpest step
//! edges of a set of images (a low quantile of their widths, direction by direction) are as
//! sharp as the imaging lets them be, so the difference between two sets' widths reads the
//! extra blur of one over the other as a covariance: its spread along and across, and its
//! direction. The radially averaged spectrum ([`crate::spectrum`]) is blind to the direction.
//!
//! An edge is a point of the Y gradient (Gaussian derivatives, σ = [`GRADIENT_SIGMA`] px) that is
//! a maximum along its normal, among the image's strongest [`STRONGEST`]; its profile along the
//! normal must have flat sides at least [`MIN_CONTRAST`] code values apart, and is fitted with
//! a Gaussian-blurred step (an erf) whose σ² is the edge's width. Widths are in pixels of the
//! images measured. The erf is a model: a motion blur's box-shaped profile reads somewhat
//! narrower than its second moment, so the figures compare two sets rather than measure a
//! kernel exactly.

use anyhow::{ensure, Result};
use serde::Serialize;
use tch::{Kind, Tensor};

use crate::metrics::{gaussian_1d, principal_axes, rgb_to_y};

/// σ of the Gaussian derivative filters that find edges and their normals, px.
pub const GRADIENT_SIGMA: f64 = 1.0;
/// Fraction of an image's pixels, by gradient magnitude, that are edge candidates.
pub const STRONGEST: f64 = 0.05;
/// Least step between the two sides of an edge, Y code values: weaker steps are too noisy to fit.
pub const MIN_CONTRAST: f64 = 40.0;
/// The profile spans ±[`PROFILE_HALF`] px along the normal in steps of [`PROFILE_STEP`] px.
const PROFILE_HALF: f64 = 4.0;
const PROFILE_STEP: f64 = 0.25;
/// Samples at each end of the profile that must be flat (1.5 px).
const SIDE: i64 = 6;
/// A side is flat when its standard deviation is at most this fraction of the step.
const MAX_SIDE_SPREAD: f64 = 0.15;
/// A fit is kept when its RMS residual is at most this fraction of the step.
const MAX_FIT_RESIDUAL: f64 = 0.08;
/// Edges measured per image at most (every k-th candidate beyond it).
const MAX_EDGES_PER_IMAGE: i64 = 4000;
/// Normal directions are binned by 180° / [`DIRECTION_BINS`].
pub const DIRECTION_BINS: usize = 12;
/// A direction is compared when both sets have at least this many edges in its bin ...
pub const MIN_EDGES_PER_BIN: usize = 20;
/// ... and at least this many directions are, so that the covariance is determined.
const MIN_DIRECTIONS: usize = 6;
/// The quantile of widths a direction is read by: the sharpest edges, which are steps in the
/// scene rather than soft shading.
pub const WIDTH_QUANTILE: f64 = 0.25;

/// One step edge: the direction of its normal (degrees counter-clockwise from the x axis, in
/// [0, 180), rows growing downwards) and its width (σ² of the fitted erf, px²).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Edge {
    pub normal_degrees: f64,
    pub width2: f64,
}

/// The extra blur of one set of images over another, read from their edges: the signed square
/// roots of the width difference's principal values (px; negative where the other set is the
/// blurrier) and the major axis's angle, degrees counter-clockwise, as the explicit G_s2r
/// reports its kernel.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ExtraBlur {
    pub sigma_major: f64,
    pub sigma_minor: f64,
    pub angle_degrees: f64,
}

impl std::fmt::Display for ExtraBlur {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.2} x {:.2} px at {:.0}°",
            self.sigma_major, self.sigma_minor, self.angle_degrees
        )
    }
}

/// The Gaussian and its derivative `[1, 1, 1, taps]`, sampled at integers within ±4σ: the
/// derivative filter correlates to the first derivative of a linear ramp exactly.
fn gaussian_filters() -> (Tensor, Tensor) {
    let radius = (4.0 * GRADIENT_SIGMA).ceil() as i64;
    let taps = 2 * radius + 1;
    let g = gaussian_1d(taps, GRADIENT_SIGMA);
    let x = Tensor::arange_start(-radius, radius + 1, (Kind::Double, tch::Device::Cpu));
    let slope = &x * &g;
    let derivative = &slope / (&slope * &x).sum(Kind::Double);
    (g.view([1, 1, 1, taps]), derivative.view([1, 1, 1, taps]))
}

/// Correlates `[1, 1, H, W]` with `kernel` `[1, 1, 1, taps]` along x (`along_x`) or y,
/// replicating the border.
fn correlate(image: &Tensor, kernel: &Tensor, along_x: bool) -> Tensor {
    let radius = (kernel.size()[3] - 1) / 2;
    if along_x {
        image.replication_pad2d([radius, radius, 0, 0]).conv2d(
            kernel,
            None::<Tensor>,
            [1, 1],
            [0, 0],
            [1, 1],
            1,
        )
    } else {
        image.replication_pad2d([0, 0, radius, radius]).conv2d(
            &kernel.transpose(2, 3),
            None::<Tensor>,
            [1, 1],
            [0, 0],
            [1, 1],
            1,
        )
    }
}

/// `points` `[..., 2]` of (x, y) pixel coordinates as `grid_sampler_2d`'s [-1, 1] grid.
fn to_grid(points: &Tensor, height: i64, width: i64) -> Tensor {
    let scale = Tensor::from_slice(&[2.0 / (width - 1) as f64, 2.0 / (height - 1) as f64]);
    points * scale - 1.0
}

/// The step edges of an RGB image `[3, H, W]` in [0, 1] (see the module's docs); none in an
/// image under 15 px, where no profile fits.
pub fn edges(image: &Tensor) -> Result<Vec<Edge>> {
    let size = image.size();
    ensure!(
        size.len() == 3 && size[0] == 3,
        "expected an RGB image [3, H, W], got shape {size:?}"
    );
    let (height, width) = (size[1], size[2]);
    let margin = (PROFILE_HALF as i64) + 2;
    if height <= 2 * margin + 2 || width <= 2 * margin + 2 {
        // No profile fits inside it.
        return Ok(Vec::new());
    }
    let y = (rgb_to_y(&image.to_device(tch::Device::Cpu)) * 255.0).view([1, 1, height, width]);
    let (smooth, derivative) = gaussian_filters();
    let gx = correlate(&correlate(&y, &smooth, false), &derivative, true);
    let gy = correlate(&correlate(&y, &smooth, true), &derivative, false);
    let magnitude = (gx.square() + gy.square()).sqrt();
    let unit = Tensor::cat(&[&gx, &gy], 1) / (&magnitude + 1e-9);

    // Non-maximum suppression along the normal.
    let rows = Tensor::arange(height, (Kind::Double, tch::Device::Cpu));
    let cols = Tensor::arange(width, (Kind::Double, tch::Device::Cpu));
    let pixels = Tensor::stack(
        &[
            cols.view([1, width]).expand([height, width], false),
            rows.view([height, 1]).expand([height, width], false),
        ],
        -1,
    );
    let normal = unit.squeeze_dim(0).permute([1, 2, 0]);
    let sample = |offset: &Tensor| {
        magnitude
            .grid_sampler_2d(
                &to_grid(&(&pixels + offset), height, width).unsqueeze(0),
                0,
                1,
                true,
            )
            .view([height, width])
    };
    let ahead = sample(&normal);
    let behind = sample(&-&normal);
    let m = magnitude.view([height, width]);
    let threshold = m
        .flatten(0, -1)
        .quantile_scalar(1.0 - STRONGEST, None, false, "linear");
    let candidate = m.ge_tensor(&ahead) * m.gt_tensor(&behind) * m.gt_tensor(&threshold);
    let _ = candidate.narrow(0, 0, margin).fill_(0);
    let _ = candidate.narrow(0, height - margin, margin).fill_(0);
    let _ = candidate.narrow(1, 0, margin).fill_(0);
    let _ = candidate.narrow(1, width - margin, margin).fill_(0);
    let mut found = candidate.nonzero(); // [K, 2] of (row, col)
    let count = found.size()[0];
    if count == 0 {
        return Ok(Vec::new());
    }
    if count > MAX_EDGES_PER_IMAGE {
        let stride = (count + MAX_EDGES_PER_IMAGE - 1) / MAX_EDGES_PER_IMAGE;
        found = found.slice(0, 0, count, stride);
    }
    let (row, col) = (found.select(1, 0), found.select(1, 1));
    let position = pixels.index(&[Some(&row), Some(&col)]); // [K, 2]
    let direction = normal.index(&[Some(&row), Some(&col)]); // [K, 2]

    // Profiles along the normal, towards the brighter side.
    let steps = (2.0 * PROFILE_HALF / PROFILE_STEP).round() as i64 + 1;
    let t = Tensor::arange(steps, (Kind::Double, tch::Device::Cpu)) * PROFILE_STEP - PROFILE_HALF;
    let along = position.unsqueeze(1) + direction.unsqueeze(1) * t.view([1, steps, 1]);
    let profiles = y
        .grid_sampler_2d(&to_grid(&along, height, width).unsqueeze(0), 2, 1, true)
        .view([-1, steps]);

    let low_side = profiles.narrow(1, 0, SIDE);
    let high_side = profiles.narrow(1, steps - SIDE, SIDE);
    let low = low_side.mean_dim(1, false, Kind::Double);
    let contrast = high_side.mean_dim(1, false, Kind::Double) - &low;
    let flat = |side: &Tensor| {
        side.std_dim(1, false, false)
            .le_tensor(&(&contrast * MAX_SIDE_SPREAD))
    };
    let keep = contrast.ge(MIN_CONTRAST) * flat(&low_side) * flat(&high_side);
    let (params, residual) = fit_steps(&profiles, &t, &low, &contrast);
    let (centre, sigma, step) = (
        params.select(1, 2),
        params.select(1, 3),
        params.select(1, 1),
    );
    let keep = keep
        * centre.abs().le(1.0)
        * sigma.gt(0.1)
        * sigma.lt(3.0)
        * residual.le_tensor(&(step.abs() * MAX_FIT_RESIDUAL));
    let angle = direction
        .select(1, 1)
        .neg()
        .atan2(&direction.select(1, 0))
        .rad2deg()
        .remainder(180.0);
    let kept = keep.nonzero().squeeze_dim(1);
    let angles = Vec::<f64>::try_from(angle.index_select(0, &kept))?;
    let widths = Vec::<f64>::try_from(sigma.index_select(0, &kept).square())?;
    Ok(angles
        .into_iter()
        .zip(widths)
        .map(|(normal_degrees, width2)| Edge {
            normal_degrees,
            width2,
        })
        .collect())
}

/// Least-squares fits of `offset + step · Φ((t − centre) / σ)` to every profile `[K, S]`
/// (Levenberg–Marquardt, batched), from the flat sides' level and step, the centre at the
/// gradient's maximum and σ = 0.8 px. Returns the parameters `[K, 4]` (offset, step, centre, σ)
/// and the RMS residual `[K]`.
fn fit_steps(profiles: &Tensor, t: &Tensor, low: &Tensor, contrast: &Tensor) -> (Tensor, Tensor) {
    let count = profiles.size()[0];
    let options = (Kind::Double, tch::Device::Cpu);
    let mut params = Tensor::stack(
        &[
            low.shallow_clone(),
            contrast.shallow_clone(),
            Tensor::zeros([count], options),
            Tensor::full([count], 0.8, options),
        ],
        1,
    );
    let residuals = |p: &Tensor| -> (Tensor, Tensor) {
        let (offset, step, centre, sigma) = (
            p.select(1, 0).unsqueeze(1),
            p.select(1, 1).unsqueeze(1),
            p.select(1, 2).unsqueeze(1),
            p.select(1, 3).unsqueeze(1),
        );
        let z = (t.unsqueeze(0) - centre) / &sigma;
        let cdf = ((&z / std::f64::consts::SQRT_2).erf() + 1.0) * 0.5;
        let pdf = (z.square() * -0.5).exp() / (2.0 * std::f64::consts::PI).sqrt();
        let r = &offset + &step * &cdf - profiles;
        let slope = -(&step * &pdf) / &sigma;
        let jacobian = Tensor::stack(
            &[cdf.ones_like(), cdf, slope.shallow_clone(), &slope * &z],
            2,
        );
        (r, jacobian)
    };
    let cost = |r: &Tensor| r.square().sum_dim_intlist(1, false, Kind::Double);
    let mut damping = Tensor::full([count], 1e-3, options);
    let (mut r, mut jacobian) = residuals(&params);
    let mut current = cost(&r);
    let identity = Tensor::eye(4, options).unsqueeze(0);
    for _ in 0..30 {
        let jt = jacobian.transpose(1, 2);
        let normal = jt.matmul(&jacobian);
        let gradient = jt.matmul(&r.unsqueeze(2));
        let diagonal = normal.diagonal(0, 1, 2).diag_embed(0, 1, 2);
        let system = &normal + (&diagonal + &identity * 1e-9) * damping.view([count, 1, 1]);
        let delta = Tensor::linalg_solve(&system, &-gradient, true).squeeze_dim(2);
        let trial = (&params + delta).nan_to_num(0.0, None, None);
        let sigma = trial.select(1, 3).clamp(0.05, 5.0);
        let trial = Tensor::cat(&[trial.narrow(1, 0, 3), sigma.unsqueeze(1)], 1);
        let (trial_r, trial_jacobian) = residuals(&trial);
        let trial_cost = cost(&trial_r);
        let better = trial_cost.lt_tensor(&current);
        let take = better.unsqueeze(1);
        params = trial.where_self(&take, &params);
        r = trial_r.where_self(&take, &r);
        jacobian = trial_jacobian.where_self(&take.unsqueeze(2), &jacobian);
        current = trial_cost.where_self(&better, &current);
        damping = (&damping / 3.0).where_self(&better, &(&damping * 3.0));
    }
    let rms = (current / profiles.size()[1] as f64).sqrt();
    (params, rms)
}

/// The [`WIDTH_QUANTILE`] of the widths in each direction bin with at least
/// [`MIN_EDGES_PER_BIN`] edges.
fn widths_by_direction(edges: &[Edge]) -> [Option<f64>; DIRECTION_BINS] {
    let mut bins: [Vec<f64>; DIRECTION_BINS] = Default::default();
    for edge in edges {
        let bin =
            ((edge.normal_degrees.rem_euclid(180.0) / 180.0) * DIRECTION_BINS as f64) as usize;
        bins[bin.min(DIRECTION_BINS - 1)].push(edge.width2);
    }
    bins.map(|mut widths| {
        if widths.len() < MIN_EDGES_PER_BIN {
            return None;
        }
        widths.sort_by(f64::total_cmp);
        let at = WIDTH_QUANTILE * (widths.len() - 1) as f64;
        let (below, frac) = (at.floor() as usize, at.fract());
        let above = (below + 1).min(widths.len() - 1);
        Some(widths[below] * (1.0 - frac) + widths[above] * frac)
    })
}

/// The extra blur of `blurred` over `reference` (see [`ExtraBlur`]): the covariance `Σ` whose
/// `nᵀ Σ n` best fits, in least squares, the difference of the two sets' width quantiles over
/// the normal directions `n` both sets have edges in. Fails, saying how many directions it
/// had, when fewer than six do.
pub fn extra_blur(blurred: &[Edge], reference: &[Edge]) -> Result<ExtraBlur> {
    let (a, b) = (widths_by_direction(blurred), widths_by_direction(reference));
    let (mut rows, mut differences) = (Vec::new(), Vec::new());
    for (bin, (wa, wb)) in a.iter().zip(&b).enumerate() {
        let (Some(wa), Some(wb)) = (wa, wb) else {
            continue;
        };
        let theta = ((bin as f64 + 0.5) * 180.0 / DIRECTION_BINS as f64).to_radians();
        let (s, c) = theta.sin_cos();
        rows.extend([c * c, 2.0 * c * s, s * s]);
        differences.push(wa - wb);
    }
    let directions = differences.len();
    ensure!(
        directions >= MIN_DIRECTIONS,
        "too few step edges to compare: {directions} of {DIRECTION_BINS} directions have \
         {MIN_EDGES_PER_BIN} edges in both sets ({} and {} edges in all), at least \
         {MIN_DIRECTIONS} are needed",
        blurred.len(),
        reference.len()
    );
    let design = Tensor::from_slice(&rows).view([directions as i64, 3]);
    let target = Tensor::from_slice(&differences).view([directions as i64, 1]);
    let (solution, _, _, _) = design.linalg_lstsq(&target, None, "gelsd");
    let [xx, xy, yy] = <[f64; 3]>::try_from(Vec::<f64>::try_from(solution.view(-1))?)
        .map_err(|v| anyhow::anyhow!("least squares gave {} values, not 3", v.len()))?;
    let (major, minor, angle_degrees) = principal_axes(xx, yy, xy);
    let signed_sqrt = |v: f64| v.signum() * v.abs().sqrt();
    Ok(ExtraBlur {
        sigma_major: signed_sqrt(major),
        sigma_minor: signed_sqrt(minor),
        angle_degrees,
    })
}
