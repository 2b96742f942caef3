//! Memory layout of convolution weights. Channels-last (N, H, W, C in memory) is the layout
//! oneDNN and cuDNN run fastest: on a 2-core CPU it makes G_l2h's forward pass about 1.5×
//! faster than PyTorch's default NCHW, with the same values (`train bench` measures both).
//! Only G_l2h ([`SrModel`](super::checkpoint::SrModel)) uses it. The CycleGAN networks stay
//! NCHW: with their instance normalisation, reflection padding and transposed convolutions,
//! a joint training step on the CPU was slower with them channels-last (`train bench-step -o
//! configs/cpu-small.toml`: 0.41 s against 0.38 s with only G_l2h channels-last).
//!
//! libtorch picks the channels-last kernels when a convolution's weight has channels-last
//! strides, and its outputs keep that layout. tch exposes no memory-format argument, so the
//! layout is made by permuting to NHWC, copying, and permuting back: same shape, new strides.

use tch::{nn, Tensor};

/// How the 4-D variables of a network are laid out in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// NCHW contiguous, libtorch's default.
    ChannelsFirst,
    /// NHWC in memory, shape still [N, C, H, W].
    ChannelsLast,
}

impl Layout {
    pub fn name(self) -> &'static str {
        match self {
            Layout::ChannelsFirst => "NCHW",
            Layout::ChannelsLast => "channels-last",
        }
    }
}

/// Whether `t` is 4-D with dense channels-last strides.
pub fn is_channels_last(t: &Tensor) -> bool {
    let size = t.size();
    if size.len() != 4 {
        return false;
    }
    let (c, h, w) = (size[1], size[2], size[3]);
    t.stride() == [h * w * c, 1, w * c, c]
}

/// A copy of `t` in `layout`; tensors that are not 4-D are returned as they are (shared).
pub fn to_layout(t: &Tensor, layout: Layout) -> Tensor {
    if t.dim() != 4 {
        return t.shallow_clone();
    }
    match layout {
        Layout::ChannelsFirst => t.contiguous(),
        Layout::ChannelsLast => t.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2]),
    }
}

/// Re-lays every 4-D variable of `vs` (the convolution weights) out in `layout`, in place:
/// the networks built on `vs` keep their variables, which now have the new strides.
pub fn set_layout(vs: &nn::VarStore, layout: Layout) {
    tch::no_grad(|| {
        for (_, mut var) in vs.variables() {
            if var.dim() == 4 {
                var.set_data(&to_layout(&var, layout));
            }
        }
    });
}
