//! G_l2h applied to whole frames: precision, clamping and tiled inference.

use anyhow::{Context, Result};
use tch::{Device, Kind, Tensor};

use super::checkpoint::SrModel;
use super::device::Precision;

/// Splitting of a frame into tiles, in input (LR) pixels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tiling {
    /// Side of the part of the output each tile is responsible for; 0 = whole frame.
    pub tile_size: i64,
    /// Extra context read around each tile and discarded after inference, so tile borders
    /// see the same neighbourhood as whole-frame inference.
    pub overlap: i64,
}

/// A loaded G_l2h on its device, at its precision.
pub struct Upscaler {
    model: SrModel,
    kind: Kind,
    pub tiling: Tiling,
}

impl Upscaler {
    /// Moves the model to `precision`. Fails if the device cannot run that precision (checked
    /// with a tiny forward pass), so callers can fall back.
    pub fn new(mut model: SrModel, precision: Precision, tiling: Tiling) -> Result<Self> {
        let kind = precision.kind();
        if model.vs.device().is_cuda() {
            // Frames keep one shape, so cuDNN's per-shape search for the fastest convolution
            // algorithm is paid once.
            tch::Cuda::cudnn_set_benchmark(true);
        }
        if kind != Kind::Float {
            model.vs.set_kind(kind);
        }
        let upscaler = Upscaler {
            model,
            kind,
            tiling,
        };
        let probe = Tensor::zeros([1, 3, 4, 4], (Kind::Float, upscaler.device()));
        let _probe_output = catch_torch(|| upscaler.upscale(&probe))
            .with_context(|| format!("{precision} inference on {:?}", upscaler.device()))?;
        Ok(upscaler)
    }

    pub fn device(&self) -> Device {
        self.model.vs.device()
    }

    pub fn scale(&self) -> i64 {
        self.model.config.scale
    }

    pub fn model(&self) -> &SrModel {
        &self.model
    }

    /// RGB [N, 3, H, W] in [0, 1] (any float kind, on the model's device) → float32
    /// [N, 3, sH, sW] clamped to [0, 1].
    pub fn upscale(&self, rgb: &Tensor) -> Tensor {
        let (h, w) = (rgb.size()[2], rgb.size()[3]);
        let t = self.tiling.tile_size;
        let out = if t <= 0 || (t >= h && t >= w) {
            self.forward(rgb)
        } else {
            self.upscale_tiled(rgb)
        };
        out.clamp(0.0, 1.0)
    }

    fn forward(&self, rgb: &Tensor) -> Tensor {
        self.model
            .upscale(&rgb.to_kind(self.kind))
            .to_kind(Kind::Float)
    }

    fn upscale_tiled(&self, rgb: &Tensor) -> Tensor {
        let size = rgb.size();
        let (n, h, w) = (size[0], size[2], size[3]);
        let s = self.scale();
        let Tiling { tile_size, overlap } = self.tiling;
        let out = Tensor::zeros([n, 3, h * s, w * s], (Kind::Float, rgb.device()));
        for y0 in (0..h).step_by(tile_size as usize) {
            for x0 in (0..w).step_by(tile_size as usize) {
                let (th, tw) = (tile_size.min(h - y0), tile_size.min(w - x0));
                // The tile plus its context, clipped at the frame's edges.
                let (cy0, cx0) = ((y0 - overlap).max(0), (x0 - overlap).max(0));
                let (cy1, cx1) = ((y0 + th + overlap).min(h), (x0 + tw + overlap).min(w));
                let input = rgb.narrow(2, cy0, cy1 - cy0).narrow(3, cx0, cx1 - cx0);
                let sr = self.forward(&input);
                let core = sr
                    .narrow(2, (y0 - cy0) * s, th * s)
                    .narrow(3, (x0 - cx0) * s, tw * s);
                out.narrow(2, y0 * s, th * s)
                    .narrow(3, x0 * s, tw * s)
                    .copy_(&core);
            }
        }
        out
    }
}

/// Runs libtorch work that may throw (out of memory, unsupported kernel), turning tch's panic
/// into an error that carries libtorch's message.
pub fn catch_torch<T>(f: impl FnOnce() -> T) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|payload| {
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown libtorch failure".to_string());
        anyhow::anyhow!("libtorch: {}", message.lines().next().unwrap_or_default())
    })
}
