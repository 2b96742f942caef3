//! `train compare`: strip layout, nearest and HR panels, and errors naming the file at fault.

mod common;

use std::path::{Path, PathBuf};

use cyclesr_train::compare::{run, CompareArgs, GAP};
use gstcyclesr::model::arch::{SrArch, SrConfig};
use gstcyclesr::model::checkpoint::SrModel;

const SCALE: u32 = 4;

fn write_model(dir: &Path, name: &str, seed: i64) -> PathBuf {
    tch::manual_seed(seed);
    let config = SrConfig {
        arch: SrArch::Srresnet,
        blocks: 1,
        features: 4,
        scale: SCALE as i64,
    };
    let path = dir.join(format!("{name}.safetensors"));
    SrModel::new(config, tch::Device::Cpu)
        .unwrap()
        .save(&path)
        .unwrap();
    path
}

fn args(dir: &Path, lr: PathBuf, models: Vec<PathBuf>, hr: Option<PathBuf>) -> CompareArgs {
    CompareArgs {
        input: lr,
        frame: 0,
        model: models,
        hr,
        nearest: true,
        crop: Some("6x5+2+3".to_owned()),
        out: dir.join("strip.png"),
        device: "cpu".to_owned(),
    }
}

#[test]
fn strip_has_nearest_models_and_hr_panels() {
    let dir = common::temp_dir("compare-strip");
    common::write_images(&dir.join("lr"), 1, 16, 12, 1);
    common::write_images(&dir.join("hr"), 1, 16 * SCALE, 12 * SCALE, 2);
    let lr_path = dir.join("lr/img00.png");
    let hr_path = dir.join("hr/img00.png");
    let models = vec![write_model(&dir, "a", 1), write_model(&dir, "b", 2)];
    let a = args(&dir, lr_path.clone(), models, Some(hr_path.clone()));
    run(&a).unwrap();

    let out = image::open(&a.out).unwrap().to_rgb8();
    let (cw, ch, cx, cy) = (6, 5, 2, 3);
    let (pw, ph) = (cw * SCALE, ch * SCALE);
    // nearest | bicubic | a | b | HR
    let panels = 5;
    assert_eq!(out.width(), panels * pw + (panels - 1) * GAP as u32);
    assert_eq!(out.height(), ph);

    let lr = image::open(&lr_path).unwrap().to_rgb8();
    let hr = image::open(&hr_path).unwrap().to_rgb8();
    let hr_x0 = (panels - 1) * (pw + GAP as u32);
    for y in 0..ph {
        for x in 0..pw {
            assert_eq!(
                out.get_pixel(x, y),
                lr.get_pixel(cx + x / SCALE, cy + y / SCALE),
                "nearest panel at ({x}, {y})"
            );
            assert_eq!(
                out.get_pixel(hr_x0 + x, y),
                hr.get_pixel(cx * SCALE + x, cy * SCALE + y),
                "HR panel at ({x}, {y})"
            );
        }
        for k in 1..panels {
            for g in 0..GAP as u32 {
                let x = k * (pw + GAP as u32) - GAP as u32 + g;
                assert_eq!(out.get_pixel(x, y).0, [255; 3], "gap at ({x}, {y})");
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn hr_of_the_wrong_size_names_the_file() {
    let dir = common::temp_dir("compare-bad-hr");
    common::write_images(&dir.join("lr"), 1, 16, 12, 1);
    common::write_images(&dir.join("hr"), 1, 16 * SCALE, 12 * SCALE - 1, 2);
    let hr_path = dir.join("hr/img00.png");
    let models = vec![write_model(&dir, "a", 1)];
    let a = args(
        &dir,
        dir.join("lr/img00.png"),
        models,
        Some(hr_path.clone()),
    );
    let err = format!("{:#}", run(&a).unwrap_err());
    assert!(err.contains(&hr_path.display().to_string()), "{err}");
    assert!(!a.out.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn crop_outside_the_image_names_the_input() {
    let dir = common::temp_dir("compare-bad-crop");
    common::write_images(&dir.join("lr"), 1, 16, 12, 1);
    let lr_path = dir.join("lr/img00.png");
    let mut a = args(&dir, lr_path.clone(), vec![write_model(&dir, "a", 1)], None);
    a.crop = Some("6x5+12+3".to_owned());
    let err = format!("{:#}", run(&a).unwrap_err());
    assert!(err.contains(&lr_path.display().to_string()), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
