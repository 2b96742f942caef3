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
        name = "bfloat16 (falls back to fp32 where the device cannot run it)",
        nick = "bf16"
    )]
    Bf16 = 2,
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
