//! Each loss term against values worked out by hand on tiny tensors.

use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Tensor};

use cyclesr_train::archs::vgg::vgg19_conv54;
use cyclesr_train::losses::{
    l1, lsgan, mse, relativistic_gan_discriminator, relativistic_gan_generator, PerceptualLoss,
};

fn t(values: &[f32]) -> Tensor {
    Tensor::from_slice(values)
}

fn value(x: &Tensor) -> f64 {
    assert_eq!(x.dim(), 0, "losses are scalars");
    x.double_value(&[])
}

fn assert_close(got: f64, expected: f64) {
    assert!(
        (got - expected).abs() < 1e-6,
        "got {got}, expected {expected}"
    );
}

/// ln(1 + e^x): BCE-with-logits of x is softplus(-x) against 1 and softplus(x) against 0.
fn softplus(x: f64) -> f64 {
    x.exp().ln_1p()
}

#[test]
fn lsgan_is_mean_squared_distance_to_the_label() {
    let pred = t(&[0.5, 0.0, 2.0]);
    // Real: ((0.5 - 1)² + (0 - 1)² + (2 - 1)²) / 3 = (0.25 + 1 + 1) / 3 = 0.75.
    assert_close(value(&lsgan(&pred, true)), 0.75);
    // Fake: (0.5² + 0² + 2²) / 3 = (0.25 + 0 + 4) / 3 = 1.416667.
    assert_close(value(&lsgan(&pred, false)), 4.25 / 3.0);
}

#[test]
fn l1_and_mse_are_means() {
    let a = t(&[1.0, 2.0, 3.0, 4.0]);
    let b = t(&[0.0, 4.0, 3.0, 3.0]);
    // Differences 1, -2, 0, 1: |·| sums to 4, squares to 6; four elements.
    assert_close(value(&l1(&a, &b)), 1.0);
    assert_close(value(&mse(&a, &b)), 1.5);
}

#[test]
fn relativistic_gan_matches_hand_computation() {
    let real = t(&[2.0, 0.0]);
    let fake = t(&[1.0, -1.0]);
    // mean(fake) = 0, mean(real) = 1, so real - mean(fake) = [2, 0], fake - mean(real) = [0, -2].
    // D: BCE([2, 0], 1) = (sp(-2) + sp(0)) / 2 and BCE([0, -2], 0) = (sp(0) + sp(-2)) / 2;
    //    their average is (sp(-2) + sp(0)) / 2 = (0.126928 + 0.693147) / 2 = 0.410038.
    let d = (softplus(-2.0) + softplus(0.0)) / 2.0;
    assert_close(value(&relativistic_gan_discriminator(&real, &fake)), d);
    // G: BCE([2, 0], 0) = (sp(2) + sp(0)) / 2 and BCE([0, -2], 1) = (sp(0) + sp(2)) / 2;
    //    their average is (2.126928 + 0.693147) / 2 = 1.410038.
    let g = (softplus(2.0) + softplus(0.0)) / 2.0;
    assert_close(value(&relativistic_gan_generator(&real, &fake)), g);
}

#[test]
fn relativistic_gan_generator_trains_only_the_fake_path_when_real_is_detached() {
    let real = t(&[2.0, 0.0]).set_requires_grad(true);
    let fake = t(&[1.0, -1.0]).set_requires_grad(true);
    relativistic_gan_generator(&real.detach(), &fake).backward();
    assert!(!real.grad().defined());
    // G = ½·[(1/n)·Σ_j sp(real_j - mean(fake)) + (1/n)·Σ_j sp(mean(real) - fake_j)], n = 2, so
    // ∂G/∂fake_i = ½·[-(1/n²)·Σ_j σ(real_j - mean(fake)) - (1/n)·σ(mean(real) - fake_i)]
    //            = -(σ(2) + σ(0)) / 8 - σ(1 - fake_i) / 4.
    let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
    let common = -(sigmoid(2.0) + sigmoid(0.0)) / 8.0;
    let grad = fake.grad();
    assert_close(grad.double_value(&[0]), common - sigmoid(0.0) / 4.0);
    assert_close(grad.double_value(&[1]), common - sigmoid(2.0) / 4.0);
}

/// A frozen random VGG19 wrapped as the loss, and an independent copy to check it against.
fn random_perceptual_loss() -> (PerceptualLoss, nn::FuncT<'static>) {
    let mut vs = nn::VarStore::new(Device::Cpu);
    let extractor = vgg19_conv54(&vs.root());
    vs.freeze();
    let mut copy_vs = nn::VarStore::new(Device::Cpu);
    let copy = vgg19_conv54(&copy_vs.root());
    copy_vs.copy(&vs).unwrap();
    (PerceptualLoss::new(extractor), copy)
}

#[test]
fn perceptual_loss_is_l1_between_vgg_features() {
    let (loss, vgg) = random_perceptual_loss();
    let sr = Tensor::rand([2, 3, 32, 32], (Kind::Float, Device::Cpu));
    let hr = Tensor::rand([2, 3, 32, 32], (Kind::Float, Device::Cpu));
    assert_eq!(value(&loss.forward(&hr, &hr)), 0.0);
    let expected = (vgg.forward_t(&sr, false) - vgg.forward_t(&hr, false))
        .abs()
        .mean(Kind::Float);
    assert_close(value(&loss.forward(&sr, &hr)), value(&expected));
}

#[test]
fn perceptual_loss_passes_gradients_to_sr_only() {
    let (loss, _) = random_perceptual_loss();
    let sr = Tensor::rand([1, 3, 32, 32], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let hr = Tensor::rand([1, 3, 32, 32], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let l = loss.forward(&sr, &hr);
    assert!(l.requires_grad());
    l.backward();
    assert!(value(&sr.grad().abs().sum(Kind::Float)) > 0.0);
    assert!(!hr.grad().defined());
}
