//! cyclesr: real-world video super-resolution as a GStreamer element.
//!
//! The element `cyclesr` runs G_l2h, the SR network of CycleSR (Han et al., "Unsupervised
//! Image Super-Resolution with an Indirect Supervised Path"), with libtorch on CUDA or the
//! CPU. [`model`] holds the networks and checkpoint format that `train` uses as well.

use gst::glib;

mod cyclesr;
pub mod model;

pub use cyclesr::{EmbeddedModelSetting, PrecisionSetting, FORMATS};

/// Registration only: libtorch's CUDA backend is loaded when an element resolves its device,
/// not on every registry scan.
fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    cyclesr::register(plugin)
}

gst::plugin_define!(
    cyclesr,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "MIT/X11",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_REPOSITORY"),
    env!("BUILD_REL_DATE")
);
