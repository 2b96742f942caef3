//! G_l2h and its checkpoint format, against PyTorch and against bad files.

mod common;

use std::path::Path;
use std::process::Command;

use common::{temp_dir, write_model, SMALL_SRRESNET};
use gstcyclesr::model::arch::{trainable_parameters, SrArch, SrConfig};
use gstcyclesr::model::checkpoint::{
    config_from_bytes, read_config, read_safetensors, write_safetensors, SrModel,
};
use gstcyclesr::model::color::{downsample_chroma, upsample_chroma, ChromaSiting, YuvEncoding};
use gstcyclesr::model::device::Precision;
use gstcyclesr::model::upscaler::{Tiling, Upscaler};
use tch::{Device, Kind, Tensor};

fn python() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python")
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

#[test]
fn parameter_counts_match_reference_architectures() {
    for (config, expected) in [
        (SrConfig::SRRESNET_16X64, 1_517_571),
        (SrConfig::VDSR_20X64, 1_114_051),
    ] {
        let model = SrModel::new(config, Device::Cpu).unwrap();
        assert_eq!(trainable_parameters(&model.vs), expected, "{config:?}");
    }
}

/// The larger model documented beside the embedded one (plugin/models/README.md) is the
/// paper's G_l2h, MSRResNet 16×64 ×4, and records how it was trained.
#[test]
fn larger_shipped_model_is_the_paper_size_network() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/srresnet-16x64.safetensors");
    let model = SrModel::load(&path, Device::Cpu).unwrap();
    assert_eq!(model.config, SrConfig::SRRESNET_16X64);
    assert_eq!(trainable_parameters(&model.vs), 1_517_571);
    assert_eq!(model.provenance["mode"], "explicit");
    assert_eq!(model.provenance["iteration"], "2100");
    let y = model.upscale(&Tensor::full([1, 3, 8, 8], 0.5, (Kind::Float, Device::Cpu)));
    assert_eq!(y.size(), [1, 3, 32, 32]);
    // A flat grey frame stays flat grey.
    assert!(max_abs_diff(&y, &Tensor::full_like(&y, 0.5)) < 0.02);
}

#[test]
fn output_shapes_follow_scale() {
    for arch in [SrArch::Srresnet, SrArch::Vdsr] {
        for scale in [2, 4] {
            let config = SrConfig {
                arch,
                blocks: 1,
                features: 4,
                scale,
            };
            let model = SrModel::new(config, Device::Cpu).unwrap();
            let y = model.upscale(&Tensor::rand([2, 3, 5, 7], (Kind::Float, Device::Cpu)));
            assert_eq!(y.size(), [2, 3, 5 * scale, 7 * scale], "{config:?}");
        }
    }
}

/// A fresh SRResNet starts near its bilinear base (BasicSR's 0.1-scaled initialisation), so
/// training refines an interpolation instead of first unlearning noise.
#[test]
fn fresh_srresnet_starts_near_bilinear() {
    tch::manual_seed(4);
    let model = SrModel::new(SrConfig::SRRESNET_16X64, Device::Cpu).unwrap();
    let x = Tensor::rand([1, 3, 24, 32], (Kind::Float, Device::Cpu));
    let bilinear = x.upsample_bilinear2d([96, 128], false, None, None);
    let mse = (model.upscale(&x) - &bilinear)
        .square()
        .mean(Kind::Float)
        .double_value(&[]);
    let psnr = -10.0 * mse.log10();
    assert!(psnr > 30.0, "fresh output is {psnr:.1} dB from bilinear");
}

/// Checkpoints written by PyTorch (tests/reference) load and give PyTorch's output.
#[test]
fn pytorch_checkpoint_gives_pytorch_output() {
    for (arch, blocks, features, scale) in [
        ("srresnet", 2, 8, 4),
        ("vdsr", 3, 8, 4),
        ("srresnet", 1, 4, 2),
    ] {
        let dir = temp_dir(&format!("pytorch-{arch}-{scale}"));
        let status = Command::new(python())
            .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/reference"))
            .args([
                "write_reference.py",
                arch,
                &blocks.to_string(),
                &features.to_string(),
                &scale.to_string(),
            ])
            .arg(dir.path())
            .status()
            .expect("run the PyTorch reference (scripts/setup.sh installs it)");
        assert!(status.success());
        let model = SrModel::load(&dir.join("model.safetensors"), Device::Cpu).unwrap();
        assert_eq!(model.provenance["written_by"], "pytorch reference");
        let (io, _) = read_safetensors(&dir.join("io.safetensors")).unwrap();
        let ours = model.upscale(&io["input"]);
        let diff = max_abs_diff(&ours, &io["output"]);
        assert!(diff < 1e-5, "{arch} ×{scale}: max |tch - pytorch| = {diff}");
    }
}

