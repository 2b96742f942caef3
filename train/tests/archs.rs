//! Shapes and sizes of the training networks, pinned to the reference PyTorch definitions.

mod common;

use std::collections::HashMap;

use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Tensor};

use common::temp_dir;
use cyclesr_train::archs::cyclegan::{
    patch_discriminator, resnet_generator, DiscriminatorConfig, DiscriminatorNorm, GaussianLowPass,
    TranslatorConfig,
};
use cyclesr_train::archs::vgg::{
    load_vgg19, vgg19_conv54, vgg_discriminator, VggDiscriminatorConfig,
};
use gstcyclesr::model::arch::{trainable_parameters, SrConfig};
use gstcyclesr::model::checkpoint::{varstore_tensors, write_safetensors, SrModel};

fn count<F>(build: F) -> i64
where
    F: FnOnce(&nn::Path) -> nn::FuncT<'static>,
{
    let vs = nn::VarStore::new(Device::Cpu);
    build(&vs.root());
    trainable_parameters(&vs)
}

#[test]
fn translator_parameter_counts_match_cyclegan() {
    assert_eq!(
        count(|p| resnet_generator(p, &TranslatorConfig::default())),
        11_378_179
    );
    let six = TranslatorConfig {
        blocks: 6,
        ..Default::default()
    };
    assert_eq!(count(|p| resnet_generator(p, &six)), 7_837_699);
}

#[test]
fn patch_discriminator_parameter_count_matches_cyclegan() {
    assert_eq!(
        count(|p| patch_discriminator(p, &DiscriminatorConfig::default())),
        2_764_737
    );
}

#[test]
fn vgg_parameter_counts_match_torchvision_and_basicsr() {
    // torchvision vgg19().features: all 16 convolutions, conv5_4 included.
    assert_eq!(count(vgg19_conv54), 20_024_384);
    // BasicSR's VGGStyleDiscriminator with num_feat 64 (the pool adds no parameters).
    assert_eq!(
        count(|p| vgg_discriminator(p, &VggDiscriminatorConfig::default())),
        14_499_401
    );
}

#[test]
fn sr_network_parameter_counts_match_reference() {
    let srresnet = SrModel::new(SrConfig::SRRESNET_16X64, Device::Cpu).unwrap();
    assert_eq!(trainable_parameters(&srresnet.vs), 1_517_571);
    let vdsr = SrModel::new(SrConfig::VDSR_20X64, Device::Cpu).unwrap();
    assert_eq!(trainable_parameters(&vdsr.vs), 1_114_051);
}

fn tiny_translator() -> (nn::VarStore, nn::FuncT<'static>) {
    let vs = nn::VarStore::new(Device::Cpu);
    let cfg = TranslatorConfig {
        features: 8,
        blocks: 2,
        residual: false,
    };
    let net = resnet_generator(&vs.root(), &cfg);
    (vs, net)
}

#[test]
fn translator_keeps_any_size_and_outputs_unit_range() {
    let (_vs, net) = tiny_translator();
    for (n, h, w) in [(2, 16, 16), (1, 17, 9), (1, 5, 6), (1, 30, 23)] {
        let x = Tensor::rand([n, 3, h, w], (Kind::Float, Device::Cpu));
        let y = net.forward_t(&x, true);
        assert_eq!(y.size(), [n, 3, h, w], "input {h}x{w}");
        assert!(y.min().double_value(&[]) >= 0.0);
        assert!(y.max().double_value(&[]) <= 1.0);
    }
}

