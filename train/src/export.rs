//! `train export`: G_l2h alone, in the checkpoint format the element loads, with provenance.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use gstcyclesr::model::checkpoint::{copy_into_varstore, SrModel};
use tch::Device;

use crate::model::SavedState;

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// Training state written by `train fit` (e.g. runs/NAME/checkpoints/latest.safetensors).
    #[arg(long)]
    pub state: PathBuf,
    /// Output model file (.safetensors) for the element's model-location.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(args: &ExportArgs) -> Result<()> {
    export(&args.state, &args.out, &BTreeMap::new())?;
    Ok(())
}

/// Writes G_l2h of the training state `state_path` to `out` with its provenance (name, mode,
/// options, data, iteration, commit) and the `extra` entries; returns the model written.
pub fn export(state_path: &Path, out: &Path, extra: &BTreeMap<String, String>) -> Result<SrModel> {
    let context = || format!("training state {}", state_path.display());
    let mut state = SavedState::read(state_path)?;
    let g_l2h = state.take("g_l2h/");
    let SavedState {
        options, metadata, ..
    } = state;
    if !options.mode.trains_sr() {
        bail!(
            "{}: mode {:?} trains no G_l2h, nothing to export",
            state_path.display(),
            options.mode
        );
    }
    let mut model = SrModel::new(options.sr_config(), Device::Cpu)?;
    copy_into_varstore(&mut model.vs, g_l2h).with_context(context)?;
    model.provenance.insert("name".into(), options.name.clone());
    model.provenance.insert(
        "mode".into(),
        serde_json::to_string(&options.mode)?
            .trim_matches('"')
            .to_string(),
    );
    model.provenance.insert("options".into(), options.to_toml());
    model
        .provenance
        .insert("data".into(), serde_json::to_string(&options.data)?);
    for key in ["iteration", "commit"] {
        if let Some(v) = metadata.get(key) {
            model.provenance.insert(key.into(), v.clone());
        }
    }
    model.provenance.extend(extra.clone());
    model.save(out)?;
    eprintln!(
        "exported G_l2h ({:?}) of {} at iteration {} to {}",
        model.config,
        options.name,
        metadata.get("iteration").map_or("?", String::as_str),
        out.display()
    );
    Ok(model)
}
