//! Loss terms of CycleSR on tensors. Each returns a scalar (0-d) tensor; weights and the choice
//! of terms belong to the options file and the training model.

use std::path::Path;

use tch::nn::{self, ModuleT};
use tch::{Device, Reduction, Tensor};

use crate::archs::vgg::load_vgg19;

/// Least-squares GAN loss (Mao et al.), CycleGAN's adversarial term:
/// `mean((pred - t)²)` with `t = 1` for "real" and `t = 0` for "fake".
pub fn lsgan(pred: &Tensor, target_is_real: bool) -> Tensor {
    let target = pred.full_like(if target_is_real { 1.0 } else { 0.0 });
    pred.mse_loss(&target, Reduction::Mean)
}

/// Mean absolute error `mean(|a - b|)` (cycle, identity and perceptual terms).
pub fn l1(a: &Tensor, b: &Tensor) -> Tensor {
    a.l1_loss(b, Reduction::Mean)
}

/// Mean squared error `mean((a - b)²)` (the SR pixel terms, direct and through G_s2r).
pub fn mse(a: &Tensor, b: &Tensor) -> Tensor {
    a.mse_loss(b, Reduction::Mean)
}

/// Mean binary cross-entropy on logits `x` against a constant label `y`:
/// `mean(-y·log σ(x) - (1 - y)·log(1 - σ(x)))`.
fn bce_with_logits(x: &Tensor, label: bool) -> Tensor {
    let target = x.full_like(if label { 1.0 } else { 0.0 });
    x.binary_cross_entropy_with_logits::<Tensor>(&target, None, None, Reduction::Mean)
}

/// ESRGAN's relativistic average GAN loss for the discriminator:
/// `[BCE(real - mean(fake), 1) + BCE(fake - mean(real), 0)] / 2`, on raw logits (means over
/// the whole batch).
pub fn relativistic_gan_discriminator(real_pred: &Tensor, fake_pred: &Tensor) -> Tensor {
    let real_vs_fake = real_pred - fake_pred.mean(None);
    let fake_vs_real = fake_pred - real_pred.mean(None);
    (bce_with_logits(&real_vs_fake, true) + bce_with_logits(&fake_vs_real, false)) / 2.0
}

/// ESRGAN's relativistic average GAN loss for the generator, labels swapped:
/// `[BCE(real - mean(fake), 0) + BCE(fake - mean(real), 1)] / 2`. The caller passes
/// `real_pred` detached, as ESRGAN does, so only the fake path carries gradients to G.
pub fn relativistic_gan_generator(real_pred: &Tensor, fake_pred: &Tensor) -> Tensor {
    let real_vs_fake = real_pred - fake_pred.mean(None);
    let fake_vs_real = fake_pred - real_pred.mean(None);
    (bce_with_logits(&real_vs_fake, false) + bce_with_logits(&fake_vs_real, true)) / 2.0
}

/// ESRGAN's perceptual loss: `mean(|φ(sr) - φ(hr)|)` with φ the VGG19 conv5_4 features (before
/// the ReLU) of ImageNet-normalised [0, 1] RGB.
pub struct PerceptualLoss {
    extractor: nn::FuncT<'static>,
}

impl PerceptualLoss {
    /// Wraps a feature extractor built by [`crate::archs::vgg::vgg19_conv54`]; its VarStore
    /// should be frozen so that the loss trains only what produced `sr`.
    pub fn new(extractor: nn::FuncT<'static>) -> Self {
        PerceptualLoss { extractor }
    }

    /// Loads the frozen extractor from a torchvision VGG19 safetensors file.
    pub fn load(path: &Path, device: Device) -> anyhow::Result<Self> {
        // The modules share the VarStore's (frozen) tensors, so it need not be kept.
        let (_vs, extractor) = load_vgg19(path, device)?;
        Ok(Self::new(extractor))
    }

    /// L1 distance between the features of `sr` and `hr`; `hr`'s are computed without
    /// gradient since it is a fixed target.
    pub fn forward(&self, sr: &Tensor, hr: &Tensor) -> Tensor {
        let target = tch::no_grad(|| self.extractor.forward_t(hr, false));
        l1(&self.extractor.forward_t(sr, false), &target)
    }
}
