//! Inference-side model code shared by the element and `train`: the SR networks (G_l2h),
//! their checkpoint format, device selection, colour conversion and tiled inference.

pub mod arch;
pub mod checkpoint;
pub mod color;
pub mod device;
pub mod layout;
pub mod upscaler;

/// The default G_l2h embedded at build time (`plugin/models/default.safetensors`), which the
/// element runs when `model-location` is not set.
pub fn embedded_default_model() -> Option<&'static [u8]> {
    #[cfg(cyclesr_default_model)]
    return Some(include_bytes!("../../models/default.safetensors"));
    #[cfg(not(cyclesr_default_model))]
    return None;
}