#[test]
fn translator_backpropagates_to_its_input_through_the_crop() {
    let (vs, net) = tiny_translator();
    let x = Tensor::rand([1, 3, 13, 10], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    net.forward_t(&x, true).mean(Kind::Float).backward();
    assert_eq!(x.grad().size(), [1, 3, 13, 10]);
    assert!(vs.trainable_variables().iter().all(|t| t.grad().defined()));
}

#[test]
fn translator_output_does_not_depend_on_the_batch() {
    // Instance normalisation: each image is normalised on its own statistics.
    let (_vs, net) = tiny_translator();
    let x = Tensor::rand([3, 3, 12, 20], (Kind::Float, Device::Cpu));
    let batch = net.forward_t(&x, true);
    let single = net.forward_t(&x.narrow(0, 1, 1), true);
    assert!(batch.narrow(0, 1, 1).allclose(&single, 1e-5, 1e-6, false));
}

#[test]
fn patch_discriminator_scores_overlapping_patches() {
    let vs = nn::VarStore::new(Device::Cpu);
    let cfg = DiscriminatorConfig {
        features: 8,
        layers: 3,
        ..Default::default()
    };
    let net = patch_discriminator(&vs.root(), &cfg);
    // 64 → 32 → 16 → 8 (stride 2), then two 4×4 stride-1 convolutions: 7 → 6.
    let x = Tensor::rand([2, 3, 64, 64], (Kind::Float, Device::Cpu));
    assert_eq!(net.forward_t(&x, true).size(), [2, 1, 6, 6]);
    let x = Tensor::rand([1, 3, 32, 48], (Kind::Float, Device::Cpu));
    assert_eq!(net.forward_t(&x, true).size(), [1, 1, 2, 4]);
}

#[test]
fn vgg_discriminator_gives_one_logit_per_image_for_any_patch_size() {
    let vs = nn::VarStore::new(Device::Cpu);
    let net = vgg_discriminator(&vs.root(), &VggDiscriminatorConfig { features: 8 });
    for size in [32, 48] {
        let x = Tensor::rand([2, 3, size, size], (Kind::Float, Device::Cpu));
        assert_eq!(net.forward_t(&x, true).size(), [2, 1], "{size}x{size}");
        assert_eq!(net.forward_t(&x, false).size(), [2, 1], "{size}x{size}");
    }
}

/// Sets every VGG convolution to pass channels 0..3 straight through (centre tap 1, bias 0),
/// so the output shows what the first layer sees.
fn identity_vgg(vs: &nn::VarStore) {
    tch::no_grad(|| {
        for (name, mut t) in vs.variables() {
            let _ = t.zero_();
            if name.ends_with(".weight") {
                for c in 0..3 {
                    let _ = t.get(c).get(c).get(1).get(1).fill_(1.0);
                }
            }
        }
    });
}

#[test]
fn vgg_features_normalise_with_imagenet_statistics() {
    let vs = nn::VarStore::new(Device::Cpu);
    let net = vgg19_conv54(&vs.root());
    identity_vgg(&vs);
    let rgb = Tensor::from_slice(&[0.7f32, 0.2, 0.5]).view([1, 3, 1, 1]);
    let x = rgb.expand([1, 3, 32, 32], false).contiguous();
    let y = net.forward_t(&x, false);
    // Four 2×2 pools: 32 → 2.
    assert_eq!(y.size(), [1, 512, 2, 2]);
    // (x - mean) / std, then ReLU (the max pools keep a constant image constant):
    // R (0.7 - 0.485) / 0.229 = 0.938865, G (0.2 - 0.456) / 0.224 < 0 → 0,
    // B (0.5 - 0.406) / 0.225 = 0.417778.
    let expected = [(0.7 - 0.485) / 0.229, 0.0, (0.5 - 0.406) / 0.225];
    for (c, e) in expected.into_iter().enumerate() {
        let got = y.get(0).get(c as i64);
        assert!(
            (got.min().double_value(&[]) - e).abs() < 1e-5,
            "channel {c}"
        );
        assert!(
            (got.max().double_value(&[]) - e).abs() < 1e-5,
            "channel {c}"
        );
    }
    assert_eq!(y.narrow(1, 3, 509).abs().max().double_value(&[]), 0.0);
}

#[test]
fn vgg19_loads_torchvision_names_and_freezes() {
    let dir = temp_dir("vgg-load");
    let path = dir.join("vgg19.safetensors");
    let src = nn::VarStore::new(Device::Cpu);
    let src_net = vgg19_conv54(&src.root());
    let mut tensors = varstore_tensors(&src);
    assert!(tensors.iter().any(|(n, _)| n == "features.34.weight"));
    // What the converter keeps besides: nothing of it may be required or refused.
    tensors.push((
        "classifier.0.weight".into(),
        Tensor::zeros([4, 2], (Kind::Float, Device::Cpu)),
    ));
    write_safetensors(&path, &tensors, &HashMap::new()).unwrap();

    let (vs, net) = load_vgg19(&path, Device::Cpu).unwrap();
    assert!(vs.trainable_variables().iter().all(|t| !t.requires_grad()));
    let x = Tensor::rand([1, 3, 32, 32], (Kind::Float, Device::Cpu));
    let expected = src_net.forward_t(&x, false);
    assert!(net.forward_t(&x, false).equal(&expected));
}

#[test]
fn vgg19_missing_tensor_is_an_error_naming_the_file() {
    let dir = temp_dir("vgg-missing");
    let path = dir.join("partial-vgg19.safetensors");
    let src = nn::VarStore::new(Device::Cpu);
    vgg19_conv54(&src.root());
    let tensors: Vec<_> = varstore_tensors(&src)
        .into_iter()
        .filter(|(n, _)| n != "features.34.weight")
        .collect();
    write_safetensors(&path, &tensors, &HashMap::new()).unwrap();

    let err = format!("{:#}", load_vgg19(&path, Device::Cpu).unwrap_err());
    assert!(err.contains("partial-vgg19.safetensors"), "{err}");
    assert!(err.contains("features.34.weight"), "{err}");
}

/// A residual translator starts as the identity and still learns (the zeroed tail gets
/// gradients).
#[test]
fn residual_translator_starts_as_identity() {
    let vs = nn::VarStore::new(Device::Cpu);
    let cfg = TranslatorConfig {
        features: 8,
        blocks: 1,
        residual: true,
    };
    let net = resnet_generator(&vs.root(), &cfg);
    let x = Tensor::rand([2, 3, 13, 10], (Kind::Float, Device::Cpu));
    let y = net.forward_t(&x, true);
    assert_eq!((&y - &x).abs().max().double_value(&[]), 0.0);
    (y - 0.5).square().mean(Kind::Float).backward();
    let tail_grad = vs.variables()["tail.weight"].grad();
    assert!(tail_grad.abs().sum(Kind::Float).double_value(&[]) > 0.0);
}

#[test]
fn gaussian_low_pass_keeps_constants_and_spreads_an_impulse_by_the_gaussian() {
    let flat = Tensor::full([1, 3, 9, 9], 0.3, (Kind::Float, Device::Cpu));
    let low_pass = GaussianLowPass::new(3, Device::Cpu);
    assert!(low_pass.forward(&flat).allclose(&flat, 1e-6, 1e-6, false));
    let impulse = Tensor::zeros([1, 1, 9, 9], (Kind::Float, Device::Cpu));
    let _ = impulse.get(0).get(0).get(4).get(4).fill_(1.0);
    let out = GaussianLowPass::new(1, Device::Cpu).forward(&impulse);
    // 1-D taps e^(-i²/2) for i = -2..=2, normalised; the 2-D kernel is their outer product.
    let sum = 1.0 + 2.0 * (-0.5f64).exp() + 2.0 * (-2.0f64).exp();
    let tap = |i: f64| (-(i * i) / 2.0).exp() / sum;
    for (dy, dx) in [(0, 0), (1, 0), (2, 1), (2, 2)] {
        let got = out.double_value(&[0, 0, 4 + dy, 4 + dx]);
        let want = tap(dy as f64) * tap(dx as f64);
        assert!((got - want).abs() < 1e-6, "({dy}, {dx}): {got} vs {want}");
    }
    assert_eq!(out.double_value(&[0, 0, 4, 7]), 0.0);
}

#[test]
fn high_pass_discriminator_ignores_brightness_and_colour() {
    for norm in [DiscriminatorNorm::Instance, DiscriminatorNorm::None] {
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = DiscriminatorConfig {
            features: 8,
            layers: 3,
            norm,
            high_pass: true,
        };
        let net = patch_discriminator(&vs.root(), &cfg);
        let x = Tensor::rand([1, 3, 32, 32], (Kind::Float, Device::Cpu)) * 0.5;
        let tint = Tensor::from_slice(&[0.1f32, 0.3, 0.2]).view([1, 3, 1, 1]);
        let a = net.forward_t(&x, true);
        let b = net.forward_t(&(&x + tint), true);
        assert!(a.allclose(&b, 1e-4, 1e-5, false), "{norm:?}");
    }
}
