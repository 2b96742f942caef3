//! The explicit G_s2r refined adversarially: after the spectral fit
//! ([`crate::archs::degradation`]), its blur kernel and one gain on its noise are trained
//! against a small discriminator that tells G_s2r(synthetic) from real LR patch by patch.
//!
//! The spectral fit compares mean spectra, in which the blur of the camera and the texture of
//! the footage's scenes look alike. The discriminator sees 7×7 LR px of the high-pass of Y at a
//! time (as KernelGAN's, Bell-Kligler et al., NeurIPS 2019, which compares the scales of one
//! image; here the two domains): the profile of edges, the grain of noise, a codec's blocks.
//! G_s2r's own compression is in the loop; its codecs have no gradient, so they pass the
//! gradient on as the identity (a straight-through estimator). The parameters are averaged
//! over the second half of the steps, where an adversarial game oscillates rather than
//! converges.
//!
//! Off by default: on the benchmarks it meets stage 1's statistics where the spectral fit
//! misses them, yet with an LR-grid kernel it blurs more than the spectral fit, on footage of
//! the photos' own scenes too, and the G_l2h it trains is level or worse. It recovers a kernel
//! that G_s2r can draw; the extra blur comes with footage blurred before its sampling, which an
//! LR-grid kernel cannot draw. With the kernel on the HR grid, on footage with one blur, its
//! G_l2h is level with or above the spectral fit's; on footage whose blur varies from image to
//! image it still loses (docs/RESULTS.md, 2026-12-07).

use anyhow::{ensure, Context, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tch::nn::{self, Module, OptimizerConfig};
use tch::{Kind, Tensor};

use crate::archs::cyclegan::GaussianLowPass;
use crate::archs::degradation::{symmetric_kernel, CameraDegradation, ExplicitDegradation};
use crate::metrics::rgb_to_y;
use crate::model::with_seeded_torch_rng;

/// Patches per step, from each domain.
const BATCH: i64 = 64;
/// Adam rates of the kernel logits and noise gain, and of the discriminator.
const LR_DEGRADATION: f64 = 0.002;
const LR_DISCRIMINATOR: f64 = 1e-3;
/// The discriminator's width, and the side its first score sees.
const FEATURES: i64 = 64;
const RECEPTIVE_FIELD: i64 = 7;
/// Scales the high-pass, whose edges are tenths of the range, to order 1 for the first layer.
const HIGH_PASS_SCALE: f64 = 10.0;

/// What the refinement reached, for logs.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct AdversarialSummary {
    pub steps: i64,
    /// The factor on the noise bank's level (`noise_sigma_y` in `degradation-fit.json` is the
    /// bank as cut, before it).
    pub noise_gain: f64,
    /// The discriminator's LSGAN loss, mean over the last tenth of the steps: 0.5 when it
    /// cannot tell the domains apart.
    pub discriminator_loss: f64,
}

/// The local discriminator on `[N, 1, p, p]` high-pass Y: a map of scores, receptive field 7 px.
fn discriminator(root: &nn::Path) -> impl Module {
    let conv = |name: &str, i, o, k| nn::conv2d(root / name, i, o, k, Default::default());
    nn::seq()
        .add(conv("conv1", 1, FEATURES, 5))
        .add_fn(|x| x.leaky_relu())
        .add(conv("conv2", FEATURES, FEATURES, 3))
        .add_fn(|x| x.leaky_relu())
        .add(conv("conv3", FEATURES, FEATURES, 1))
        .add_fn(|x| x.leaky_relu())
        .add(conv("score", FEATURES, 1, 1))
}

/// Y minus its 5×5 Gaussian blur (σ = 1 px, as the high-pass discriminators of
/// [`crate::archs::cyclegan`] take), scaled: what blur, noise and codecs change.
fn high_pass_y(x: &Tensor, low_pass: &GaussianLowPass) -> Tensor {
    let y = rgb_to_y(x).to_kind(Kind::Float);
    (&y - low_pass.forward(&y)) * HIGH_PASS_SCALE
}

