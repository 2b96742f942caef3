//! ESRGAN's VGG pieces: the VGG19 feature extractor of the perceptual loss and the VGG-style
//! discriminator D_h that judges HR patches.

use std::path::Path;

use anyhow::Context;
use tch::nn::{self, Module, ModuleT};
use tch::{Device, Tensor};

use gstcyclesr::model::arch::leaky_relu;
use gstcyclesr::model::checkpoint::{copy_into_varstore, read_safetensors};

/// torchvision's VGG19 `features` up to conv5_4: output channels of each convolution, `None`
/// for a 2×2 max pool. Every convolution is followed by a ReLU (one index each) except the
/// last, which ESRGAN reads before its activation.
const VGG19_CONV54: [Option<i64>; 20] = [
    Some(64),
    Some(64),
    None,
    Some(128),
    Some(128),
    None,
    Some(256),
    Some(256),
    Some(256),
    Some(256),
    None,
    Some(512),
    Some(512),
    Some(512),
    Some(512),
    None,
    Some(512),
    Some(512),
    Some(512),
    Some(512),
];

/// ImageNet statistics the torchvision weights were trained with.
const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

enum VggLayer {
    Conv(nn::Conv2D),
    Relu,
    MaxPool,
}

/// Builds VGG19's features up to conv5_4 (before its ReLU) under `p`, with torchvision's
/// variable names (`features.{i}.weight` / `.bias` where `i` is the index in `vgg19().features`).
///
/// Input: RGB in [0, 1], [N, 3, H, W]; output: [N, 512, H/16, W/16].
pub fn vgg19_conv54(p: &nn::Path) -> nn::FuncT<'static> {
    let features = p / "features";
    let mut layers = Vec::new();
    let mut c_in = 3;
    for spec in VGG19_CONV54 {
        let index = layers.len();
        match spec {
            Some(c_out) => {
                let cfg = nn::ConvConfig {
                    padding: 1,
                    ..Default::default()
                };
                layers.push(VggLayer::Conv(nn::conv2d(
                    &features / index,
                    c_in,
                    c_out,
                    3,
                    cfg,
                )));
                layers.push(VggLayer::Relu);
                c_in = c_out;
            }
            None => layers.push(VggLayer::MaxPool),
        }
    }
    // Drop relu5_4: ESRGAN's features are taken before the activation.
    layers.pop();

    let stats = |v: [f32; 3]| {
        Tensor::from_slice(&v)
            .view([1, 3, 1, 1])
            .to_device(p.device())
    };
    let (mean, std) = (stats(IMAGENET_MEAN), stats(IMAGENET_STD));
    nn::func_t(move |x, _train| {
        let mut feat = (x - &mean) / &std;
        for layer in &layers {
            feat = match layer {
                VggLayer::Conv(conv) => conv.forward(&feat),
                VggLayer::Relu => feat.relu(),
                VggLayer::MaxPool => feat.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false),
            };
        }
        feat
    })
}

/// Loads VGG19 conv5_4 features from a safetensors file with torchvision's names (see
/// `scripts/convert_vgg19.py`). Tensors of later layers and the classifier are ignored. The
/// returned VarStore is frozen: the extractor only passes gradients through to its input.
pub fn load_vgg19(
    path: &Path,
    device: Device,
) -> anyhow::Result<(nn::VarStore, nn::FuncT<'static>)> {
    let context = || format!("VGG19 weights {}", path.display());
    let mut vs = nn::VarStore::new(device);
    let net = vgg19_conv54(&vs.root());
    let (mut tensors, _) = read_safetensors(path).with_context(context)?;
    let wanted = vs.variables();
    tensors.retain(|name, _| wanted.contains_key(name));
    copy_into_varstore(&mut vs, tensors).with_context(context)?;
    vs.freeze();
    Ok((vs, net))
}

/// Shape of the VGG-style HR discriminator D_h.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct VggDiscriminatorConfig {
    /// Channels of the first stage (ESRGAN's `num_feat`); later stages use 2×, 4×, 8×, 8×.
    pub features: i64,
}

impl Default for VggDiscriminatorConfig {
    fn default() -> Self {
        VggDiscriminatorConfig { features: 64 }
    }
}

/// Builds ESRGAN's VGG-style discriminator under `p`, with BasicSR's variable names
/// (`conv0_0`, `conv0_1`, `bn0_1`, …, `linear1`, `linear2`).
///
/// Input: RGB in [0, 1], [N, 3, H, W] with H, W ≥ 32; output: one raw logit per image, [N, 1].
/// Its batch normalisation needs N ≥ 2 in training mode when H or W < 64.
pub fn vgg_discriminator(p: &nn::Path, cfg: &VggDiscriminatorConfig) -> nn::FuncT<'static> {
    let f = cfg.features;
    let conv = |name: &str, c_in: i64, c_out: i64, k: i64, stride: i64, bias: bool| {
        let cfg = nn::ConvConfig {
            stride,
            padding: 1,
            bias,
            ..Default::default()
        };
        nn::conv2d(p / name, c_in, c_out, k, cfg)
    };
    let conv_bn = |s: usize, j: usize, c_in: i64, c_out: i64, k: i64, stride: i64| {
        (
            conv(&format!("conv{s}_{j}"), c_in, c_out, k, stride, false),
            nn::batch_norm2d(p / format!("bn{s}_{j}"), c_out, Default::default()),
        )
    };
    let conv0_0 = conv("conv0_0", 3, f, 3, 1, true);
    let mut stages = vec![conv_bn(0, 1, f, f, 4, 2)];
    // Stages 1..=4 widen with a 3×3 convolution, then halve the resolution with a 4×4 one.
    let widths = [f, 2 * f, 4 * f, 8 * f, 8 * f];
    for (s, pair) in widths.windows(2).enumerate().map(|(i, w)| (i + 1, w)) {
        stages.push(conv_bn(s, 0, pair[0], pair[1], 3, 1));
        stages.push(conv_bn(s, 1, pair[1], pair[1], 4, 2));
    }
    let linear1 = nn::linear(p / "linear1", 8 * f * 4 * 4, 100, Default::default());
    let linear2 = nn::linear(p / "linear2", 100, 1, Default::default());
    nn::func_t(move |x, train| {
        let mut feat = leaky_relu(&conv0_0.forward(x), 0.2);
        for (conv, bn) in &stages {
            feat = leaky_relu(&bn.forward_t(&conv.forward(&feat), train), 0.2);
        }
        // Deviation from ESRGAN, whose linear layer is tied to 128×128 inputs (a 4×4 map after
        // five stride-2 stages): pooling to 4×4 lets D_h judge any patch size ≥ 32, and is
        // the identity for 128×128.
        let feat = feat.adaptive_avg_pool2d([4, 4]).flatten(1, -1);
        linear2.forward(&leaky_relu(&linear1.forward(&feat), 0.2))
    })
}
