//! The CycleSR training model: the six networks, their optimisers and one training step per
//! phase, BasicSR's `model` layer. The networks are G_s2r, G_r2s (translators), D_r, D_s
//! (their discriminators), G_l2h (the SR network the element runs) and D_h (CycleSRGAN).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Mutex;

use anyhow::{bail, ensure, Context, Result};
use gstcyclesr::model::checkpoint::{
    copy_into_varstore, read_safetensors, varstore_tensors, write_safetensors, SrModel,
};
use rand::rngs::StdRng;
use rand::SeedableRng;
use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Tensor};

use crate::archs::cyclegan::{patch_discriminator, resnet_generator};
use crate::archs::degradation::{ExplicitDegradation, FitSummary};
use crate::archs::jpeg_quality::FootageJpeg;
use crate::archs::vgg::vgg_discriminator;
use crate::data::{blind_degrade, UnpairedBatch};
use crate::losses::{
    l1, lsgan, mse, relativistic_gan_discriminator, relativistic_gan_generator, PerceptualLoss,
};
use crate::optim::Adam;
use crate::options::{Mode, Options, Schedule};
use crate::pool::ImagePool;

/// Version tag of training-state checkpoints.
pub const STATE_FORMAT: &str = "cyclesr-train/1";

/// A training state read without building its networks (for export and evaluation).
pub struct SavedState {
    /// Every tensor by `group/name` (see [`CycleSrModel::state_tensors`]).
    pub tensors: HashMap<String, Tensor>,
    /// The options the run trained with.
    pub options: Options,
    /// Metadata: iteration, commit, ...
    pub metadata: HashMap<String, String>,
}

impl SavedState {
    /// Reads a state written by [`CycleSrModel::save_state`]; errors name the file.
    pub fn read(path: &Path) -> Result<SavedState> {
        let context = || format!("training state {}", path.display());
        let (tensors, metadata) = read_safetensors(path).with_context(context)?;
        if metadata.get("format").map(String::as_str) != Some(STATE_FORMAT) {
            bail!("{}: not a cyclesr training state", path.display());
        }
        let options_text = metadata
            .get("options")
            .with_context(|| format!("{}: no options", path.display()))?;
        let options = Options::parse(options_text).with_context(context)?;
        Ok(SavedState {
            tensors,
            options,
            metadata,
        })
    }

    /// The tensors named `prefix<rest>`, as `rest`.
    pub fn take(&mut self, prefix: &str) -> HashMap<String, Tensor> {
        let names: Vec<String> = self
            .tensors
            .keys()
            .filter(|name| name.starts_with(prefix))
            .cloned()
            .collect();
        names
            .into_iter()
            .filter_map(|name| {
                let tensor = self.tensors.remove(&name)?;
                Some((name[prefix.len()..].to_string(), tensor))
            })
            .collect()
    }
}

/// What one iteration does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Stage 1 alone (L1).
    Translator,
    /// G_l2h alone on (bicubic LR, HR).
    SrSynthetic,
    /// G_l2h alone on true pairs (the oracle).
    SrPaired,
    /// G_l2h on G_s2r(synthetic LR) with stage 1 frozen (Cycle+SR, the explicit G_s2r, and
    /// SR_blind's random degradations).
    SrOnTranslated,
    /// Both stages on L1 + L2; L2's gradient reaches G_s2r (CycleSR / CycleSRGAN).
    Joint,
}

/// The phase plan of a run: phases in order with their lengths; learning rates decay in
/// the last (main) phase only.
#[derive(Clone, Debug)]
pub struct Plan {
    pub phases: Vec<(Phase, u64)>,
    pub decay_start: f64,
}

impl Plan {
    pub fn new(options: &Options) -> Self {
        let s = &options.schedule;
        let main = s.iterations;
        let phases = match options.mode {
            Mode::SrSyn => vec![(Phase::SrSynthetic, main)],
            Mode::Paired => vec![(Phase::SrPaired, main)],
            Mode::SrBlind => vec![(Phase::SrOnTranslated, main)],
            Mode::Cyclegan => vec![(Phase::Translator, main)],
            Mode::Separate => vec![
                (Phase::Translator, s.pretrain_translator),
                (Phase::SrSynthetic, s.pretrain_sr),
                (Phase::SrOnTranslated, main),
            ],
            Mode::Explicit => vec![
                (Phase::SrSynthetic, s.pretrain_sr),
                (Phase::SrOnTranslated, main),
            ],
            Mode::Joint | Mode::JointGan => vec![
                (Phase::Translator, s.pretrain_translator),
                (Phase::SrSynthetic, s.pretrain_sr),
                (Phase::Joint, main),
            ],
        };
        Plan {
            phases: phases.into_iter().filter(|(_, n)| *n > 0).collect(),
            decay_start: s.decay_start,
        }
    }

