//! CycleGAN's translator and discriminator (Zhu et al. 2017), as CycleSR uses them between real
//! LR frames and synthetic (bicubic) LR: a ResNet generator and a 70×70 PatchGAN, both with
//! instance normalisation without affine parameters and biased convolutions.
//!
//! Both networks take images in [0, 1], like every other network of the project, and map them
//! to CycleGAN's [-1, 1] internally.

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module};
use tch::{Device, Tensor};

use gstcyclesr::model::arch::leaky_relu;

/// Shape of a ResNet translator (G_s2r or G_r2s).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TranslatorConfig {
    /// Channels after the head (CycleGAN's `ngf`); the residual blocks run at 4×.
    pub features: i64,
    /// Residual blocks at the lowest resolution.
    pub blocks: i64,
    /// Not in CycleGAN: add the network's output to its input, with the last convolution
    /// initialised to zero, so a translator starts as the identity and only has to learn the
    /// difference between two LR domains (blur, noise, compression) instead of rebuilding
    /// images from scratch, which takes CycleGAN thousands of iterations. Off by default.
    #[serde(default)]
    pub residual: bool,
}

impl Default for TranslatorConfig {
    /// CycleGAN's `resnet_9blocks` with ngf 64 (11,378,179 parameters).
    fn default() -> Self {
        TranslatorConfig {
            features: 64,
            blocks: 9,
            residual: false,
        }
    }
}

/// Shape of a PatchGAN discriminator.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct DiscriminatorConfig {
    /// Channels of the first convolution (CycleGAN's `ndf`).
    pub features: i64,
    /// Stride-2 convolutions; 3 gives the 70×70 receptive field.
    pub layers: i64,
    /// Normalisation after the inner convolutions (CycleGAN's: instance).
    #[serde(default)]
    pub norm: DiscriminatorNorm,
    /// Not in CycleGAN: judge only the image minus its Gaussian low-pass (σ = 1 px), as in
    /// frequency-separated degradation learning (Fritsche et al. 2019). Two LR domains of
    /// different photos differ most in content and colour; without those, the discriminator
    /// has to look at what the translator can change: blur, noise, compression.
    #[serde(default)]
    pub high_pass: bool,
}

/// Normalisation of a PatchGAN's inner layers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiscriminatorNorm {
    /// Instance normalisation (CycleGAN). On small LR patches its maps are a few pixels wide,
    /// and normalising each one may hide how strong the high frequencies are, the very
    /// difference between a clean and a noisy LR image (measured in docs/RESULTS.md: dropping
    /// it alone did not make stage 1 learn the noise; judging high frequencies did).
    #[default]
    Instance,
    /// No normalisation: feature magnitudes reach the classifier.
    None,
}

impl Default for DiscriminatorConfig {
    /// CycleGAN's `basic` 70×70 PatchGAN with ndf 64 (2,764,737 parameters).
    fn default() -> Self {
        DiscriminatorConfig {
            features: 64,
            layers: 3,
            norm: DiscriminatorNorm::Instance,
            high_pass: false,
        }
    }
}

/// Instance normalisation without learnt affine parameters (CycleGAN's `norm='instance'`).
fn instance_norm(x: &Tensor) -> Tensor {
    x.instance_norm::<Tensor>(None, None, None, None, true, 0.1, 1e-5, false)
}

fn conv(p: nn::Path, c_in: i64, c_out: i64, k: i64, stride: i64, padding: i64) -> nn::Conv2D {
    let cfg = nn::ConvConfig {
        stride,
        padding,
        ..Default::default()
    };
    nn::conv2d(p, c_in, c_out, k, cfg)
}

/// ×2 upsampling by a transposed convolution that exactly doubles H and W.
fn up_conv(p: nn::Path, c_in: i64, c_out: i64) -> nn::ConvTranspose2D {
    let cfg = nn::ConvTransposeConfig {
        stride: 2,
        padding: 1,
        output_padding: 1,
        ..Default::default()
    };
    nn::conv_transpose2d(p, c_in, c_out, 3, cfg)
}

