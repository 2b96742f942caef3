//! Inference-side model code shared by the element and `train`: the SR networks (G_l2h),
//! their checkpoint format, device selection, colour conversion and tiled inference.

pub mod arch;
pub mod checkpoint;
pub mod color;
pub mod device;
pub mod layout;
pub mod upscaler;

/// The G_l2h files compiled into the plugin (`plugin/models/`, embedded when present), which
/// the element runs when `model-location` is not set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EmbeddedModel {
    /// SRResNet 16×64 (`srresnet-16x64.safetensors`): the paper's size, the better one on
    /// every benchmark, about 4× the compute of [`EmbeddedModel::Fast`].
    #[default]
    Quality,
    /// SRResNet 6×32 (`srresnet-6x32.safetensors`): for CPUs.
    Fast,
}

impl EmbeddedModel {
    pub const ALL: [EmbeddedModel; 2] = [EmbeddedModel::Quality, EmbeddedModel::Fast];

    /// The file's bytes, or `None` when this build does not embed it.
    pub fn bytes(self) -> Option<&'static [u8]> {
        match self {
            #[cfg(cyclesr_model_quality)]
            EmbeddedModel::Quality => {
                Some(include_bytes!("../../models/srresnet-16x64.safetensors"))
            }
            #[cfg(cyclesr_model_fast)]
            EmbeddedModel::Fast => Some(include_bytes!("../../models/srresnet-6x32.safetensors")),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// The file's name under `plugin/models/`.
    pub fn file_name(self) -> &'static str {
        match self {
            EmbeddedModel::Quality => "srresnet-16x64.safetensors",
            EmbeddedModel::Fast => "srresnet-6x32.safetensors",
        }
    }
}