    pub fn total(&self) -> u64 {
        self.phases.iter().map(|(_, n)| n).sum()
    }

    /// The schedule of `options` (in iterations) with every phase scaled by one factor so that
    /// the plan has `total` iterations in all (at least one in the main phase).
    pub fn scaled_schedule(options: &Options, total: u64) -> Schedule {
        let factor = total as f64 / Plan::new(options).total().max(1) as f64;
        let scale = |n: u64| (n as f64 * factor).round() as u64;
        let s = &options.schedule;
        let mut scaled = Schedule {
            pretrain_translator: scale(s.pretrain_translator),
            pretrain_sr: scale(s.pretrain_sr),
            iterations: 1,
            ..s.clone()
        };
        // The pretraining phases the mode runs, as the plan counts them.
        let pretraining = Plan::new(&Options {
            schedule: scaled.clone(),
            ..options.clone()
        })
        .total()
            - 1;
        scaled.iterations = total.saturating_sub(pretraining).max(1);
        scaled
    }

    /// Phase of iteration `i` (0-based) and the learning-rate factor there: 1 until
    /// `decay_start` of the main phase, then linear to 0 at its end.
    pub fn at(&self, i: u64) -> (Phase, f64) {
        let mut start = 0;
        for (k, &(phase, n)) in self.phases.iter().enumerate() {
            if i < start + n || k + 1 == self.phases.len() {
                let factor = if k + 1 == self.phases.len() {
                    let t = (i - start) as f64;
                    let decay_from = self.decay_start * n as f64;
                    if t < decay_from {
                        1.0
                    } else {
                        (1.0 - (t - decay_from) / (n as f64 - decay_from)).max(0.0)
                    }
                } else {
                    1.0
                };
                return (phase, factor);
            }
            start += n;
        }
        unreachable!("a plan has at least one phase")
    }
}

/// A network with its own VarStore and optimiser.
struct Trained {
    vs: nn::VarStore,
    opt: Adam,
}

impl Trained {
    fn new(vs: nn::VarStore, options: &Options) -> Self {
        let o = &options.optimizer;
        let opt = Adam::new(&vs, o.beta1, o.beta2);
        Trained { vs, opt }
    }

    /// Clips the gradient norm and takes one Adam step.
    fn update(&mut self, lr: f64, clip: f64) -> Result<()> {
        self.opt.clip_and_step(lr, clip)
    }
}

struct Translators {
    nets: Trained,
    g_s2r: nn::FuncT<'static>,
    g_r2s: nn::FuncT<'static>,
    discriminators: Trained,
    d_r: nn::FuncT<'static>,
    d_s: nn::FuncT<'static>,
    pool_r: ImagePool,
    pool_s: ImagePool,
}

struct SrGan {
    disc: Trained,
    d_h: nn::FuncT<'static>,
    perceptual: Option<PerceptualLoss>,
}

/// Loss values of one iteration, by name (logged as they are).
pub type LossValues = BTreeMap<&'static str, f64>;

pub struct CycleSrModel {
    options: Options,
    plan: Plan,
    device: Device,
    translators: Option<Translators>,
    /// The explicit G_s2r (mode `explicit`), once fitted or loaded.
    degradation: Option<ExplicitDegradation>,
    sr: Option<(SrModel, Adam)>,
    sr_gan: Option<SrGan>,
}

fn scalar(t: &Tensor) -> f64 {
    t.double_value(&[])
}

