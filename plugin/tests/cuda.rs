//! CUDA gives what the CPU gives: the model, every precision, tiling and the element.
//!
//! These tests need a CUDA device; without one each returns at once after saying so, so they
//! pass (vacuously) in CI. Run them on a GPU machine with `--nocapture` to see the figures.

mod common;

use common::{init, noise_bytes, temp_dir, write_model, SMALL_SRRESNET};
use gst_check::Harness;
use gst_video::{VideoFormat, VideoInfo};
use gstcyclesr::model::arch::{SrArch, SrConfig};
use gstcyclesr::model::checkpoint::SrModel;
use gstcyclesr::model::device::{load_cuda_backend, Precision};
use gstcyclesr::model::upscaler::{Tiling, Upscaler};
use tch::{Device, Kind, Tensor};

/// The reference network (SRResNet 16×64), so that TF32 and half-precision error accumulates
/// through as many layers as the product runs.
const FULL_SRRESNET: SrConfig = SrConfig {
    arch: SrArch::Srresnet,
    blocks: 16,
    features: 64,
    scale: 4,
};

fn cuda() -> Option<Device> {
    load_cuda_backend();
    if tch::Cuda::device_count() == 0 {
        eprintln!("skipped: no CUDA device");
        return None;
    }
    Some(Device::Cuda(0))
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a.to_device(Device::Cpu) - b.to_device(Device::Cpu))
        .abs()
        .max()
        .double_value(&[])
}

fn random_image(h: i64, w: i64) -> Tensor {
    tch::manual_seed(3);
    Tensor::rand([1, 3, h, w], (Kind::Float, Device::Cpu))
}

fn upscale_on(model: &std::path::Path, device: Device, precision: Precision, x: &Tensor) -> Tensor {
    let upscaler = Upscaler::new(
        SrModel::load(model, device).unwrap(),
        precision,
        Tiling::default(),
    )
    .unwrap();
    upscaler
        .upscale(&x.to_device(device))
        .to_device(Device::Cpu)
}

/// fp32 on CUDA matches the CPU. cuDNN may use TF32 tensor cores for fp32 convolutions
/// (libtorch's default), which rounds inputs to 10 mantissa bits: hence 1/255, not 1e-5.
#[test]
fn cuda_fp32_matches_cpu() {
    let Some(gpu) = cuda() else { return };
    for config in [SMALL_SRRESNET, FULL_SRRESNET] {
        let dir = temp_dir(&format!("cuda-fp32-{}", config.blocks));
        let model = write_model(&dir, config);
        let x = random_image(45, 67);
        let cpu = upscale_on(&model, Device::Cpu, Precision::Fp32, &x);
        let gpu = upscale_on(&model, gpu, Precision::Fp32, &x);
        let diff = max_abs_diff(&cpu, &gpu);
        eprintln!(
            "{}x{}: max |cuda - cpu| = {diff:.2e}",
            config.blocks, config.features
        );
        assert!(diff < 1.0 / 255.0, "CUDA differs from the CPU by {diff}");
    }
}

/// fp16 and bf16 stay close to fp32 (both on CUDA), in PSNR terms.
#[test]
fn cuda_half_precisions_stay_close_to_fp32() {
    let Some(gpu) = cuda() else { return };
    let dir = temp_dir("cuda-half");
    let model = write_model(&dir, FULL_SRRESNET);
    let x = random_image(40, 56);
    let reference = upscale_on(&model, gpu, Precision::Fp32, &x);
    for (precision, min_psnr) in [(Precision::Fp16, 50.0), (Precision::Bf16, 35.0)] {
        let y = upscale_on(&model, gpu, precision, &x);
        let mse = (&y - &reference)
            .square()
            .mean(Kind::Float)
            .double_value(&[]);
        let psnr = -10.0 * mse.max(1e-20).log10();
        eprintln!("{precision}: PSNR against fp32 {psnr:.1} dB");
        assert!(psnr > min_psnr, "{precision}: PSNR {psnr:.1} dB vs fp32");
    }
}

/// Tiles on CUDA give the whole-frame result on CUDA.
#[test]
fn cuda_tiles_match_whole_frame() {
    let Some(gpu) = cuda() else { return };
    let dir = temp_dir("cuda-tiles");
    let model = write_model(&dir, SMALL_SRRESNET);
    let x = random_image(70, 90).to_device(gpu);
    let whole = upscale_on(&model, gpu, Precision::Fp32, &x);
    let tiled = Upscaler::new(
        SrModel::load(&model, gpu).unwrap(),
        Precision::Fp32,
        Tiling {
            tile_size: 32,
            overlap: 16,
        },
    )
    .unwrap()
    .upscale(&x);
    let diff = max_abs_diff(&whole, &tiled);
    assert!(diff < 1e-4, "tiled differs by {diff}");
}

fn element_output(model: &std::path::Path, device: &str, format: VideoFormat) -> Vec<u8> {
    init();
    let element = gst::ElementFactory::make("cyclesr")
        .property("model-location", model.to_str().unwrap())
        .property_from_str("device", device)
        .build()
        .unwrap();
    let mut h = Harness::with_element(&element, Some("sink"), Some("src"));
    let (w, hgt) = (64u32, 36u32);
    let info = VideoInfo::builder(format, w, hgt)
        .fps(gst::Fraction::new(25, 1))
        .build()
        .unwrap();
    h.set_src_caps(info.to_caps().unwrap());
    let buffer = gst::Buffer::from_mut_slice(noise_bytes(info.size(), 5));
    assert_eq!(h.push(buffer), Ok(gst::FlowSuccess::Ok));
    let out = h.pull().unwrap();
    let map = out.map_readable().unwrap();
    map.as_slice().to_vec()
}

/// The element on CUDA writes the frames it writes on the CPU (RGB and I420), within the
/// rounding that TF32 can move by one code value.
#[test]
fn element_on_cuda_matches_element_on_cpu() {
    if cuda().is_none() {
        return;
    }
    let dir = temp_dir("cuda-element");
    let model = write_model(&dir, SMALL_SRRESNET);
    for format in [VideoFormat::Rgb, VideoFormat::I420, VideoFormat::Nv12] {
        let cpu = element_output(&model, "cpu", format);
        let gpu = element_output(&model, "cuda", format);
        assert_eq!(cpu.len(), gpu.len(), "{format:?}");
        let worst = cpu
            .iter()
            .zip(&gpu)
            .map(|(&a, &b)| (a as i32 - b as i32).abs())
            .max()
            .unwrap();
        eprintln!("{format:?}: worst |cuda - cpu| = {worst} code values");
        assert!(worst <= 1, "{format:?}: {worst} code values apart");
    }
}
