//! Edge widths by direction (`cyclesr_train::edges`): a known blur is read with its spread and
//! direction, an unblurred set reads none, and too few edges is an error that says so.

mod common;

use common::{ellipse_scene, Ellipse};
use cyclesr_train::degrade::gaussian_kernel;
use cyclesr_train::edges::{edges, extra_blur, Edge};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tch::{Kind, Tensor};

/// LR side of the test scenes.
const SIDE: i64 = 256;

/// A scene of opaque disks with hard edges (every normal direction), rendered at 4× and
/// downscaled by the bicubic: `[3, SIDE, SIDE]` in [0, 1].
fn disks(seed: u64) -> Tensor {
    let hr = SIDE * 4;
    let mut rng = StdRng::seed_from_u64(seed);
    let shapes: Vec<Ellipse> = (0..40)
        .map(|_| {
            let centre = (
                rng.random_range(0.0..hr as f64),
                rng.random_range(0.0..hr as f64),
            );
            let radius = rng.random_range(30.0..120.0);
            let level = if rng.random_bool(0.5) {
                0.85
            } else {
                rng.random_range(0.45..0.6)
            };
            Ellipse {
                centre,
                along: radius,
                across: radius,
                angle: 0.0,
                level,
            }
        })
        .collect();
    ellipse_scene(hr, 0.15, &shapes)
}

/// `image` blurred by a Gaussian of σ `along` × `across` LR px at `angle` degrees.
fn blurred(image: &Tensor, along: f64, across: f64, angle: f64) -> Tensor {
    let kernel = gaussian_kernel(along, across, angle);
    let k = kernel.size()[0];
    let weight = kernel
        .view([1, 1, k, k])
        .expand([3, 1, k, k], false)
        .contiguous();
    image
        .unsqueeze(0)
        .replication_pad2d([k / 2, k / 2, k / 2, k / 2])
        .conv2d(&weight, None::<Tensor>, [1, 1], [0, 0], [1, 1], 3)
        .squeeze_dim(0)
}

fn edges_of(images: &[Tensor]) -> Vec<Edge> {
    images.iter().flat_map(|i| edges(i).unwrap()).collect()
}

#[test]
fn a_gaussian_blur_is_read_with_its_spread_and_direction() {
    let scenes = [disks(1), disks(2)];
    let reference = edges_of(&scenes);
    for angle in [30.0, -60.0] {
        let soft: Vec<Tensor> = scenes.iter().map(|s| blurred(s, 1.0, 0.5, angle)).collect();
        let extra = extra_blur(&edges_of(&soft), &reference).unwrap();
        println!("blur 1.0 x 0.5 at {angle}: read {extra}");
        assert!((extra.sigma_major - 1.0).abs() < 0.15, "{extra:?}");
        assert!((extra.sigma_minor - 0.5).abs() < 0.15, "{extra:?}");
        assert!((extra.angle_degrees - angle).abs() < 8.0, "{extra:?}");
        // The other way round the same blur reads as negative spread.
        let back = extra_blur(&reference, &edges_of(&soft)).unwrap();
        assert!((back.sigma_minor + 1.0).abs() < 0.15, "{back:?}");
    }
}

#[test]
fn two_unblurred_scenes_read_no_extra_blur() {
    let extra = extra_blur(
        &edges_of(&[disks(3), disks(4)]),
        &edges_of(&[disks(5), disks(6)]),
    )
    .unwrap();
    println!("unblurred: {extra}");
    assert!(
        extra.sigma_major.abs() < 0.15 && extra.sigma_minor.abs() < 0.15,
        "{extra:?}"
    );
}

#[test]
fn too_few_edges_is_an_error_that_counts_them() {
    let flat = Tensor::full([3, 64, 64], 0.5, (Kind::Float, tch::Device::Cpu));
    assert!(edges(&flat).unwrap().is_empty());
    let error = extra_blur(&edges(&flat).unwrap(), &edges_of(&[disks(1)])).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("too few step edges to compare: 0 of 12 directions"),
        "{error}"
    );
    let tiny = Tensor::full([3, 14, 64], 0.5, (Kind::Float, tch::Device::Cpu));
    assert!(edges(&tiny).unwrap().is_empty());
    let grey = Tensor::zeros([1, 64, 64], (Kind::Float, tch::Device::Cpu));
    assert!(edges(&grey)
        .unwrap_err()
        .to_string()
        .contains("[1, 64, 64]"));
}