/// Runs `draw` with libtorch's process-wide generator seeded by `seed`, while no other caller
/// of this function draws from it: networks built at once in one process (tests running in
/// parallel, an application training several) each get the weights of their own seed.
pub fn with_seeded_torch_rng<T>(seed: i64, draw: impl FnOnce() -> T) -> T {
    static TORCH_RNG: Mutex<()> = Mutex::new(());
    // A panic while drawing leaves nothing half-written that a later seed would not reset.
    let _turn = TORCH_RNG
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    tch::manual_seed(seed);
    draw()
}

impl CycleSrModel {
    /// Builds the networks the mode needs, initialised from the run's seed.
    pub fn new(options: &Options, device: Device) -> Result<Self> {
        with_seeded_torch_rng(options.seed as i64, || Self::build(options, device))
    }

    fn build(options: &Options, device: Device) -> Result<Self> {
        let translators = options.mode.uses_translator().then(|| {
            let vs = nn::VarStore::new(device);
            let cfg = &options.networks.translator;
            let g_s2r = resnet_generator(&(vs.root() / "g_s2r"), cfg);
            let g_r2s = resnet_generator(&(vs.root() / "g_r2s"), cfg);
            let dvs = nn::VarStore::new(device);
            let dcfg = &options.networks.discriminator;
            let d_r = patch_discriminator(&(dvs.root() / "d_r"), dcfg);
            let d_s = patch_discriminator(&(dvs.root() / "d_s"), dcfg);
            Translators {
                nets: Trained::new(vs, options),
                g_s2r,
                g_r2s,
                discriminators: Trained::new(dvs, options),
                d_r,
                d_s,
                pool_r: ImagePool::new(options.schedule.pool_size),
                pool_s: ImagePool::new(options.schedule.pool_size),
            }
        });
        let sr = if options.mode.trains_sr() {
            let mut model = SrModel::new(options.sr_config(), device)?;
            if let Some(path) = &options.networks.sr_init {
                let init = SrModel::load(path, device).context("networks.sr_init")?;
                ensure!(
                    init.config == model.config,
                    "networks.sr_init: model file {} holds {:?}, but networks.sr is {:?}",
                    path.display(),
                    init.config,
                    model.config
                );
                model
                    .vs
                    .copy(&init.vs)
                    .with_context(|| format!("networks.sr_init: copying {}", path.display()))?;
            }
            let o = &options.optimizer;
            let opt = Adam::new(&model.vs, o.beta1, o.beta2);
            Some((model, opt))
        } else {
            None
        };
        let sr_gan = if options.mode.uses_sr_gan() {
            let vs = nn::VarStore::new(device);
            let d_h = vgg_discriminator(&(vs.root() / "d_h"), &options.networks.sr_discriminator);
            let perceptual = match &options.networks.vgg19 {
                Some(path) => Some(PerceptualLoss::load(path, device)?),
                None => {
                    eprintln!("note: networks.vgg19 is not set, so the perceptual term of L2 is off (see scripts/convert_vgg19.py)");
                    None
                }
            };
            Some(SrGan {
                disc: Trained::new(vs, options),
                d_h,
                perceptual,
            })
        } else {
            None
        };
        Ok(CycleSrModel {
            options: options.clone(),
            plan: Plan::new(options),
            device,
            translators,
            degradation: None,
            sr,
            sr_gan,
        })
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Replaces the schedule (and so the plan) of a run in progress; the iterations already
    /// done keep their batches, and their learning rates where both plans agree.
    pub fn reschedule(&mut self, schedule: Schedule) {
        self.options.schedule = schedule;
        self.plan = Plan::new(&self.options);
    }

    pub fn device(&self) -> Device {
        self.device
    }

    /// Whether stage 1 is an explicit degradation that still has to be fitted
    /// ([`CycleSrModel::fit_degradation`]).
    pub fn needs_degradation_fit(&self) -> bool {
        self.options.mode.uses_explicit_degradation() && self.degradation.is_none()
    }

    /// Fits the explicit G_s2r on unpaired patches: real LR per `data.real_lr` source, and
    /// the `input` patches G_s2r degrades, shared (synthetic LR, or HR with an HR-grid
    /// kernel; any device); `read_jpeg(source)` reads a compressed source's JPEG
    /// qualities from its footage when the options ask for them. Returns each camera's fit and
    /// what was read.
    pub fn fit_degradation(
        &mut self,
        real: &[(usize, Tensor)],
        input: &Tensor,
        read_jpeg: &dyn Fn(usize) -> Result<FootageJpeg>,
    ) -> Result<(Vec<FitSummary>, Vec<Option<FootageJpeg>>)> {
        let real: Vec<(usize, Tensor)> = real
            .iter()
            .map(|(source, t)| (*source, t.to_device(self.device)))
            .collect();
        let config = &self.options.networks.degradation;
        let (mut degradation, summaries) =
            ExplicitDegradation::fit(&real, &input.to_device(self.device), config, &|source| {
                self.options.storage_of(source)
            })?;
        let footage_jpeg = degradation.read_footage_jpeg(config, read_jpeg)?;
        self.degradation = Some(degradation);
        Ok((summaries, footage_jpeg))
    }

    /// The explicit G_s2r, once fitted or loaded.
    pub fn degradation(&self) -> Option<&ExplicitDegradation> {
        self.degradation.as_ref()
    }

    /// G_l2h, for validation and export (None in cyclegan mode).
    pub fn sr_model(&self) -> Option<&SrModel> {
        self.sr.as_ref().map(|(m, _)| m)
    }

    /// One training iteration `i` on `batch` (already on the model's device).
    pub fn train_step(&mut self, batch: &UnpairedBatch, i: u64) -> Result<LossValues> {
        let (phase, factor) = self.plan.at(i);
        let o = &self.options.optimizer;
        let (lr_g, lr_sr) = (o.lr_translator * factor, o.lr_sr * factor);
        let clip = o.grad_clip;
        let mut rng = StdRng::seed_from_u64(
            self.options.seed ^ i.wrapping_mul(0xA24B_AED4_963E_E407) ^ 0x9001,
        );
        let mut values = LossValues::new();
        match phase {
            Phase::Translator => {
                self.translator_step(batch, false, lr_g, lr_sr, clip, &mut rng, &mut values)?;
            }
            Phase::Joint => {
                self.translator_step(batch, true, lr_g, lr_sr, clip, &mut rng, &mut values)?;
            }
            Phase::SrSynthetic => {
                self.sr_step(&batch.syn_lr, &batch.hr, lr_sr, clip, false, &mut values)?
            }
            Phase::SrPaired => {
                let lr = batch
                    .paired_lr
                    .as_ref()
                    .context("paired mode needs paired LR patches from the loader")?;
                self.sr_step(lr, &batch.hr, lr_sr, clip, false, &mut values)?
            }
            Phase::SrOnTranslated => {
                let approx_real = self.approximate_real(&batch.hr, &batch.syn_lr, &mut rng)?;
                self.sr_step(&approx_real, &batch.hr, lr_sr, clip, false, &mut values)?
            }
        }
        values.insert("lr_factor", factor);
        if let Some((name, value)) = values.iter().find(|(_, v)| !v.is_finite()) {
            bail!("loss term '{name}' became {value} at iteration {i}");
        }
        Ok(values)
    }

    /// G_s2r(synthetic LR) with stage 1 frozen: the explicit degradation (noise drawn from
    /// `rng`; an HR-grid one degrades `hr`), the blind degradations of SR_blind, or the
    /// CycleGAN generator.
    fn approximate_real(
        &self,
        hr: &Tensor,
        synthetic: &Tensor,
        rng: &mut StdRng,
    ) -> Result<Tensor> {
        if self.options.mode == Mode::SrBlind {
            return tch::no_grad(|| blind_degrade(synthetic, rng));
        }
        if self.options.mode.uses_explicit_degradation() {
            let degradation = self
                .degradation
                .as_ref()
                .context("the explicit degradation is used before it was fitted")?;
            return tch::no_grad(|| degradation.forward(degradation.input(hr, synthetic), rng));
        }
        let t = self
            .translators
            .as_ref()
            .context("this mode has no stage 1 to translate with")?;
        Ok(tch::no_grad(|| t.g_s2r.forward_t(synthetic, false)))
    }

    /// L2 on `sr` against `hr`: λ_mse·MSE, plus λ_percep·perceptual and λ_advsr·RaGAN in
    /// CycleSRGAN's main phase. D_h must be frozen by the caller.
    fn sr_loss(
        &self,
        sr: &Tensor,
        hr: &Tensor,
        with_gan_terms: bool,
        values: &mut LossValues,
    ) -> Tensor {
        let losses = &self.options.losses;
        let pixel = mse(sr, hr);
        values.insert("sr_mse", scalar(&pixel));
        let mut total = pixel * losses.sr_mse.weight;
        if let (true, Some(g)) = (with_gan_terms, &self.sr_gan) {
            if let Some(perceptual) = &g.perceptual {
                let p = perceptual.forward(sr, hr);
                values.insert("sr_perceptual", scalar(&p));
                total += p * losses.perceptual.weight;
            }
            let real_pred = tch::no_grad(|| g.d_h.forward_t(hr, true));
            let adv = relativistic_gan_generator(&real_pred, &g.d_h.forward_t(sr, true));
            values.insert("sr_gan", scalar(&adv));
            total += adv * losses.sr_gan.weight;
        }
        total
    }

    /// G_l2h alone on (lr, hr).
    fn sr_step(
        &mut self,
        lr: &Tensor,
        hr: &Tensor,
        lr_sr: f64,
        clip: f64,
        gan: bool,
        values: &mut LossValues,
    ) -> Result<()> {
        let (model, _) = self.sr.as_ref().expect("SR phases have G_l2h");
        let sr = model.net.forward_t(lr, true);
        let loss = self.sr_loss(&sr, hr, gan, values);
        let (_, opt) = self.sr.as_mut().expect("checked above");
        opt.zero_grad();
        loss.backward();
        opt.clip_and_step(lr_sr, clip)
    }

    /// Generators' step on L1 (+ L2 through G_s2r when `joint`), then the discriminators'.
    #[allow(clippy::too_many_arguments)]
    fn translator_step(
        &mut self,
        batch: &UnpairedBatch,
        joint: bool,
        lr_g: f64,
        lr_sr: f64,
        clip: f64,
        rng: &mut StdRng,
        values: &mut LossValues,
    ) -> Result<()> {
        let losses = self.options.losses.clone();
        let id_weight = self.options.identity_weight();
        let gan_terms = self.options.mode.uses_sr_gan();
        let (real, syn) = (&batch.real_lr, &batch.syn_lr);

        let t = self
            .translators
            .as_mut()
            .expect("translator phases have translators");
        t.discriminators.vs.freeze();
        if let Some(g) = &mut self.sr_gan {
            g.disc.vs.freeze();
        }
        let t = self.translators.as_ref().expect("checked above");
        let fake_r = t.g_s2r.forward_t(syn, true); // I_syn → approximated real LR
        let fake_s = t.g_r2s.forward_t(real, true);
        let cycle = l1(&t.g_r2s.forward_t(&fake_r, true), syn)
            + l1(&t.g_s2r.forward_t(&fake_s, true), real);
        let adversarial = lsgan(&t.d_r.forward_t(&fake_r, true), true)
            + lsgan(&t.d_s.forward_t(&fake_s, true), true);
        let mut l1_total = &adversarial * losses.gan.weight + &cycle * losses.cycle.weight;
        values.insert("g_gan", scalar(&adversarial));
        values.insert("g_cycle", scalar(&cycle));
        if id_weight > 0.0 {
            let identity =
                l1(&t.g_s2r.forward_t(real, true), real) + l1(&t.g_r2s.forward_t(syn, true), syn);
            values.insert("g_identity", scalar(&identity));
            l1_total += identity * id_weight;
        }
        if losses.low_frequency.weight > 0.0 {
            let low = |t: &Tensor| t.avg_pool2d([4, 4], [4, 4], [0, 0], true, false, None::<i64>);
            let kept = l1(&low(&fake_r), &low(syn)) + l1(&low(&fake_s), &low(real));
            values.insert("g_low_frequency", scalar(&kept));
            l1_total += kept * losses.low_frequency.weight;
        }
        let (total, sr_out) = if joint {
            let (model, _) = self.sr.as_ref().expect("joint modes have G_l2h");
            let sr = model.net.forward_t(&fake_r, true);
            let l2 = self.sr_loss(&sr, &batch.hr, gan_terms, values);
            (l1_total + l2, Some(sr))
        } else {
            (l1_total, None)
        };

        let t = self.translators.as_mut().expect("checked above");
        t.nets.opt.zero_grad();
        if let Some((_, opt)) = &mut self.sr {
            opt.zero_grad();
        }
        total.backward();
        t.nets.update(lr_g, clip)?;
        if joint {
            let (_, opt) = self.sr.as_mut().expect("checked above");
            opt.clip_and_step(lr_sr, clip)?;
        }

        // D_r and D_s (LSGAN, halved as in CycleGAN) on pooled fakes.
        t.discriminators.vs.unfreeze();
        let fake_r = t.pool_r.query(&fake_r, rng);
        let fake_s = t.pool_s.query(&fake_s, rng);
        let d_r = (lsgan(&t.d_r.forward_t(real, true), true)
            + lsgan(&t.d_r.forward_t(&fake_r, true), false))
            * 0.5;
        let d_s = (lsgan(&t.d_s.forward_t(syn, true), true)
            + lsgan(&t.d_s.forward_t(&fake_s, true), false))
            * 0.5;
        values.insert("d_r", scalar(&d_r));
        values.insert("d_s", scalar(&d_s));
        let d_total = (d_r + d_s) * losses.gan.weight;
        t.discriminators.opt.zero_grad();
        d_total.backward();
        t.discriminators.update(lr_g, clip)?;

        // D_h (CycleSRGAN) on the SR output of this step.
        if let (Some(g), Some(sr)) = (&mut self.sr_gan, sr_out.filter(|_| gan_terms)) {
            g.disc.vs.unfreeze();
            let d_h = relativistic_gan_discriminator(
                &g.d_h.forward_t(&batch.hr, true),
                &g.d_h.forward_t(&sr.detach(), true),
            );
            values.insert("d_h", scalar(&d_h));
            g.disc.opt.zero_grad();
            d_h.backward();
            g.disc.update(lr_sr, clip)?;
        }
        Ok(())
    }

    /// Images for a sample grid from the first `n` items of `batch`, each [n, 3, sH, sW]:
    /// real LR, synthetic LR, G_s2r(synthetic LR) (nearest-upscaled), G_l2h output, HR.
    pub fn samples(&self, batch: &UnpairedBatch, n: i64) -> Vec<(&'static str, Tensor)> {
        let n = n.min(batch.hr.size()[0]);
        let scale = self.options.data.scale;
        let up = |t: &Tensor| {
            let (h, w) = (t.size()[2], t.size()[3]);
            t.upsample_nearest2d([h * scale, w * scale], None, None)
        };
        tch::no_grad(|| {
            let (real, syn, hr) = (
                batch.real_lr.narrow(0, 0, n),
                batch.syn_lr.narrow(0, 0, n),
                batch.hr.narrow(0, 0, n),
            );
            let mut columns = vec![("real LR", up(&real)), ("synthetic LR", up(&syn))];
            let mut rng = StdRng::seed_from_u64(self.options.seed);
            let sr_input = match self.approximate_real(&hr, &syn, &mut rng) {
                Ok(approx) => {
                    columns.push(("G_s2r(synthetic)", up(&approx)));
                    approx
                }
                Err(_) => syn.shallow_clone(),
            };
            if let Some((model, _)) = &self.sr {
                columns.push((
                    "G_l2h",
                    model.net.forward_t(&sr_input, false).clamp(0.0, 1.0),
                ));
            }
            columns.push(("HR", hr));
            columns
        })
    }

    /// Every tensor of the training state by `group/name`: weights (including BatchNorm
    /// statistics), optimiser moments and image pools.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut tensors = Vec::new();
        let mut add = |prefix: &str, named: Vec<(String, Tensor)>| {
            tensors.extend(named.into_iter().map(|(k, v)| (format!("{prefix}/{k}"), v)));
        };
        if let Some(t) = &self.translators {
            add("translators", varstore_tensors(&t.nets.vs));
            add("opt_translators", t.nets.opt.state("adam"));
            add("discriminators", varstore_tensors(&t.discriminators.vs));
            add("opt_discriminators", t.discriminators.opt.state("adam"));
            for (name, pool) in [("pool_r", &t.pool_r), ("pool_s", &t.pool_s)] {
                if let Some(images) = pool.to_tensor() {
                    add("pools", vec![(name.to_string(), images)]);
                }
            }
        }
        if let Some(d) = &self.degradation {
            add("degradation", d.tensors());
        }
        if let Some((model, opt)) = &self.sr {
            add("g_l2h", varstore_tensors(&model.vs));
            add("opt_g_l2h", opt.state("adam"));
        }
        if let Some(g) = &self.sr_gan {
            add("d_h", varstore_tensors(&g.disc.vs));
            add("opt_d_h", g.disc.opt.state("adam"));
        }
        tensors
    }

