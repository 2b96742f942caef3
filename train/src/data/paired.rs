//! Paired benchmark sets (LR with its HR ground truth) for validation and evaluation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use tch::Tensor;

use super::loader::pair_shifts;
use super::source::{load_rgb8, named_images, Rgb8};

/// One benchmark image.
#[derive(Debug)]
pub struct PairedItem {
    pub name: String,
    /// `[3, h, w]` in [0, 1].
    pub lr: Tensor,
    /// `[3, H, W]` in [0, 1], `H` in `[h·scale, h·scale + scale)` (and so for `W`).
    pub hr: Tensor,
    /// The (dy, dx) HR-pixel shift `train degrade` recorded for this pair: LR pixel (y, x)
    /// shows the HR scene at (y·scale − dy, x·scale − dx). `None` without a manifest.
    pub shift: Option<(i64, i64)>,
}

/// Where a pair's LR and HR overlap along one axis when LR pixel `y` shows the HR scene from
/// `y·scale − shift` (the shift `train degrade` records): the first LR pixel whose scene starts
/// inside the HR image, where that scene starts, and how many LR pixels from there keep their
/// whole scene inside the HR image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShiftedOverlap {
    pub lr_origin: i64,
    pub hr_origin: i64,
    pub len: i64,
}

/// [`ShiftedOverlap`] of one axis; `None` when no LR pixel fits.
pub fn shifted_overlap(shift: i64, lr_len: i64, hr_len: i64, scale: i64) -> Option<ShiftedOverlap> {
    let lr_origin = (shift.max(0) + scale - 1) / scale;
    let hr_origin = lr_origin * scale - shift;
    let len = (lr_len - lr_origin).min((hr_len - hr_origin).div_euclid(scale));
    (len > 0).then_some(ShiftedOverlap {
        lr_origin,
        hr_origin,
        len,
    })
}

/// LR images and their HR ground truth from two folders, matched by name (the relative path
/// without extension, see [`named_images`]), sorted by name. Unlike training data, pairing is
/// legitimate here: a benchmark needs ground truth.
#[derive(Debug)]
pub struct PairedSet {
    pub items: Vec<PairedItem>,
    /// The factor between LR and HR sizes, the same for every pair.
    pub scale: i64,
}

impl PairedSet {
    /// Loads every pair. Names present in one folder only, unreadable files, or sizes that do
    /// not agree on one integer scale are errors naming the files.
    pub fn load(lr_dir: &Path, hr_dir: &Path) -> Result<PairedSet> {
        let lr_named = named_images(lr_dir).context("LR folder")?;
        let hr_named = named_images(hr_dir).context("HR folder")?;
        let pairs = pair_by_name(&lr_named, &hr_named, lr_dir, &hr_dir.display().to_string())?;
        ensure!(
            !pairs.is_empty(),
            "no images in {} and {}",
            lr_dir.display(),
            hr_dir.display()
        );
        let mut items = Vec::with_capacity(pairs.len());
        let mut scale = None;
        for (name, lr_path, hr_path) in pairs {
            let lr = load_rgb8(&lr_path)?;
            let hr = load_rgb8(&hr_path)?;
            let context = || format!("{} and {}", lr_path.display(), hr_path.display());
            let pair_scale = (hr.width / lr.width) as i64;
            ensure!(
                pair_scale >= 1,
                "{}: the HR image is smaller than the LR one",
                context()
            );
            check_pair_size(&lr, &hr, pair_scale as usize).with_context(context)?;
            match scale {
                None => scale = Some(pair_scale),
                Some(s) if s != pair_scale => bail!(
                    "{}: scale {pair_scale}, but the pairs before have scale {s}",
                    context()
                ),
                Some(_) => {}
            }
            items.push(PairedItem {
                name,
                lr: lr.to_tensor(),
                hr: hr.to_tensor(),
                shift: None,
            });
        }
        let scale = scale.unwrap_or(1);
        // The shifts only serve the stage-1 report: a manifest that does not fit these pairs
        // must not stop an evaluation.
        match pair_shifts(lr_dir, scale as usize) {
            Ok(Some(shifts)) => {
                for item in &mut items {
                    item.shift = shifts.get(&item.name).copied();
                }
            }
            Ok(None) => {}
            Err(e) => eprintln!("warning: pairs taken as aligned: {e:#}"),
        }
        Ok(PairedSet { items, scale })
    }

    /// Keeps the first `n` pairs (by name), for quick validation.
    pub fn truncate(&mut self, n: usize) {
        self.items.truncate(n);
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// Matches LR and HR files by name: `(name, lr, hr)` sorted by name. Names found on one side
/// only are an error listing them (the first few).
pub(crate) fn pair_by_name(
    lr: &BTreeMap<String, PathBuf>,
    hr: &BTreeMap<String, PathBuf>,
    lr_desc: &Path,
    hr_desc: &str,
) -> Result<Vec<(String, PathBuf, PathBuf)>> {
    fn list<'a>(names: impl Iterator<Item = &'a String>) -> String {
        let names: Vec<_> = names.collect();
        let shown: Vec<&str> = names.iter().take(8).map(|s| s.as_str()).collect();
        let more = names.len().saturating_sub(shown.len());
        let mut text = shown.join(", ");
        if more > 0 {
            text.push_str(&format!(" and {more} more"));
        }
        text
    }
    let only_lr: Vec<_> = lr.keys().filter(|k| !hr.contains_key(*k)).collect();
    let only_hr: Vec<_> = hr.keys().filter(|k| !lr.contains_key(*k)).collect();
    if !only_lr.is_empty() || !only_hr.is_empty() {
        let mut problems = Vec::new();
        if !only_lr.is_empty() {
            problems.push(format!(
                "only in LR {}: {}",
                lr_desc.display(),
                list(only_lr.into_iter())
            ));
        }
        if !only_hr.is_empty() {
            problems.push(format!(
                "only in HR {hr_desc}: {}",
                list(only_hr.into_iter())
            ));
        }
        bail!(
            "LR and HR images do not pair by name; {}",
            problems.join("; ")
        );
    }
    Ok(lr
        .iter()
        .map(|(name, lr_path)| (name.clone(), lr_path.clone(), hr[name].clone()))
        .collect())
}

/// An HR image must be `scale` times its LR one, up to `scale - 1` extra pixels (an HR size
/// that is not a multiple of the scale).
pub(crate) fn check_pair_size(lr: &Rgb8, hr: &Rgb8, scale: usize) -> Result<()> {
    let fits = |l: usize, h: usize| l * scale <= h && h < (l + 1) * scale;
    ensure!(
        fits(lr.height, hr.height) && fits(lr.width, hr.width),
        "LR {}x{} and HR {}x{} do not match scale {scale}",
        lr.width,
        lr.height,
        hr.width,
        hr.height
    );
    Ok(())
}