#[test]
fn checkpoint_round_trip_keeps_weights_and_provenance() {
    let dir = temp_dir("round-trip");
    let config = SrConfig {
        arch: SrArch::Vdsr,
        blocks: 2,
        features: 4,
        scale: 4,
    };
    let mut model = SrModel::new(config, Device::Cpu).unwrap();
    model.provenance.insert("iterations".into(), "1234".into());
    let path = dir.join("m.safetensors");
    model.save(&path).unwrap();
    assert_eq!(read_config(&path).unwrap(), config);
    // From the bytes in memory too (the embedded model), without building the network.
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(config_from_bytes(&bytes).unwrap(), config);
    assert!(config_from_bytes(&bytes[..7]).is_err());
    assert!(config_from_bytes(&bytes[..20]).is_err());
    let loaded = SrModel::load(&path, Device::Cpu).unwrap();
    assert_eq!(loaded.provenance["iterations"], "1234");
    let x = Tensor::rand([1, 3, 6, 6], (Kind::Float, Device::Cpu));
    assert_eq!(max_abs_diff(&model.upscale(&x), &loaded.upscale(&x)), 0.0);
    // No temporary file is left next to the checkpoint.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
}

fn load_error(path: &Path) -> String {
    format!("{:#}", SrModel::load(path, Device::Cpu).unwrap_err())
}

#[test]
fn bad_model_files_give_errors_naming_file_and_reason() {
    let dir = temp_dir("bad-files");
    let missing = dir.join("missing.safetensors");
    let e = load_error(&missing);
    assert!(
        e.contains("missing.safetensors") && e.contains("cannot read"),
        "{e}"
    );

    let corrupt = dir.join("corrupt.safetensors");
    std::fs::write(&corrupt, common::noise_bytes(1000, 1)).unwrap();
    let e = load_error(&corrupt);
    assert!(
        e.contains("corrupt.safetensors") && e.contains("not a valid safetensors"),
        "{e}"
    );
    assert!(read_config(&corrupt).is_err());

    // A valid safetensors file that is not a cyclesr checkpoint.
    let foreign = dir.join("foreign.safetensors");
    let t = vec![(
        "w".to_string(),
        Tensor::zeros([2], (Kind::Float, Device::Cpu)),
    )];
    write_safetensors(&foreign, &t, &Default::default()).unwrap();
    let e = load_error(&foreign);
    assert!(
        e.contains("foreign.safetensors") && e.contains("not a cyclesr SR checkpoint"),
        "{e}"
    );

    // Metadata that disagrees with the tensors.
    let good = write_model(&dir, SMALL_SRRESNET);
    let (tensors, mut metadata) = read_safetensors(&good).unwrap();
    metadata.insert(
        "network".into(),
        serde_json::to_string(&SrConfig {
            features: 16,
            ..SMALL_SRRESNET
        })
        .unwrap(),
    );
    let mismatched = dir.join("mismatched.safetensors");
    let tensors: Vec<_> = tensors.into_iter().collect();
    write_safetensors(&mismatched, &tensors, &metadata).unwrap();
    let e = load_error(&mismatched);
    assert!(
        e.contains("mismatched.safetensors") && e.contains("has shape"),
        "{e}"
    );

    // A missing tensor.
    let (mut tensors, metadata) = read_safetensors(&good).unwrap();
    tensors.remove("conv_last.weight");
    let truncated = dir.join("truncated.safetensors");
    write_safetensors(
        &truncated,
        &tensors.into_iter().collect::<Vec<_>>(),
        &metadata,
    )
    .unwrap();
    let e = load_error(&truncated);
    assert!(e.contains("'conv_last.weight' is missing"), "{e}");

    // A scale the networks do not support.
    let (tensors, mut metadata) = read_safetensors(&good).unwrap();
    metadata.insert(
        "network".into(),
        r#"{"arch":"srresnet","blocks":2,"features":8,"scale":3}"#.into(),
    );
    let bad_scale = dir.join("scale3.safetensors");
    write_safetensors(
        &bad_scale,
        &tensors.into_iter().collect::<Vec<_>>(),
        &metadata,
    )
    .unwrap();
    let e = load_error(&bad_scale);
    assert!(e.contains("scale 3 is not supported"), "{e}");
}

/// With overlap at least the receptive radius, tiles reproduce whole-frame inference.
/// Models are laid out channels-last, which gives the NCHW layout's output; saving writes
/// the usual NCHW tensors.
#[test]
fn channels_last_layout_gives_the_same_output() {
    use gstcyclesr::model::layout::{is_channels_last, set_layout, Layout};
    tch::manual_seed(4);
    let model = SrModel::new(SMALL_SRRESNET, Device::Cpu).unwrap();
    let weight = model.vs.variables()["conv_first.weight"].shallow_clone();
    assert!(is_channels_last(&weight));
    let x = Tensor::rand([1, 3, 20, 28], (Kind::Float, Device::Cpu));
    let last = model.upscale(&x);
    set_layout(&model.vs, Layout::ChannelsFirst);
    assert!(weight.is_contiguous() && !is_channels_last(&weight));
    let first = model.upscale(&x);
    assert!(max_abs_diff(&last, &first) < 1e-5);

    let dir = temp_dir("channels-last");
    let path = dir.join("m.safetensors");
    set_layout(&model.vs, Layout::ChannelsLast);
    model.save(&path).unwrap();
    let (tensors, _) = read_safetensors(&path).unwrap();
    assert!(tensors["conv_first.weight"].equal(&weight.contiguous()));
}