    /// The training state, written atomically.
    pub fn save_state(
        &self,
        path: &Path,
        iteration: u64,
        extra: &BTreeMap<String, String>,
    ) -> Result<()> {
        let tensors = self.state_tensors();
        let mut metadata: HashMap<String, String> = extra.clone().into_iter().collect();
        metadata.insert("format".into(), STATE_FORMAT.into());
        metadata.insert("iteration".into(), iteration.to_string());
        metadata.insert("options".into(), self.options.to_toml());
        write_safetensors(path, &tensors, &metadata)
    }

    /// Restores a state written by [`CycleSrModel::save_state`]; returns the iteration to
    /// continue from and the state's metadata.
    pub fn load_state(&mut self, path: &Path) -> Result<(u64, HashMap<String, String>)> {
        let context = || format!("training state {}", path.display());
        let (tensors, metadata) = read_safetensors(path).with_context(context)?;
        if metadata.get("format").map(String::as_str) != Some(STATE_FORMAT) {
            bail!(
                "{}: not a cyclesr training state (format {STATE_FORMAT})",
                path.display()
            );
        }
        let iteration: u64 = metadata
            .get("iteration")
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("{}: no iteration in metadata", path.display()))?;
        let mut groups: HashMap<String, HashMap<String, Tensor>> = HashMap::new();
        for (name, tensor) in tensors {
            let (group, rest) = name
                .split_once('/')
                .with_context(|| format!("{}: unexpected tensor '{name}'", path.display()))?;
            groups
                .entry(group.to_string())
                .or_default()
                .insert(rest.to_string(), tensor.to_device(self.device));
        }
        let mut take = |group: &str| groups.remove(group).unwrap_or_default();
        (|| -> Result<()> {
            if let Some(t) = &mut self.translators {
                copy_into_varstore(&mut t.nets.vs, take("translators")).context("translators")?;
                t.nets.opt.load_state("adam", &take("opt_translators"))?;
                copy_into_varstore(&mut t.discriminators.vs, take("discriminators"))
                    .context("discriminators")?;
                t.discriminators
                    .opt
                    .load_state("adam", &take("opt_discriminators"))?;
                let pools = take("pools");
                for (name, pool) in [("pool_r", &mut t.pool_r), ("pool_s", &mut t.pool_s)] {
                    if let Some(images) = pools.get(name) {
                        pool.restore(images);
                    }
                }
            }
            if self.options.mode.uses_explicit_degradation() {
                let mut degradation = ExplicitDegradation::from_tensors(
                    take("degradation"),
                    &|source| self.options.compression_of(source),
                    self.device,
                )
                .context("degradation")?;
                degradation.hr_grid = self.options.explicit_hr_grid();
                self.degradation = Some(degradation);
            }
            if let Some((model, opt)) = &mut self.sr {
                copy_into_varstore(&mut model.vs, take("g_l2h")).context("g_l2h")?;
                opt.load_state("adam", &take("opt_g_l2h"))?;
            }
            if let Some(g) = &mut self.sr_gan {
                copy_into_varstore(&mut g.disc.vs, take("d_h")).context("d_h")?;
                g.disc.opt.load_state("adam", &take("opt_d_h"))?;
            }
            Ok(())
        })()
        .with_context(context)?;
        Ok((iteration, metadata))
    }

    /// Moves a CPU batch to the model's device.
    pub fn to_device(&self, batch: UnpairedBatch) -> UnpairedBatch {
        let d = self.device;
        UnpairedBatch {
            index: batch.index,
            real_lr: batch.real_lr.to_device(d).to_kind(Kind::Float),
            syn_lr: batch.syn_lr.to_device(d).to_kind(Kind::Float),
            hr: batch.hr.to_device(d).to_kind(Kind::Float),
            paired_lr: batch.paired_lr.map(|t| t.to_device(d).to_kind(Kind::Float)),
        }
    }
}
