//! Reading footage's JPEG quality from its decoded pixels.

use cyclesr_train::archs::jpeg_quality::{estimate_jpeg_quality, luma_table};
use cyclesr_train::data::Rgb8;
use cyclesr_train::degrade::jpeg_roundtrip;
use tch::{Device, Kind, Tensor};

/// A `side`×`side` tinted scene with a natural image's 1/f amplitude spectrum.
fn scene(side: i64, seed: i64) -> Rgb8 {
    tch::manual_seed(seed);
    let white = Tensor::randn([1, side, side], (Kind::Float, Device::Cpu));
    let f = Tensor::fft_fftfreq(side, 1.0, (Kind::Float, Device::Cpu));
    let radius = (f.unsqueeze(1).square() + f.unsqueeze(0).square())
        .sqrt()
        .clamp_min(1.0 / side as f64);
    let field = (white.fft_fft2(None::<&[i64]>, [-2i64, -1], "backward") / radius)
        .fft_ifft2(None::<&[i64]>, [-2i64, -1], "backward")
        .real();
    let field = &field / field.std(true) * 0.15;
    let tint = Tensor::from_slice(&[1.0f32, 0.8, 0.6]).view([3, 1, 1]);
    Rgb8::from_tensor(&((field * tint) + 0.5)).unwrap()
}

fn crop(image: &Rgb8, top: usize, left: usize) -> Rgb8 {
    let (h, w) = (image.height - top, image.width - left);
    let mut data = Vec::with_capacity(h * w * 3);
    for row in top..image.height {
        let start = (row * image.width + left) * 3;
        data.extend_from_slice(&image.data[start..start + w * 3]);
    }
    Rgb8 {
        height: h,
        width: w,
        data,
    }
}

#[test]
fn luma_table_scales_as_libjpeg() {
    assert_eq!(luma_table(50)[0], 16);
    assert_eq!(luma_table(75)[0], 8);
    assert_eq!(luma_table(10)[0], 80);
    assert!(luma_table(100).iter().all(|&q| q == 1));
}

/// The quality each image was compressed at is read back, at any grid offset; an image never
/// compressed, or scaled after its JPEG, has no lattice.
#[test]
fn reads_back_the_quality_and_the_grid() {
    for (seed, quality) in [(1, 30u8), (2, 55), (3, 75), (4, 90)] {
        let compressed = jpeg_roundtrip(&scene(128, seed), quality).unwrap();
        let estimate = estimate_jpeg_quality(&compressed).unwrap().unwrap();
        assert_eq!(
            luma_table(estimate.quality),
            luma_table(quality),
            "quality {quality} read as {estimate:?}"
        );
        assert_eq!(estimate.offset, (0, 0));
        let shifted = estimate_jpeg_quality(&crop(&compressed, 3, 5))
            .unwrap()
            .unwrap();
        assert_eq!(luma_table(shifted.quality), luma_table(quality));
        assert_eq!(shifted.offset, (5, 3));
    }
    assert_eq!(estimate_jpeg_quality(&scene(128, 5)).unwrap(), None);
    let compressed = jpeg_roundtrip(&scene(256, 6), 60).unwrap();
    let halved = Rgb8::from_tensor(
        &cyclesr_train::data::imresize(&compressed.to_tensor().unsqueeze(0), 0.5).squeeze_dim(0),
    )
    .unwrap();
    assert_eq!(estimate_jpeg_quality(&halved).unwrap(), None);
}

/// With `jpeg_qualities = "footage"`, a compressed camera whose frames are JPEG draws from
/// their qualities in place of the range, keeps them through a state round trip, and footage
/// with no lattice (or a lossless source) keeps the range.
#[test]
fn footage_qualities_replace_the_range() {
    use cyclesr_train::archs::degradation::{
        CameraDegradation, Compression, DegradationConfig, ExplicitDegradation, JpegQualities,
    };
    use cyclesr_train::archs::jpeg_quality::read_footage;
    use rand::SeedableRng;

    let frames: Vec<Rgb8> = (0..4)
        .map(|i| jpeg_roundtrip(&scene(96, 10 + i), 40).unwrap())
        .collect();
    let frames: Vec<&Rgb8> = frames.iter().collect();
    let plain: Vec<Rgb8> = (0..4).map(|i| scene(96, 20 + i)).collect();
    let plain: Vec<&Rgb8> = plain.iter().collect();
    let camera = |source, compression| CameraDegradation {
        source,
        kernel: Tensor::ones([1, 1], (Kind::Float, Device::Cpu)),
        noise: Tensor::zeros([1, 3, 16, 16], (Kind::Float, Device::Cpu)),
        noise_scales: None,
        noise_by_brightness: None,
        compression,
        jpeg_qualities: None,
    };
    // Source 0 is JPEG footage, 1 has no lattice, 2 is lossless, 3 is marked H.264.
    let range = Some(Compression::Jpeg([90, 95]));
    let mut g = ExplicitDegradation {
        cameras: vec![
            camera(0, range),
            camera(1, range),
            camera(2, None),
            camera(3, Some(Compression::H264([20, 40]))),
        ],
        hr_grid: None,
    };
    let config = DegradationConfig {
        jpeg_quality: Some([90, 95]),
        jpeg_qualities: JpegQualities::Footage,
        ..DegradationConfig::default()
    };
    let read = g
        .read_footage_jpeg(&config, &|source| {
            read_footage(if source == 0 { &frames } else { &plain })
        })
        .unwrap();
    assert_eq!(read[0].as_ref().unwrap().qualities, vec![40; 4]);
    assert!(read[0].as_ref().unwrap().is_jpeg());
    assert!(!read[1].as_ref().unwrap().is_jpeg() && read[2].is_none() && read[3].is_none());
    assert!(g.cameras[1].jpeg_qualities.is_none() && g.cameras[2].jpeg_qualities.is_none());
    assert!(g.cameras[0].describe_compression().contains("40–40"));

    // Camera 0 alone: its output is the round trip at 40, not at 90–95.
    let jpeg_camera = ExplicitDegradation {
        cameras: vec![g.cameras.remove(0)],
        hr_grid: None,
    };
    let x = scene(24, 30).to_tensor().unsqueeze(0);
    let out = jpeg_camera
        .forward(&x, &mut rand::rngs::StdRng::seed_from_u64(1))
        .unwrap();
    let expected = jpeg_roundtrip(&Rgb8::from_tensor(&x.get(0)).unwrap(), 40)
        .unwrap()
        .to_tensor();
    assert!(out.get(0).equal(&expected));

    let tensors = || -> std::collections::HashMap<String, Tensor> {
        jpeg_camera.tensors().into_iter().collect()
    };
    let back = ExplicitDegradation::from_tensors(tensors(), &|_| range, Device::Cpu).unwrap();
    assert!(back.cameras[0]
        .jpeg_qualities
        .as_ref()
        .unwrap()
        .equal(&Tensor::from_slice(&[40i64; 4])));
    let mut bad = tensors();
    bad.insert("0.jpeg_qualities".into(), Tensor::from_slice(&[40i64, 0]));
    let Err(e) = ExplicitDegradation::from_tensors(bad, &|_| range, Device::Cpu) else {
        panic!("a quality of 0 was accepted");
    };
    assert!(e.to_string().contains("outside 1..=100"), "{e}");

    // The range stays the default.
    assert_eq!(
        DegradationConfig::default().jpeg_qualities,
        JpegQualities::Range
    );
}
