//! `train intervene`: one part of an explicit stage 1 changed, everything else kept.

mod common;

use common::{
    args, explicit_overrides, final_state, temp_dir, tiny_options, write_downscaled_pairs,
};

use cyclesr_train::data::{imresize, PairedItem, PairedSet};
use cyclesr_train::intervene::{least_squares_kernel, run, InterveneArgs};
use cyclesr_train::trainer::{fit, FitArgs, LATEST};
use gstcyclesr::model::checkpoint::read_safetensors;
use tch::{Device, Kind, Tensor};

/// A 3×3 point-symmetric kernel summing to 1, stretched along one diagonal.
fn known_kernel() -> Tensor {
    Tensor::from_slice(&[0.02f32, 0.05, 0.1, 0.08, 0.5, 0.08, 0.1, 0.05, 0.02]).view([3, 3])
}

fn intervene(state: &std::path::Path, out: &std::path::Path) -> InterveneArgs {
    InterveneArgs {
        state: state.to_path_buf(),
        out: out.to_path_buf(),
        camera: 0,
        noise_gain: None,
        pairs_lr: None,
        pairs_hr: None,
        kernel_size: 5,
    }
}

#[test]
fn least_squares_recovers_the_kernel_that_made_the_pairs() {
    tch::manual_seed(3);
    let items = (0..2)
        .map(|k| {
            let hr = Tensor::rand([3, 96, 128], (Kind::Float, Device::Cpu));
            let synthetic = imresize(&hr, 0.25).clamp(0.0, 1.0);
            let lr = synthetic
                .unsqueeze(1)
                .pad([1, 1, 1, 1], "replicate", None)
                .conv2d(
                    &known_kernel().view([1, 1, 3, 3]),
                    None::<Tensor>,
                    [1, 1],
                    [0, 0],
                    [1, 1],
                    1,
                )
                .squeeze_dim(1);
            PairedItem {
                name: format!("img{k}"),
                lr,
                hr,
                shift: None,
            }
        })
        .collect();
    let pairs = PairedSet { items, scale: 4 };
    let kernel = least_squares_kernel(&pairs, 5)
        .unwrap()
        .to_kind(Kind::Float);
    let expected = known_kernel().constant_pad_nd([1, 1, 1, 1]);
    let error = (&kernel - &expected).abs().max().double_value(&[]);
    assert!(error < 1e-4, "{kernel} against {expected}");
    assert!(least_squares_kernel(&pairs, 4).is_err());
}

#[test]
fn intervene_changes_the_named_parts_and_training_resumes_from_them() {
    let dir = temp_dir("intervene");
    let options = tiny_options(&dir, "explicit", 4);
    fit(&FitArgs {
        overrides: explicit_overrides(),
        max_iterations: Some(2),
        ..args(options.clone())
    })
    .unwrap();
    let state = dir.join("run/checkpoints").join(LATEST);
    // Pairs whose LR is the 8-bit bicubic↓ of their HR: a kernel of no blur.
    write_downscaled_pairs(&dir.join("pairs"), 2, 64, 5);
    let edited = dir.join("edited.safetensors");
    run(&InterveneArgs {
        noise_gain: Some(2.0),
        pairs_lr: Some(dir.join("pairs/lr")),
        pairs_hr: Some(dir.join("pairs/hr")),
        kernel_size: 3,
        ..intervene(&state, &edited)
    })
    .unwrap();

    let (before, _) = read_safetensors(&state).unwrap();
    let (after, metadata) = read_safetensors(&edited).unwrap();
    assert_eq!(before.len(), after.len());
    let noise = "degradation/0.noise";
    let doubled = (&after[noise] - &before[noise] * 2.0)
        .abs()
        .max()
        .double_value(&[]);
    assert!(doubled < 1e-6, "noise off by {doubled}");
    // The 5x5 kernel of the state holds the 3x3 fitted one: about the identity.
    let kernel = &after["degradation/0.kernel"];
    assert_eq!(kernel.size(), [5, 5]);
    assert!(kernel.double_value(&[2, 2]) > 0.95, "{kernel}");
    let ring = kernel.abs().sum(Kind::Double).double_value(&[])
        - kernel
            .narrow(0, 1, 3)
            .narrow(1, 1, 3)
            .abs()
            .sum(Kind::Double)
            .double_value(&[]);
    assert_eq!(ring, 0.0, "{kernel}");
    for (name, tensor) in &before {
        if name != noise && name != "degradation/0.kernel" {
            assert!(tensor.equal(&after[name]), "{name} changed");
        }
    }
    let record = &metadata["intervention"];
    assert!(
        record.contains("noise bank x2") && record.contains("3x3 least-squares kernel"),
        "{record}"
    );

    // Training resumes from the edited state and keeps its stage 1 (it is fitted once).
    std::fs::copy(&edited, &state).unwrap();
    fit(&FitArgs {
        overrides: explicit_overrides(),
        resume: Some("latest".into()),
        ..args(options)
    })
    .unwrap();
    let resumed = final_state(&dir);
    for name in [noise, "degradation/0.kernel"] {
        assert!(resumed[name].equal(&after[name]), "{name} was not kept");
    }
}

#[test]
fn bad_requests_are_refused_by_name() {
    let dir = temp_dir("intervene-errors");
    fit(&FitArgs {
        overrides: explicit_overrides(),
        ..args(tiny_options(&dir, "explicit", 1))
    })
    .unwrap();
    let state = dir.join("run/checkpoints").join(LATEST);
    let out = dir.join("edited.safetensors");
    let message = |args: InterveneArgs| format!("{:#}", run(&args).unwrap_err());

    let e = message(intervene(&state, &out));
    assert!(e.contains("nothing to change"), "{e}");
    let e = message(InterveneArgs {
        noise_gain: Some(-1.0),
        ..intervene(&state, &out)
    });
    assert!(e.contains("--noise-gain -1"), "{e}");
    let e = message(InterveneArgs {
        camera: 3,
        noise_gain: Some(2.0),
        ..intervene(&state, &out)
    });
    assert!(e.contains("camera 3"), "{e}");
    let e = message(InterveneArgs {
        pairs_lr: Some(dir.join("real")),
        pairs_hr: Some(dir.join("hr")),
        kernel_size: 7,
        ..intervene(&state, &out)
    });
    assert!(e.contains("--kernel-size 7") && e.contains("5"), "{e}");
    assert!(!out.exists());

    // An HR-grid kernel is not replaced by an LR-grid one.
    let hr_grid = temp_dir("intervene-hr-grid");
    fit(&FitArgs {
        overrides: [
            explicit_overrides(),
            vec!["networks.degradation.kernel_grid=\"hr\"".into()],
        ]
        .concat(),
        ..args(tiny_options(&hr_grid, "explicit", 1))
    })
    .unwrap();
    let e = message(InterveneArgs {
        pairs_lr: Some(dir.join("real")),
        pairs_hr: Some(dir.join("hr")),
        ..intervene(&hr_grid.join("run/checkpoints").join(LATEST), &out)
    });
    assert!(e.contains("HR grid"), "{e}");

    let sr_only = temp_dir("intervene-sr-syn");
    fit(&args(tiny_options(&sr_only, "sr-syn", 1))).unwrap();
    let sr_state = sr_only.join("run/checkpoints").join(LATEST);
    let e = message(InterveneArgs {
        noise_gain: Some(2.0),
        ..intervene(&sr_state, &out)
    });
    assert!(
        e.contains(&sr_state.display().to_string()) && e.contains("no explicit stage 1"),
        "{e}"
    );
}
