//! Networks used only in training: the CycleGAN translators G_s2r / G_r2s with their PatchGAN
//! discriminators, the explicit G_s2r (blur kernel and real noise) and its adversarial
//! refinement, and the VGG19 pieces of ESRGAN (perceptual features, HR discriminator D_h).
//! G_l2h itself lives in `gstcyclesr::model::arch`, shared with the element.

pub mod adversarial_fit;
pub mod cyclegan;
pub mod degradation;
pub mod jpeg_quality;
pub mod vgg;
