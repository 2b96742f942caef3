//! The `cyclesr` element: G_l2h on every frame.

use gst::glib;
use gst::prelude::*;

mod batch;
mod frame;
mod imp;

pub use frame::FORMATS;

/// The `precision` property's values.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstCycleSrPrecision")]
pub enum PrecisionSetting {
    #[default]
    #[enum_value(name = "32-bit float", nick = "fp32")]
    Fp32 = 0,
    #[enum_value(
        name = "16-bit float (CUDA only; fp32 is used on the CPU)",
        nick = "fp16"
    )]
    Fp16 = 1,
    #[enum_value(
        name = "bfloat16 (GPUs, and CPUs with AVX512-BF16; falls back to fp32 where the device cannot run it)",
        nick = "bf16"
    )]
    Bf16 = 2,
}

/// The `embedded-model` property's values: which model compiled into the plugin runs when
/// `model-location` is not set.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstCycleSrEmbeddedModel")]
pub enum EmbeddedModelSetting {
    #[default]
    #[enum_value(
        name = "SRResNet 16x64: the better model on every benchmark (about 4x the compute of fast)",
        nick = "quality"
    )]
    Quality = 0,
    #[enum_value(name = "SRResNet 6x32: about 4x faster, for CPUs", nick = "fast")]
    Fast = 1,
}

impl From<EmbeddedModelSetting> for crate::model::EmbeddedModel {
    fn from(setting: EmbeddedModelSetting) -> Self {
        match setting {
            EmbeddedModelSetting::Quality => crate::model::EmbeddedModel::Quality,
            EmbeddedModelSetting::Fast => crate::model::EmbeddedModel::Fast,
        }
    }
}

glib::wrapper! {
    pub struct CycleSr(ObjectSubclass<imp::CycleSr>)
        @extends gst_video::VideoFilter, gst_base::BaseTransform, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "cyclesr",
        gst::Rank::NONE,
        CycleSr::static_type(),
    )
}
