//! The options file of a training run (TOML, BasicSR-style named sections) and its
//! command-line overrides.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use gstcyclesr::model::arch::{SrArch, SrConfig};
use serde::{Deserialize, Serialize};

use crate::archs::cyclegan::{DiscriminatorConfig, TranslatorConfig};
use crate::archs::degradation::{Compression, DegradationConfig, SourceStorage};
use crate::archs::vgg::VggDiscriminatorConfig;
use crate::data::{DataOptions, FootageCodec};

/// Which column of the paper's comparison a run trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// SR_syn: G_l2h on bicubic pairs only.
    SrSyn,
    /// SR_paired (oracle): G_l2h on true LR–HR pairs (`data.paired_lr`, or drawn online with
    /// `data.paired_preset`).
    Paired,
    /// SR_blind (not in the paper): G_l2h on bicubic↓HR degraded by random two-round blur,
    /// resize, noise and JPEG in the style of Real-ESRGAN, with no real LR.
    SrBlind,
    /// Stage 1 alone: the CycleGAN between real and synthetic LR.
    Cyclegan,
    /// Cycle+SR: stage 1 trained, then frozen while G_l2h learns on G_s2r(synthetic LR).
    Separate,
    /// CycleSR: both stages trained together on L1 + L2 (MSE only in L2).
    Joint,
    /// CycleSRGAN: CycleSR with the perceptual and relativistic GAN terms in L2.
    JointGan,
    /// Not in the paper: stage 1 is an explicit G_s2r (`networks.degradation`: a blur kernel
    /// fitted to the real LR's power spectrum and noise cut from its flat regions), fitted once
    /// before training; then G_l2h learns on G_s2r(synthetic LR) → HR, as in Cycle+SR.
    Explicit,
}

impl Mode {
    /// Whether stage 1 is the CycleGAN (G_s2r, G_r2s, D_r, D_s).
    pub fn uses_translator(self) -> bool {
        !matches!(
            self,
            Mode::SrSyn | Mode::Paired | Mode::SrBlind | Mode::Explicit
        )
    }
    /// Whether stage 1 is the explicit degradation model.
    pub fn uses_explicit_degradation(self) -> bool {
        self == Mode::Explicit
    }
    /// Whether the run trains on real LR at all (and so counts it in an epoch).
    pub fn uses_real_lr(self) -> bool {
        self.uses_translator() || self.uses_explicit_degradation()
    }
    pub fn trains_sr(self) -> bool {
        self != Mode::Cyclegan
    }
    pub fn uses_sr_gan(self) -> bool {
        self == Mode::JointGan
    }
}

/// `{ weight = ... }`: one loss term.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossTerm {
    pub weight: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityLoss {
    pub weight: f64,
    /// The official code multiplies the identity weight by the cycle weight (0.5 × 10 = 5);
    /// the paper states 0.5. `true` follows the official code.
    #[serde(default)]
    pub scale_by_cycle: bool,
}

/// L1 (translation) and L2 (indirect supervised SR) terms.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Losses {
    /// LSGAN adversarial weight of the translators and their discriminators.
    pub gan: LossTerm,
    /// λ_cyc.
    pub cycle: LossTerm,
    /// λ_id.
    pub identity: IdentityLoss,
    /// λ_mse: MSE of G_l2h(G_s2r(I_syn)) against the HR patch.
    pub sr_mse: LossTerm,
    /// λ_percep: VGG19 conv5_4 L1 (needs `networks.vgg19`; off without it).
    pub perceptual: LossTerm,
    /// λ_advsr: relativistic average GAN with D_h (joint-gan only).
    pub sr_gan: LossTerm,
    /// Not in the paper: L1 between 4×4 box-downsampled input and output of each translator,
    /// so that they learn the degradation (blur, noise, compression) but keep colours and
    /// low frequencies (after Fritsche et al., "Frequency Separation for Real-World
    /// Super-Resolution"). 0 (the paper) when absent.
    #[serde(default = "LossTerm::off")]
    pub low_frequency: LossTerm,
}

