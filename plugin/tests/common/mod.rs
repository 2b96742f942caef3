//! Helpers shared by the plugin's integration tests.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};

use gstcyclesr::model::arch::{SrArch, SrConfig};
use gstcyclesr::model::checkpoint::SrModel;

mod test_dir;
#[allow(unused_imports)] // each test binary uses a different subset
pub use test_dir::{temp_dir, TestDir};

pub const SMALL_SRRESNET: SrConfig = SrConfig {
    arch: SrArch::Srresnet,
    blocks: 2,
    features: 8,
    scale: 4,
};

/// Writes a randomly initialised network (seeded) and returns its path.
pub fn write_model(dir: &Path, config: SrConfig) -> PathBuf {
    tch::manual_seed(7);
    let model = SrModel::new(config, tch::Device::Cpu).unwrap();
    let path = dir.join(format!(
        "{}-{}x{}.safetensors",
        config.arch, config.blocks, config.features
    ));
    model.save(&path).unwrap();
    path
}

/// Deterministic pseudo-random bytes.
pub fn noise_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 56) as u8
        })
        .collect()
}

pub fn init() {
    use std::sync::Once;
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gstcyclesr::plugin_register_static().expect("register cyclesr");
    });
}
