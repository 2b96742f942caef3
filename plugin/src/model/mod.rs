//! Inference-side model code shared by the element and `train`: the SR networks (G_l2h),
//! their checkpoint format, device selection, colour conversion and tiled inference.

pub mod arch;
pub mod checkpoint;
pub mod color;
pub mod device;
pub mod upscaler;