impl LossTerm {
    fn off() -> Self {
        LossTerm { weight: 0.0 }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SrNetwork {
    pub arch: SrArch,
    pub blocks: i64,
    pub features: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Networks {
    /// G_l2h.
    pub sr: SrNetwork,
    /// G_s2r and G_r2s.
    pub translator: TranslatorConfig,
    /// D_r and D_s.
    pub discriminator: DiscriminatorConfig,
    /// D_h.
    pub sr_discriminator: VggDiscriminatorConfig,
    /// The explicit G_s2r of mode `explicit`.
    #[serde(default)]
    pub degradation: DegradationConfig,
    /// VGG19 weights for the perceptual loss (safetensors, torchvision names; see
    /// scripts/convert_vgg19.py). Nothing can be downloaded, so without it the term is off.
    #[serde(default)]
    pub vgg19: Option<PathBuf>,
    /// A model file (`train export`'s, or one under plugin/models/) G_l2h starts from
    /// instead of random weights: fine-tuning a trained network to other footage or a new
    /// stage 1. Its network must be `sr`'s. Resuming a run reads its state instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sr_init: Option<PathBuf>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Optimizer {
    pub lr_translator: f64,
    pub lr_sr: f64,
    /// 0.9 in the paper, 0.5 in the official code.
    pub beta1: f64,
    pub beta2: f64,
    /// Global gradient-norm limit of each network group.
    pub grad_clip: f64,
}

/// Length of each phase, in iterations or in epochs (the paper pretrains for 5 epochs). An
/// epoch is one pass over the sub-image patches of the larger training domain, as the paper
/// and its official code count it (DIV2K cut into 480² HR / 120² LR sub-images):
/// ⌈max(HR patches, real LR patches) / batch⌉ iterations, an image of H × W holding
/// ⌊H / P⌋·⌊W / P⌋ non-overlapping patches of side P (HR patches alone in sr-syn and paired
/// modes); `fit` turns epochs into iterations once the data is loaded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// Stage 1 alone, before the main phase (translator modes).
    #[serde(default)]
    pub pretrain_translator: u64,
    /// G_l2h alone on bicubic pairs, before the main phase (modes with both stages).
    #[serde(default)]
    pub pretrain_sr: u64,
    /// The main phase (the whole run in sr-syn, paired and cyclegan modes).
    #[serde(default)]
    pub iterations: u64,
    /// The same three lengths in epochs; each replaces its iteration count when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pretrain_translator_epochs: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pretrain_sr_epochs: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epochs: Option<f64>,
    /// Fraction of the main phase after which learning rates decay linearly to zero.
    pub decay_start: f64,
    /// Image pool size of D_r and D_s.
    pub pool_size: usize,
}

impl Schedule {
    /// Whether any length is given in epochs.
    pub fn uses_epochs(&self) -> bool {
        self.pretrain_translator_epochs.is_some()
            || self.pretrain_sr_epochs.is_some()
            || self.epochs.is_some()
    }

    /// The schedule with every length in iterations, an epoch being `iterations_per_epoch`.
    pub fn in_iterations(&self, iterations_per_epoch: u64) -> Result<Schedule> {
        let convert = |epochs: Option<f64>, iterations: u64, key: &str| -> Result<u64> {
            match epochs {
                None => Ok(iterations),
                Some(e) if e.is_finite() && e >= 0.0 => {
                    Ok((e * iterations_per_epoch as f64).ceil() as u64)
                }
                Some(e) => bail!("schedule.{key} {e} is not a non-negative number of epochs"),
            }
        };
        Ok(Schedule {
            pretrain_translator: convert(
                self.pretrain_translator_epochs,
                self.pretrain_translator,
                "pretrain_translator_epochs",
            )?,
            pretrain_sr: convert(
                self.pretrain_sr_epochs,
                self.pretrain_sr,
                "pretrain_sr_epochs",
            )?,
            iterations: convert(self.epochs, self.iterations, "epochs")?,
            pretrain_translator_epochs: None,
            pretrain_sr_epochs: None,
            epochs: None,
            ..self.clone()
        })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Validation {
    /// Held-out LR/HR pair folders (files paired by name).
    pub lr: PathBuf,
    pub hr: PathBuf,
    pub every: u64,
    /// Score at most this many images (sorted by name), for speed.
    #[serde(default)]
    pub max_images: Option<usize>,
    /// NTIRE protocol: border ignored, shift search, centre crop.
    #[serde(default)]
    pub border: Option<i64>,
    #[serde(default)]
    pub max_shift: i64,
    #[serde(default)]
    pub crop: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Logging {
    /// Iterations between loss lines in `losses.jsonl`.
    pub every: u64,
    /// Iterations between PNG sample grids (0 = never).
    pub samples_every: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoints {
    /// Iterations between checkpoints (also written at the end and on Ctrl-C).
    pub every: u64,
    /// Keep this many numbered checkpoints besides `latest` (0 = only `latest`).
    #[serde(default)]
    pub keep: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub name: String,
    pub mode: Mode,
    pub seed: u64,
    /// `auto`, `cpu`, `cuda` or `cuda:N`.
    #[serde(default = "default_device")]
    pub device: String,
    /// Where the run writes (default `runs/<name>`).
    #[serde(default)]
    pub output: Option<PathBuf>,
    pub data: DataOptions,
    pub networks: Networks,
    pub losses: Losses,
    pub optimizer: Optimizer,
    pub schedule: Schedule,
    #[serde(default)]
    pub validation: Option<Validation>,
    pub logging: Logging,
    pub checkpoints: Checkpoints,
}

fn default_device() -> String {
    "auto".into()
}

impl Options {
    /// Where the explicit G_s2r's kernel blurs
    /// ([`crate::archs::degradation::ExplicitDegradation::hr_grid`]).
    pub fn explicit_hr_grid(&self) -> Option<i64> {
        self.networks.degradation.hr_grid(self.data.scale)
    }

    /// How the explicit G_s2r compresses source `source` of `data.real_lr`: as that source
    /// is stored ([`DegradationConfig::compression`]).
    pub fn compression_of(&self, source: usize) -> Option<Compression> {
        self.storage_of(source).compression
    }

    /// How source `source` of `data.real_lr` is stored, for the explicit G_s2r's fit.
    pub fn storage_of(&self, source: usize) -> SourceStorage {
        let (lossless, codec) = self
            .data
            .real_lr
            .get(source)
            .map_or((false, FootageCodec::Jpeg), |spec| {
                (spec.lossless, spec.codec)
            });
        SourceStorage {
            lossless,
            compression: self.networks.degradation.compression(lossless, codec),
        }
    }

    /// Reads an options file; relative paths in it are relative to the current directory.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read options file {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("options file {}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self> {
        let options: Options = toml::from_str(text)?;
        options.validate()?;
        Ok(options)
    }

    /// Applies `key=value` overrides with TOML values, e.g. `schedule.iterations=100` or
    /// `losses.sr_mse.weight=1e2`.
    pub fn with_overrides(&self, overrides: &[String]) -> Result<Self> {
        let mut doc = toml::Table::try_from(self)?;
        for item in overrides {
            let (key, value) = item
                .split_once('=')
                .with_context(|| format!("override '{item}' is not KEY=VALUE"))?;
            let value: toml::Value = match toml::from_str::<toml::Table>(&format!("v = {value}")) {
                Ok(mut t) => t.remove("v").expect("parsed above"),
                Err(_) => toml::Value::String(value.to_string()),
            };
            let mut table = &mut doc;
            let parts: Vec<&str> = key.trim().split('.').collect();
            for part in &parts[..parts.len() - 1] {
                table = table
                    .entry(part.to_string())
                    .or_insert_with(|| toml::Value::Table(Default::default()))
                    .as_table_mut()
                    .with_context(|| format!("override '{key}': '{part}' is not a section"))?;
            }
            table.insert(parts[parts.len() - 1].to_string(), value);
        }
        let options: Options = doc.try_into().context("options after overrides")?;
        options.validate()?;
        Ok(options)
    }

    /// The options with the schedule in iterations, for domains of `hr_patches` and
    /// `real_lr_patches` non-overlapping training patches (see [`Schedule`] for what an epoch
    /// is).
    pub fn with_epochs_in_iterations(
        &self,
        hr_patches: usize,
        real_lr_patches: usize,
    ) -> Result<Self> {
        if !self.schedule.uses_epochs() {
            return Ok(self.clone());
        }
        let patches = if self.mode.uses_real_lr() {
            hr_patches.max(real_lr_patches)
        } else {
            hr_patches
        };
        let iterations_per_epoch = (patches as u64).div_ceil(self.data.batch as u64).max(1);
        let options = Options {
            schedule: self.schedule.in_iterations(iterations_per_epoch)?,
            ..self.clone()
        };
        options.validate()?;
        Ok(options)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("options serialise")
    }

    pub fn sr_config(&self) -> SrConfig {
        SrConfig {
            arch: self.networks.sr.arch,
            blocks: self.networks.sr.blocks,
            features: self.networks.sr.features,
            scale: self.data.scale,
        }
    }

    pub fn output_dir(&self) -> PathBuf {
        self.output
            .clone()
            .unwrap_or_else(|| Path::new("runs").join(&self.name))
    }

    /// The identity weight as applied (see [`IdentityLoss::scale_by_cycle`]).
    pub fn identity_weight(&self) -> f64 {
        let id = &self.losses.identity;
        if id.scale_by_cycle {
            id.weight * self.losses.cycle.weight
        } else {
            id.weight
        }
    }

    fn validate(&self) -> Result<()> {
        self.sr_config().validate().context("networks.sr")?;
        self.networks.degradation.validate()?;
        if self.data.batch < 1 || self.data.lr_patch < 4 {
            bail!(
                "data.batch {} and data.lr_patch {} must be at least 1 and 4",
                self.data.batch,
                self.data.lr_patch
            );
        }
        if !(0.0..=1.0).contains(&self.schedule.decay_start) {
            bail!(
                "schedule.decay_start {} is not in [0, 1]",
                self.schedule.decay_start
            );
        }
        if self.mode == Mode::Paired
            && self.data.paired_lr.is_none()
            && self.data.paired_preset.is_none()
        {
            bail!(
                "mode 'paired' needs data.paired_lr (LR files named like the HR files) or \
                 data.paired_preset (a `train degrade` preset drawn for every patch)"
            );
        }
        if self.mode != Mode::Paired && self.data.paired_preset.is_some() {
            bail!(
                "data.paired_preset is for mode 'paired' only: remove it or set mode = \"paired\""
            );
        }
        if self.schedule.iterations == 0 && self.schedule.epochs.is_none() {
            bail!("schedule.iterations (or schedule.epochs) must be positive");
        }
        Ok(())
    }
}