/// Builds a CycleGAN ResNet translator under `p`.
///
/// Input and output: RGB in [0, 1], shape [N, 3, H, W]. H and W need not be multiples of 4:
/// the input is reflect-padded to the next multiple (so that the two stride-2 downsamples and
/// the transposed convolutions round-trip) and the output is cropped back; H and W must be at
/// least 5 for the reflections to fit.
pub fn resnet_generator(p: &nn::Path, cfg: &TranslatorConfig) -> nn::FuncT<'static> {
    let f = cfg.features;
    let head = conv(p / "head", 3, f, 7, 1, 0);
    let down = [
        conv(p / "down1", f, 2 * f, 3, 2, 1),
        conv(p / "down2", 2 * f, 4 * f, 3, 2, 1),
    ];
    let body: Vec<(nn::Conv2D, nn::Conv2D)> = (0..cfg.blocks)
        .map(|i| {
            let b = p / "body" / i;
            (
                conv(&b / "conv1", 4 * f, 4 * f, 3, 1, 0),
                conv(&b / "conv2", 4 * f, 4 * f, 3, 1, 0),
            )
        })
        .collect();
    let up = [
        up_conv(p / "up1", 4 * f, 2 * f),
        up_conv(p / "up2", 2 * f, f),
    ];
    let mut tail = conv(p / "tail", f, 3, 7, 1, 0);
    let residual = cfg.residual;
    if residual {
        tch::no_grad(|| {
            let _ = tail.ws.zero_();
            if let Some(bias) = &mut tail.bs {
                let _ = bias.zero_();
            }
        });
    }
    nn::func_t(move |x, _train| {
        let (h, w) = (x.size()[2], x.size()[3]);
        // Pad right and bottom only, so the crop back is a plain narrow from the origin.
        let (pad_h, pad_w) = ((4 - h % 4) % 4, (4 - w % 4) % 4);
        let input = x;
        let x = (x * 2.0 - 1.0).reflection_pad2d([0, pad_w, 0, pad_h]);

        let mut feat = instance_norm(&head.forward(&x.reflection_pad2d([3, 3, 3, 3]))).relu();
        for d in &down {
            feat = instance_norm(&d.forward(&feat)).relu();
        }
        for (c1, c2) in &body {
            let r = instance_norm(&c1.forward(&feat.reflection_pad2d([1, 1, 1, 1]))).relu();
            let r = instance_norm(&c2.forward(&r.reflection_pad2d([1, 1, 1, 1])));
            // Not `+=`: in place, it would overwrite a ReLU output that autograd saved.
            feat = &feat + r;
        }
        for u in &up {
            feat = instance_norm(&u.forward(&feat)).relu();
        }
        let out = tail.forward(&feat.reflection_pad2d([3, 3, 3, 3])).tanh();
        let out = out.narrow(2, 0, h).narrow(3, 0, w);
        if residual {
            input + out / 2.0
        } else {
            (out + 1.0) / 2.0
        }
    })
}

/// Builds a PatchGAN discriminator under `p`.
///
/// Input: RGB in [0, 1], shape [N, 3, H, W]; output: one raw score (no sigmoid, for LSGAN)
/// per overlapping patch, shape [N, 1, H', W'] (H' = H/2^layers - 2 for H a multiple of
/// 2^layers; H ≥ 2^layers · 3 keeps H' ≥ 1).
pub fn patch_discriminator(p: &nn::Path, cfg: &DiscriminatorConfig) -> nn::FuncT<'static> {
    let f = cfg.features;
    let width = |i: i64| f * (1i64 << i.min(3));
    let first = conv(p / "conv0", 3, f, 4, 2, 1);
    // Normalised stride-2 convolutions, then one at stride 1, each doubling up to 8×.
    let normed: Vec<nn::Conv2D> = (1..=cfg.layers)
        .map(|i| {
            let stride = if i < cfg.layers { 2 } else { 1 };
            conv(p / format!("conv{i}"), width(i - 1), width(i), 4, stride, 1)
        })
        .collect();
    let last = conv(p / "classifier", width(cfg.layers), 1, 4, 1, 1);
    let norm = cfg.norm;
    // Built once here: the discriminators run several times per training step.
    let low_pass = cfg.high_pass.then(|| GaussianLowPass::new(3, p.device()));
    nn::func_t(move |x, _train| {
        let x = match &low_pass {
            // Doubled so that the residual uses about the range of an image mapped to [-1, 1].
            Some(low_pass) => (x - low_pass.forward(x)) * 2.0,
            None => x * 2.0 - 1.0,
        };
        let mut feat = leaky_relu(&first.forward(&x), 0.2);
        for c in &normed {
            let y = c.forward(&feat);
            let y = match norm {
                DiscriminatorNorm::Instance => instance_norm(&y),
                DiscriminatorNorm::None => y,
            };
            feat = leaky_relu(&y, 0.2);
        }
        last.forward(&feat)
    })
}

/// Normalised 5×5 Gaussian (σ = 1 px) applied to each channel, with reflected borders.
pub struct GaussianLowPass {
    /// `[channels, 1, 5, 5]`, one depthwise filter per channel.
    kernel: Tensor,
}

impl GaussianLowPass {
    pub fn new(channels: i64, device: Device) -> Self {
        let taps: Vec<f32> = (-2..=2)
            .map(|i: i32| (-(i * i) as f32 / 2.0).exp())
            .collect();
        let sum: f32 = taps.iter().sum();
        let taps = Tensor::from_slice(&taps) / f64::from(sum);
        let kernel = taps
            .outer(&taps)
            .view([1, 1, 5, 5])
            .repeat([channels, 1, 1, 1])
            .to_device(device);
        GaussianLowPass { kernel }
    }

    /// `x`: `[N, channels, H, W]` (H, W ≥ 3), float.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let channels = self.kernel.size()[0];
        x.reflection_pad2d([2, 2, 2, 2]).conv2d(
            &self.kernel.to_kind(x.kind()),
            None::<Tensor>,
            [1, 1],
            [0, 0],
            [1, 1],
            channels,
        )
    }
}
