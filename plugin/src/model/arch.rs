//! The super-resolution networks G_l2h, shared by the element and by `train`.
//!
//! Variable names follow BasicSR's MSRResNet so that weights written by PyTorch load as-is.

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module, ModuleT};
use tch::Tensor;

/// Which G_l2h architecture a checkpoint holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SrArch {
    /// The paper's modified VDSR working on the LR input (vega's `VDSR`): conv head,
    /// `blocks` × (conv-BN-ReLU) + conv-BN under a global residual, pixel-shuffle tail.
    Vdsr,
    /// MSRResNet: conv head, `blocks` residual blocks without BN, pixel-shuffle tail, and
    /// the bilinearly upsampled input added to the output.
    Srresnet,
}

impl std::fmt::Display for SrArch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SrArch::Vdsr => "vdsr",
            SrArch::Srresnet => "srresnet",
        })
    }
}

impl std::str::FromStr for SrArch {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s {
            "vdsr" => Ok(SrArch::Vdsr),
            "srresnet" => Ok(SrArch::Srresnet),
            other => anyhow::bail!("unknown SR architecture '{other}' (expected vdsr or srresnet)"),
        }
    }
}

/// Hyper-parameters that fully determine G_l2h's shape; stored in every checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SrConfig {
    pub arch: SrArch,
    /// Residual (srresnet) or conv-BN-ReLU (vdsr) blocks.
    pub blocks: i64,
    /// Feature channels.
    pub features: i64,
    /// Upscaling factor: 2 or 4 (one or two pixel-shuffle ×2 stages).
    pub scale: i64,
}

impl SrConfig {
    /// MSRResNet 16×64 ×4, the reference size (1,517,571 parameters).
    pub const SRRESNET_16X64: SrConfig = SrConfig {
        arch: SrArch::Srresnet,
        blocks: 16,
        features: 64,
        scale: 4,
    };
    /// The paper's VDSR on LR input, 20 blocks × 64, ×4 (1,114,051 parameters).
    pub const VDSR_20X64: SrConfig = SrConfig {
        arch: SrArch::Vdsr,
        blocks: 20,
        features: 64,
        scale: 4,
    };

    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.scale == 2 || self.scale == 4,
            "scale {} is not supported (2 or 4)",
            self.scale
        );
        anyhow::ensure!(
            (1..=256).contains(&self.blocks),
            "blocks {} out of range 1..=256",
            self.blocks
        );
        anyhow::ensure!(
            (1..=1024).contains(&self.features),
            "features {} out of range 1..=1024",
            self.features
        );
        Ok(())
    }

    /// Number of ×2 pixel-shuffle stages in the tail.
    pub fn upsample_stages(&self) -> i64 {
        if self.scale == 4 {
            2
        } else {
            1
        }
    }
}

fn conv3x3(p: nn::Path, c_in: i64, c_out: i64) -> nn::Conv2D {
    let cfg = nn::ConvConfig {
        padding: 1,
        ..Default::default()
    };
    nn::conv2d(p, c_in, c_out, 3, cfg)
}

/// A 3×3 convolution initialised as BasicSR initialises MSRResNet: Kaiming normal scaled by
/// 0.1, zero bias. The residual branches and the tail then start near zero, so a fresh network
/// outputs about its bilinear base and learns a correction, instead of starting from noise
/// that hundreds of iterations must first remove.
fn small_conv3x3(p: nn::Path, c_in: i64, c_out: i64) -> nn::Conv2D {
    let cfg = nn::ConvConfig {
        padding: 1,
        ws_init: nn::init::DEFAULT_KAIMING_NORMAL,
        ..Default::default()
    };
    let conv = nn::conv2d(p, c_in, c_out, 3, cfg);
    tch::no_grad(|| {
        let _ = conv.ws.shallow_clone().g_mul_scalar_(0.1);
    });
    conv
}

/// Builds G_l2h under `p`. Input: RGB in [0, 1], shape [N, 3, H, W]; output [N, 3, sH, sW],
/// not clamped (training sees the raw values, the element clamps).
pub fn sr_network(p: &nn::Path, cfg: &SrConfig) -> nn::FuncT<'static> {
    match cfg.arch {
        SrArch::Srresnet => srresnet(p, cfg),
        SrArch::Vdsr => vdsr(p, cfg),
    }
}

