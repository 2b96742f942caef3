//! `train intervene`: one change to an explicit stage 1 in a training state, the rest kept, so
//! that a G_l2h trained from it (by resuming the state) measures what that one part of G_s2r is
//! worth: a camera's noise bank scaled, or its kernel replaced by the least-squares kernel of
//! paired LR/HR data, an oracle no unpaired fit can reach.

use std::path::PathBuf;

use anyhow::{bail, ensure, Context, Result};
use gstcyclesr::model::checkpoint::write_safetensors;
use tch::{Kind, Tensor};

use crate::data::{imresize, PairedSet};
use crate::eval::aligned_views;
use crate::model::SavedState;

#[derive(clap::Args, Debug)]
pub struct InterveneArgs {
    /// Training state of mode `explicit` (e.g. runs/NAME/checkpoints/latest.safetensors).
    #[arg(long)]
    pub state: PathBuf,
    /// The edited state; resume it with `train fit --resume` after copying it into a run's
    /// checkpoints folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Which camera (real LR source, in `data.real_lr` order) to edit.
    #[arg(long, default_value_t = 0)]
    pub camera: usize,
    /// Multiply the camera's noise bank by this factor.
    #[arg(long)]
    pub noise_gain: Option<f64>,
    /// Replace the camera's kernel by the least-squares kernel from the bicubic↓ of these
    /// pairs' HR to their LR (with --pairs-hr; the LR folder's manifest aligns them).
    #[arg(long, requires = "pairs_hr")]
    pub pairs_lr: Option<PathBuf>,
    #[arg(long, requires = "pairs_lr")]
    pub pairs_hr: Option<PathBuf>,
    /// Side of the least-squares kernel (odd, at most the state's kernel side, which it is
    /// padded to with zeros).
    #[arg(long, default_value_t = 5)]
    pub kernel_size: i64,
}

pub fn run(args: &InterveneArgs) -> Result<()> {
    let state = args.state.display();
    let SavedState {
        mut tensors,
        options,
        mut metadata,
    } = SavedState::read(&args.state)?;
    let prefix = format!("degradation/{}.", args.camera);
    ensure!(
        tensors.contains_key(&format!("{prefix}kernel")),
        "{state}: no explicit stage 1 with a camera {} (a state of mode `explicit` has one \
         camera per real LR source)",
        args.camera
    );
    ensure!(
        args.noise_gain.is_some() || args.pairs_lr.is_some(),
        "nothing to change: give --noise-gain or --pairs-lr and --pairs-hr"
    );
    let mut changes = Vec::new();
    if let Some(gain) = args.noise_gain {
        ensure!(
            gain.is_finite() && gain > 0.0,
            "--noise-gain {gain} must be positive"
        );
        let noise = tensors
            .get_mut(&format!("{prefix}noise"))
            .with_context(|| format!("{state}: camera {} has no noise bank", args.camera))?;
        // In double precision, then rounded once.
        *noise = (noise.to_kind(Kind::Double) * gain).to_kind(noise.kind());
        changes.push(format!("camera {}: noise bank x{gain}", args.camera));
    }
    if let (Some(lr), Some(hr)) = (&args.pairs_lr, &args.pairs_hr) {
        ensure!(
            options.explicit_hr_grid().is_none(),
            "{state}: its kernel is on the HR grid (networks.degradation.kernel_grid = \"hr\"); \
             the least-squares kernel of pairs is one on the LR grid"
        );
        let name = format!("{prefix}kernel");
        let side = tensors[&name].size()[0];
        ensure!(
            args.kernel_size % 2 == 1 && args.kernel_size <= side,
            "--kernel-size {} must be odd and at most the state's kernel side, {side}",
            args.kernel_size
        );
        let pairs = PairedSet::load(lr, hr)?;
        let kernel = least_squares_kernel(&pairs, args.kernel_size)
            .with_context(|| format!("the pairs {} and {}", lr.display(), hr.display()))?;
        let pad = (side - args.kernel_size) / 2;
        tensors.insert(
            name,
            kernel
                .constant_pad_nd([pad, pad, pad, pad])
                .to_kind(Kind::Float),
        );
        changes.push(format!(
            "camera {}: kernel the {}x{} least-squares kernel of the pairs {} and {}",
            args.camera,
            args.kernel_size,
            args.kernel_size,
            lr.display(),
            hr.display()
        ));
    }
    let previous = metadata.remove("intervention");
    let record = changes.join("; ");
    metadata.insert(
        "intervention".into(),
        previous.map_or(record.clone(), |p| format!("{p}; {record}")),
    );
    let mut named: Vec<(String, Tensor)> = tensors.into_iter().collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    write_safetensors(&args.out, &named, &metadata)
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!("{}: {record}", args.out.display());
    Ok(())
}

/// The `size × size` kernel k that minimises Σ ‖k ⋆ bicubic↓(HR) − LR‖² over every pair and
/// channel (the pairs aligned by their recorded shift, the valid pixels only), made
/// point-symmetric (a kernel that shifted the image would misalign G_s2r's pseudo pairs) and
/// scaled to sum to 1. Negative taps are kept: they are part of the best linear fit.
pub fn least_squares_kernel(pairs: &PairedSet, size: i64) -> Result<Tensor> {
    ensure!(
        size % 2 == 1 && size > 0,
        "a kernel side of {size} is not odd"
    );
    let taps = size * size;
    let options = (Kind::Double, tch::Device::Cpu);
    let (mut normal, mut target) = (
        Tensor::zeros([taps, taps], options),
        Tensor::zeros([taps, 1], options),
    );
    let mut pixels = 0;
    for item in &pairs.items {
        let (real, hr) =
            aligned_views(item, pairs.scale).with_context(|| format!("image '{}'", item.name))?;
        let synthetic = imresize(&hr, 1.0 / pairs.scale as f64)
            .clamp(0.0, 1.0)
            .to_kind(Kind::Double);
        let (h, w) = (real.size()[1], real.size()[2]);
        if h < size || w < size {
            continue;
        }
        let half = size / 2;
        // One row of `taps` synthetic neighbours per valid real pixel, over the channels.
        let rows = synthetic
            .unsqueeze(1)
            .im2col([size, size], [1, 1], [0, 0], [1, 1])
            .permute([0, 2, 1])
            .reshape([-1, taps]);
        let values = real
            .to_kind(Kind::Double)
            .narrow(1, half, h - 2 * half)
            .narrow(2, half, w - 2 * half)
            .reshape([-1, 1]);
        normal += rows.tr().matmul(&rows);
        target += rows.tr().matmul(&values);
        pixels += values.size()[0];
    }
    if pixels < taps {
        bail!("{pixels} pixel values cannot fit a {size}x{size} kernel");
    }
    let kernel = Tensor::linalg_solve(&normal, &target, true).view([size, size]);
    let symmetric = (&kernel + kernel.flip([0, 1])) * 0.5;
    Ok(&symmetric / symmetric.sum(Kind::Double))
}
