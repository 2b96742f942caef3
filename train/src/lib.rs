//! CycleSR training, BasicSR-style: networks (`archs`), data, losses, metrics and the
//! training model kept apart; one TOML options file drives a run.

pub mod archs;
pub mod data;
pub mod degrade;
pub mod eval;
pub mod losses;
pub mod metrics;
