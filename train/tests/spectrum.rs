//! [`LinearResponse`]: a degradation's blur and noise read from aligned pairs.

mod common;

use common::gaussian;
use cyclesr_train::degrade::gaussian_kernel;
use cyclesr_train::spectrum::{
    mean_power_spectrum, radial_frequency, y_tiles, LinearResponse, REPORT_TILE, RESPONSE_BANDS,
};
use tch::{Device, Kind, Tensor};

/// A `[3, side, side]` grey texture around 0.5: white, so every frequency is in it.
fn texture(side: i64, seed: u64) -> Tensor {
    (gaussian(&[1, side, side], seed) * 0.1 + 0.5).repeat([3, 1, 1])
}

fn response(pairs: &[(Tensor, Tensor)]) -> LinearResponse {
    let mut response = LinearResponse::default();
    for (input, output) in pairs {
        response.add(input, output).unwrap();
    }
    response
}

#[test]
fn an_unchanged_image_has_unit_gain_and_nothing_unexplained() {
    let image = texture(128, 1);
    let same = response(&[(image.shallow_clone(), image.shallow_clone())]);
    assert_eq!(same.tiles(), 16);
    for gain in same.band_gains() {
        assert!((gain - 1.0).abs() < 1e-9, "{gain}");
    }
    assert!(
        same.unexplained_sigma() < 1e-6,
        "{}",
        same.unexplained_sigma()
    );
    // Equal responses: no difference but rounding.
    assert!(same.psnr_against_identity() > 200.0);
    assert!(same.psnr_against(&same).is_infinite());
}

#[test]
fn a_gaussian_blur_reads_as_its_transfer_function() {
    let sigma = 1.0;
    let kernel = gaussian_kernel(sigma, sigma, 0.0);
    let k = kernel.size()[0];
    let pairs: Vec<(Tensor, Tensor)> = (0..4)
        .map(|seed| {
            let image = texture(160 + k - 1, seed);
            let blurred = image
                .unsqueeze(0)
                .conv2d(
                    &kernel.view([1, 1, k, k]).repeat([3, 1, 1, 1]),
                    None::<Tensor>,
                    [1, 1],
                    [0, 0],
                    [1, 1],
                    3,
                )
                .squeeze_dim(0);
            let half = (k - 1) / 2;
            (image.narrow(1, half, 160).narrow(2, half, 160), blurred)
        })
        .collect();
    let blur = response(&pairs);
    // The band means of exp(−2π²σ²f²) over the same bins; the Hann window smooths |H| by about
    // a bin, within 0.03 of it.
    let f = radial_frequency(
        REPORT_TILE,
        &Tensor::zeros([1], (Kind::Double, Device::Cpu)),
    )
    .to_kind(Kind::Double);
    let expected = (f.square() * (-2.0 * std::f64::consts::PI.powi(2) * sigma * sigma)).exp();
    let mut lower = 0.0;
    for (&upper, gain) in RESPONSE_BANDS.iter().zip(blur.band_gains()) {
        let band = f.gt(lower).logical_and(&f.le(upper + 1e-9));
        let want = expected
            .masked_select(&band)
            .mean(Kind::Double)
            .double_value(&[]);
        assert!(
            (gain - want).abs() < 0.03,
            "band to {upper}: |H| {gain}, expected {want}"
        );
        lower = upper;
    }
    // A deterministic blur leaves unexplained only what crosses the tiles' borders: under 5%
    // of the texture's σ (0.1 · 219 = 21.9 code values on Y).
    assert!(
        blur.unexplained_sigma() < 0.05 * 21.9,
        "{}",
        blur.unexplained_sigma()
    );
}

#[test]
fn added_noise_is_what_the_response_leaves_unexplained() {
    let pairs: Vec<(Tensor, Tensor)> = (0..4)
        .map(|seed| {
            let image = texture(160, seed);
            let noisy = &image + gaussian(&[1, 160, 160], 100 + seed).repeat([3, 1, 1]) * 0.02;
            (image, noisy)
        })
        .collect();
    let noise = response(&pairs);
    // Y = 16 + 219·luma: grey noise of σ 0.02 is 4.38 code values on Y.
    let sigma = noise.unexplained_sigma();
    assert!((sigma / 4.38 - 1.0).abs() < 0.05, "{sigma}");
    // Noise independent of the image averages out of the gain.
    for gain in noise.band_gains() {
        assert!((gain - 1.0).abs() < 0.05, "{gain}");
    }
}

#[test]
fn the_psnr_between_two_responses_is_the_blurred_images_difference() {
    // Output = input with its contrast scaled by c: H = c at every frequency, so the two
    // images differ by (1 − c) times the input's (tile-mean-free, windowed) content.
    let c = 0.8;
    let image = texture(128, 7);
    let scaled = (&image - 0.5) * c + 0.5;
    let contrast = response(&[(image.shallow_clone(), scaled)]);
    let tiles = y_tiles(&image.to_kind(Kind::Double), REPORT_TILE).unwrap() * 255.0;
    // The mean power over the bins but the zero frequency, which the responses leave out.
    let spectrum = mean_power_spectrum(&tiles).to_kind(Kind::Double);
    let power = (spectrum.sum(Kind::Double).double_value(&[]) - spectrum.double_value(&[0, 0]))
        / (REPORT_TILE * REPORT_TILE) as f64;
    let want = 10.0 * (255f64.powi(2) / ((1.0 - c) * (1.0 - c) * power)).log10();
    let got = contrast.psnr_against_identity();
    assert!((got - want).abs() < 1e-4, "{got} dB, by hand {want} dB");
    // Against a response at 0.9, half the difference: 6.02 dB higher.
    let nearer = response(&[(image.shallow_clone(), (&image - 0.5) * 0.9 + 0.5)]);
    let half = contrast.psnr_against(&nearer);
    assert!((half - want - 20.0 * 2f64.log10()).abs() < 1e-4, "{half}");
}

#[test]
fn mismatched_or_small_pairs_are_handled() {
    let mut response = LinearResponse::default();
    let e = response
        .add(&texture(64, 1), &texture(48, 1))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("[3, 64, 64]") && e.contains("[3, 48, 48]"),
        "{e}"
    );
    // Under one tile: nothing added, no error.
    response.add(&texture(31, 1), &texture(31, 2)).unwrap();
    assert_eq!(response.tiles(), 0);
}