/// Refines `camera` (fresh from the spectral fit, whose kernel logits are `free`) for `steps`
/// (at least 1) steps on its `real` LR patches `[N, 3, p, p]` and the `input` patches G_s2r
/// degrades: synthetic LR, or the HR at `hr_grid`'s scale
/// ([`ExplicitDegradation::hr_grid`]). Returns the camera with the averaged kernel and its
/// noise bank times the averaged gain.
pub fn refine(
    camera: CameraDegradation,
    free: &Tensor,
    real: &Tensor,
    input: &Tensor,
    hr_grid: Option<i64>,
    steps: i64,
    seed: u64,
) -> Result<(CameraDegradation, AdversarialSummary)> {
    ensure!(
        steps >= 1,
        "the adversarial fit needs at least one step, got {steps}"
    );
    let p = real.size()[3];
    ensure!(
        p >= RECEPTIVE_FIELD,
        "the adversarial fit's discriminator needs patches of at least {RECEPTIVE_FIELD} px, got {p}-px ones (data.lr_patch)"
    );
    let device = real.device();
    let degradation_vars = nn::VarStore::new(device);
    let free = degradation_vars.root().var_copy("free", free);
    let log_gain = degradation_vars.root().zeros("log_gain", &[]);
    let discriminator_vars = nn::VarStore::new(device);
    let d = with_seeded_torch_rng(seed as i64, || discriminator(&discriminator_vars.root()));
    let adam = nn::Adam {
        beta1: 0.5,
        ..Default::default()
    };
    let mut degradation_opt = adam
        .build(&degradation_vars, LR_DEGRADATION)
        .context("degradation optimiser")?;
    let mut discriminator_opt = adam
        .build(&discriminator_vars, LR_DISCRIMINATOR)
        .context("discriminator optimiser")?;

    let low_pass = GaussianLowPass::new(1, device);
    let mut rng = StdRng::seed_from_u64(seed);
    let (n_real, n_input) = (real.size()[0], input.size()[0]);
    let draw = |patches: &Tensor, n: i64, rng: &mut StdRng| {
        let picks: Vec<i64> = (0..BATCH).map(|_| rng.random_range(0..n)).collect();
        patches.index_select(0, &Tensor::from_slice(&picks).to_device(device))
    };
    let mut free_sum = Tensor::zeros_like(&free);
    let (mut log_gain_sum, mut averaged) = (0.0, 0.0);
    let (mut loss_sum, mut loss_count) = (0.0, 0.0);
    for step in 0..steps {
        if step >= steps / 2 {
            free_sum += free.detach();
            log_gain_sum += f64::try_from(log_gain.detach())?;
            averaged += 1.0;
        }
        let real_batch = draw(real, n_real, &mut rng);
        let input_batch = draw(input, n_input, &mut rng);
        let current = ExplicitDegradation {
            cameras: vec![CameraDegradation {
                source: camera.source,
                kernel: symmetric_kernel(&free),
                noise: &camera.noise * log_gain.exp(),
                noise_scales: camera.noise_scales.as_ref().map(Tensor::shallow_clone),
                noise_by_brightness: camera
                    .noise_by_brightness
                    .as_ref()
                    .map(Tensor::shallow_clone),
                compression: camera.compression,
                jpeg_qualities: camera.jpeg_qualities.as_ref().map(Tensor::shallow_clone),
            }],
            hr_grid,
        };
        // One high-pass of the fake serves both steps; the discriminator's sees no gradient.
        let fake = high_pass_y(&current.forward(&input_batch, &mut rng)?, &low_pass);

        let d_loss = (high_pass_y(&real_batch, &low_pass).apply(&d) - 1.0)
            .square()
            .mean(Kind::Float)
            + fake.detach().apply(&d).square().mean(Kind::Float);
        discriminator_opt.backward_step(&d_loss);
        let g_loss = (fake.apply(&d) - 1.0).square().mean(Kind::Float);
        degradation_opt.backward_step(&g_loss);
        if step >= steps - (steps / 10).max(1) {
            loss_sum += f64::try_from(&d_loss)?;
            loss_count += 1.0;
        }
    }
    // With at least one step, the second half and the last tenth each hold one or more.
    let kernel = tch::no_grad(|| symmetric_kernel(&(free_sum / averaged)));
    let gain = (log_gain_sum / averaged).exp();
    let summary = AdversarialSummary {
        steps,
        noise_gain: gain,
        discriminator_loss: loss_sum / loss_count,
    };
    let noise = &camera.noise * gain;
    Ok((
        CameraDegradation {
            kernel: kernel.detach(),
            noise,
            ..camera
        },
        summary,
    ))
}
