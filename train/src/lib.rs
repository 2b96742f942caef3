//! CycleSR training, BasicSR-style: networks (`archs`), data, losses, metrics and the
//! training model kept apart; one TOML options file (`options`) drives a run (`trainer`).

pub mod archs;
pub mod bench;
pub mod bench_step;
pub mod camera;
pub mod compare;
pub mod data;
pub mod degrade;
pub mod edges;
pub mod eval;
pub mod export;
pub mod intervene;
pub mod losses;
pub mod metrics;
pub mod model;
pub mod optim;
pub mod options;
pub mod pool;
pub mod report;
pub mod spectrum;
pub mod trainer;
