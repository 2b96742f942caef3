//! CUDA gives what the CPU gives: the model, every precision, tiling and the element.
//!
//! These tests need a CUDA device; without one each returns at once after saying so, so they
//! pass (vacuously) in CI. Run them on a GPU machine with `--nocapture` to see the figures.

mod common;

use common::{init, noise_bytes, temp_dir, write_model, SMALL_SRRESNET};
use gst_check::Harness;
use gst_video::{VideoFormat, VideoInfo};
use gstcyclesr::model::checkpoint::SrModel;
use gstcyclesr::model::device::{load_cuda_backend, Precision};
use gstcyclesr::model::upscaler::{Tiling, Upscaler};
use gstcyclesr::model::EmbeddedModel;
use tch::{Device, Kind, Tensor};

/// cuDNN may run fp32 convolutions on TF32 tensor cores (libtorch's default), which round
/// inputs to 10 mantissa bits, and picks its algorithm per shape: CUDA results agree with the
/// CPU, and tiles with whole frames, to about one 8-bit code value, not to 1e-5.
const TF32_TOLERANCE: f64 = 1.0 / 255.0;

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

fn upscale_on(model: SrModel, precision: Precision, x: &Tensor) -> Tensor {
    let device = model.vs.device();
    let upscaler = Upscaler::new(model, precision, Tiling::default()).unwrap();
    upscaler
        .upscale(&x.to_device(device))
        .to_device(Device::Cpu)
}

/// A randomly initialised small network and the trained models this build embeds: random
/// deep networks amplify their input by orders of magnitude, so only trained weights show
/// the error a user sees.
fn models(dir: &std::path::Path, device: Device) -> Vec<(&'static str, SrModel)> {
    let mut models = vec![(
        "random 2x8",
        SrModel::load(&write_model(dir, SMALL_SRRESNET), device).unwrap(),
    )];
    for embedded in EmbeddedModel::ALL {
        if let Some(bytes) = embedded.bytes() {
            models.push((
                embedded.file_name(),
                SrModel::from_bytes(bytes, device).unwrap(),
            ));
        }
    }
    models
}

/// fp32 on CUDA matches the CPU.
#[test]
fn cuda_fp32_matches_cpu() {
    let Some(gpu) = cuda() else { return };
    let dir = temp_dir("cuda-fp32");
    let x = random_image(45, 67);
    for ((name, on_cpu), (_, on_gpu)) in
        models(&dir, Device::Cpu).into_iter().zip(models(&dir, gpu))
    {
        let cpu = upscale_on(on_cpu, Precision::Fp32, &x);
        let gpu = upscale_on(on_gpu, Precision::Fp32, &x);
        let diff = max_abs_diff(&cpu, &gpu);
        eprintln!("{name}: max |cuda - cpu| = {diff:.2e}");
        assert!(
            diff < TF32_TOLERANCE,
            "{name}: CUDA differs from the CPU by {diff}"
        );
    }
}

/// fp16 and bf16 stay close to fp32 (both on CUDA), in PSNR terms, on the trained model.
#[test]
fn cuda_half_precisions_stay_close_to_fp32() {
    let Some(gpu) = cuda() else { return };
    let Some(bytes) = EmbeddedModel::default().bytes() else {
        eprintln!("skipped: this build does not embed the default model");
        return;
    };
    let x = random_image(40, 56);
    let load = || SrModel::from_bytes(bytes, gpu).unwrap();
    let reference = upscale_on(load(), Precision::Fp32, &x);
    for (precision, min_psnr) in [(Precision::Fp16, 40.0), (Precision::Bf16, 30.0)] {
        let y = upscale_on(load(), precision, &x);
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
    let whole = upscale_on(SrModel::load(&model, gpu).unwrap(), Precision::Fp32, &x);
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
    eprintln!("max |tiled - whole| = {diff:.2e}");
    assert!(diff < TF32_TOLERANCE, "tiled differs by {diff}");
}

/// The element's output buffers for `frames` noise frames pushed with `batch` (and `overlap`),
/// then EOS.
fn element_outputs(
    model: &std::path::Path,
    device: &str,
    format: VideoFormat,
    (batch, overlap): (u32, bool),
    frames: u64,
) -> Vec<Vec<u8>> {
    init();
    let element = gst::ElementFactory::make("cyclesr")
        .property("model-location", model.to_str().unwrap())
        .property_from_str("device", device)
        .property("batch", batch)
        .property("overlap", overlap)
        .build()
        .unwrap();
    let mut h = Harness::with_element(&element, Some("sink"), Some("src"));
    let (w, hgt) = (64u32, 36u32);
    let info = VideoInfo::builder(format, w, hgt)
        .fps(gst::Fraction::new(25, 1))
        .build()
        .unwrap();
    h.set_src_caps(info.to_caps().unwrap());
    for seed in 0..frames {
        let buffer = gst::Buffer::from_mut_slice(noise_bytes(info.size(), 5 + seed));
        assert_eq!(h.push(buffer), Ok(gst::FlowSuccess::Ok));
    }
    assert!(h.push_event(gst::event::Eos::new()));
    let outputs: Vec<Vec<u8>> = std::iter::from_fn(|| h.try_pull())
        .map(|out| out.map_readable().unwrap().as_slice().to_vec())
        .collect();
    assert_eq!(outputs.len() as u64, frames, "{device} batch {batch}");
    outputs
}

fn worst_difference(a: &[u8], b: &[u8]) -> i32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(&a, &b)| (a as i32 - b as i32).abs())
        .max()
        .unwrap()
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
        let cpu = element_outputs(&model, "cpu", format, (1, false), 1);
        let gpu = element_outputs(&model, "cuda", format, (1, false), 1);
        let worst = worst_difference(&cpu[0], &gpu[0]);
        eprintln!("{format:?}: worst |cuda - cpu| = {worst} code values");
        assert!(worst <= 1, "{format:?}: {worst} code values apart");
    }
}

/// Batches of 3 on CUDA (the last one partial, drained at EOS), on the streaming thread and on
/// the worker thread, give the CPU's frames.
#[test]
fn batched_element_on_cuda_matches_cpu() {
    if cuda().is_none() {
        return;
    }
    let dir = temp_dir("cuda-batch");
    let model = write_model(&dir, SMALL_SRRESNET);
    let cpu = element_outputs(&model, "cpu", VideoFormat::I420, (1, false), 5);
    for overlap in [false, true] {
        let gpu = element_outputs(&model, "cuda", VideoFormat::I420, (3, overlap), 5);
        for (i, (c, g)) in cpu.iter().zip(&gpu).enumerate() {
            let worst = worst_difference(c, g);
            assert!(
                worst <= 1,
                "overlap {overlap}, frame {i}: {worst} code values apart"
            );
        }
    }
}
