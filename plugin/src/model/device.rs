//! Device and precision selection for G_l2h.

use anyhow::{bail, Result};
use tch::{Device, Kind};

/// Makes libtorch's CUDA backend available. rustc links with `--as-needed`, which drops
/// `libtorch_cuda.so` from our artifacts because nothing references it by symbol; loading it
/// globally registers the CUDA kernels. On a machine without it this quietly does nothing.
pub fn load_cuda_backend() {
    use std::sync::Once;
    static LOAD: Once = Once::new();
    LOAD.call_once(|| {
        let candidates = [
            format!("{}/libtorch_cuda.so", env!("CYCLESR_LIBTORCH_LIB")),
            "libtorch_cuda.so".to_string(),
        ];
        for candidate in candidates {
            // SAFETY: loading libtorch_cuda runs only its static initialisers, which register
            // kernels with the libtorch already loaded in this process.
            let lib = unsafe {
                libloading::os::unix::Library::open(
                    Some(&candidate),
                    libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_GLOBAL,
                )
            };
            if let Ok(lib) = lib {
                // Kept loaded for the life of the process.
                std::mem::forget(lib);
                break;
            }
        }
    });
}

/// The `device` setting: `auto`, `cpu`, `cuda` or `cuda:N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceRequest {
    Auto,
    Cpu,
    Cuda(usize),
}

impl std::str::FromStr for DeviceRequest {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        Ok(match s {
            "auto" | "" => DeviceRequest::Auto,
            "cpu" => DeviceRequest::Cpu,
            "cuda" => DeviceRequest::Cuda(0),
            _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => DeviceRequest::Cuda(n),
                _ => bail!("invalid device '{s}' (expected auto, cpu, cuda or cuda:N)"),
            },
        })
    }
}

impl std::fmt::Display for DeviceRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceRequest::Auto => f.write_str("auto"),
            DeviceRequest::Cpu => f.write_str("cpu"),
            DeviceRequest::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// A device that exists, plus a warning when `auto` had to fall back to the CPU.
pub fn resolve_device(request: DeviceRequest) -> Result<(Device, Option<String>)> {
    load_cuda_backend();
    let gpus = tch::Cuda::device_count() as usize;
    match request {
        DeviceRequest::Cpu => Ok((Device::Cpu, None)),
        DeviceRequest::Auto if gpus > 0 => Ok((Device::Cuda(0), None)),
        DeviceRequest::Auto => Ok((
            Device::Cpu,
            Some("no CUDA device found, running on the CPU".to_string()),
        )),
        DeviceRequest::Cuda(n) if n < gpus => Ok((Device::Cuda(n), None)),
        DeviceRequest::Cuda(n) if gpus == 0 => {
            bail!("device 'cuda:{n}' requested but no CUDA device is available (use device=auto or cpu)")
        }
        DeviceRequest::Cuda(n) => {
            bail!("device 'cuda:{n}' requested but only {gpus} CUDA device(s) exist")
        }
    }
}

/// Arithmetic precision of inference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Precision {
    #[default]
    Fp32,
    Fp16,
    Bf16,
}

impl Precision {
    pub fn kind(self) -> Kind {
        match self {
            Precision::Fp32 => Kind::Float,
            Precision::Fp16 => Kind::Half,
            Precision::Bf16 => Kind::BFloat16,
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "fp32" => Precision::Fp32,
            "fp16" => Precision::Fp16,
            "bf16" => Precision::Bf16,
            _ => bail!("invalid precision '{s}' (expected fp32, fp16 or bf16)"),
        })
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::Fp32 => "fp32",
            Precision::Fp16 => "fp16",
            Precision::Bf16 => "bf16",
        })
    }
}