#[test]
fn tiled_inference_matches_whole_frame() {
    let dir = temp_dir("tiling");
    let path = write_model(&dir, SMALL_SRRESNET);
    let x = Tensor::rand([1, 3, 29, 23], (Kind::Float, Device::Cpu));
    let whole = Upscaler::new(
        SrModel::load(&path, Device::Cpu).unwrap(),
        Precision::Fp32,
        Tiling::default(),
    )
    .unwrap()
    .upscale(&x);
    for (tile_size, overlap) in [(8, 8), (10, 12), (5, 16)] {
        let tiled = Upscaler::new(
            SrModel::load(&path, Device::Cpu).unwrap(),
            Precision::Fp32,
            Tiling { tile_size, overlap },
        )
        .unwrap()
        .upscale(&x);
        let diff = max_abs_diff(&whole, &tiled);
        assert!(diff < 1e-5, "tile {tile_size} overlap {overlap}: {diff}");
    }
    // Without context the seams show: the test above is not vacuous.
    let seams = Upscaler::new(
        SrModel::load(&path, Device::Cpu).unwrap(),
        Precision::Fp32,
        Tiling {
            tile_size: 8,
            overlap: 0,
        },
    )
    .unwrap()
    .upscale(&x);
    assert!(max_abs_diff(&whole, &seams) > 1e-4);
}

#[test]
fn yuv_encodings_match_known_code_values() {
    let cpu = (Kind::Float, Device::Cpu);
    // BT.601 limited range: black, white and pure red (Rec. 601 tables: 81, 90, 240).
    let rgb = Tensor::from_slice(&[0.0f32, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0]).view([3, 1, 3]);
    let (y, u, v) = YuvEncoding::BT601_LIMITED.from_rgb(&rgb);
    let got: Vec<f32> = Vec::try_from(Tensor::cat(&[y, u, v], 0).round().flatten(0, -1)).unwrap();
    assert_eq!(
        got,
        [16.0, 235.0, 81.0, 128.0, 128.0, 90.0, 128.0, 128.0, 240.0]
    );
    // Round trip for every matrix/range pair.
    let rgb = Tensor::rand([3, 4, 5], cpu);
    for enc in [
        YuvEncoding::BT601_LIMITED,
        YuvEncoding::BT709_LIMITED,
        YuvEncoding {
            full_range: true,
            ..YuvEncoding::BT709_LIMITED
        },
    ] {
        let (y, u, v) = enc.from_rgb(&rgb);
        assert!(
            max_abs_diff(&enc.to_rgb(&y, &u, &v), &rgb) < 1e-5,
            "{enc:?}"
        );
    }
}

#[test]
fn chroma_siting_places_samples_where_they_sit() {
    let plane = Tensor::from_slice(&[10.0f32, 50.0, 90.0, 30.0, 70.0, 110.0]).view([2, 3]);
    // Centred: plain bilinear resampling.
    let centred = ChromaSiting::CENTRED.upsample(&plane, 4, 5);
    assert!(max_abs_diff(&centred, &upsample_chroma(&plane, 4, 5)) < 1e-4);
    let full = Tensor::rand([5, 7], (Kind::Float, Device::Cpu));
    assert!(
        max_abs_diff(
            &ChromaSiting::CENTRED.downsample(&full),
            &downsample_chroma(&full)
        ) < 1e-5
    );
    // MPEG-2: even columns are the samples themselves, odd ones halfway to the next.
    let mpeg2 = ChromaSiting::MPEG2.upsample(&plane, 4, 6);
    let top: Vec<f32> = Vec::try_from(mpeg2.get(0)).unwrap();
    assert_eq!(top, [10.0, 30.0, 50.0, 70.0, 90.0, 90.0]);
    // A flat plane stays flat both ways, odd sizes included.
    let flat = Tensor::full([5, 7], 77.0, (Kind::Float, Device::Cpu));
    for siting in [
        ChromaSiting::MPEG2,
        ChromaSiting {
            h_cosited: true,
            v_cosited: true,
        },
    ] {
        let down = siting.downsample(&flat);
        assert_eq!(down.size(), [3, 4]);
        assert!(
            max_abs_diff(
                &down,
                &Tensor::full([3, 4], 77.0, (Kind::Float, Device::Cpu))
            ) < 1e-4
        );
    }
}