/// Conv 64→256, PixelShuffle(2), activation; once per ×2.
fn upsample_tail(
    p: &nn::Path,
    cfg: &SrConfig,
    conv: fn(nn::Path, i64, i64) -> nn::Conv2D,
) -> Vec<nn::Conv2D> {
    (1..=cfg.upsample_stages())
        .map(|i| conv(p / format!("upconv{i}"), cfg.features, cfg.features * 4))
        .collect()
}

fn srresnet(p: &nn::Path, cfg: &SrConfig) -> nn::FuncT<'static> {
    let nf = cfg.features;
    let conv_first = small_conv3x3(p / "conv_first", 3, nf);
    let body: Vec<(nn::Conv2D, nn::Conv2D)> = (0..cfg.blocks)
        .map(|i| {
            let b = p / "body" / i;
            (
                small_conv3x3(&b / "conv1", nf, nf),
                small_conv3x3(&b / "conv2", nf, nf),
            )
        })
        .collect();
    let upconvs = upsample_tail(p, cfg, small_conv3x3);
    let conv_hr = small_conv3x3(p / "conv_hr", nf, nf);
    let conv_last = small_conv3x3(p / "conv_last", nf, 3);
    let scale = cfg.scale;
    nn::func_t(move |x, _train| {
        let mut feat = leaky_relu(&conv_first.forward(x), 0.1);
        for (c1, c2) in &body {
            feat = &feat + c2.forward(&c1.forward(&feat).relu_());
        }
        for up in &upconvs {
            feat = leaky_relu(&up.forward(&feat).pixel_shuffle(2), 0.1);
        }
        let out = conv_last.forward(&leaky_relu(&conv_hr.forward(&feat), 0.1));
        let (h, w) = (x.size()[2], x.size()[3]);
        let base = x.upsample_bilinear2d([h * scale, w * scale], false, None, None);
        out + base
    })
}

fn vdsr(p: &nn::Path, cfg: &SrConfig) -> nn::FuncT<'static> {
    let nf = cfg.features;
    let conv_first = conv3x3(p / "conv_first", 3, nf);
    // `blocks` conv-BN-ReLU blocks, then one conv-BN without activation (vega's layout).
    let body: Vec<(nn::Conv2D, nn::BatchNorm, bool)> = (0..=cfg.blocks)
        .map(|i| {
            let b = p / "body" / i;
            let conv = conv3x3(&b / "conv", nf, nf);
            let bn = nn::batch_norm2d(&b / "bn", nf, Default::default());
            (conv, bn, i < cfg.blocks)
        })
        .collect();
    let upconvs = upsample_tail(p, cfg, conv3x3);
    let conv_hr = conv3x3(p / "conv_hr", nf, nf);
    let conv_last = conv3x3(p / "conv_last", nf, 3);
    nn::func_t(move |x, train| {
        let head = conv_first.forward(x);
        let mut feat = head.shallow_clone();
        for (conv, bn, activate) in &body {
            feat = bn.forward_t(&conv.forward(&feat), train);
            if *activate {
                feat = feat.relu_();
            }
        }
        let mut feat = feat + head;
        for up in &upconvs {
            feat = up.forward(&feat).pixel_shuffle(2).relu_();
        }
        conv_last.forward(&conv_hr.forward(&feat).relu_())
    })
}

/// LeakyReLU with a given negative slope (tch's `leaky_relu` has PyTorch's 0.01 fixed): a
/// PReLU with a constant weight, one kernel and no full-size temporary.
pub fn leaky_relu(x: &Tensor, negative_slope: f64) -> Tensor {
    let weight = Tensor::from(negative_slope)
        .to_kind(x.kind())
        .to_device(x.device());
    x.prelu(&weight)
}

/// Total number of elements of the trainable variables under a VarStore.
pub fn trainable_parameters(vs: &nn::VarStore) -> i64 {
    vs.trainable_variables()
        .iter()
        .map(|t| t.numel() as i64)
        .sum()
}
