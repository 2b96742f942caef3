//! Adam with gradient-norm clipping, with its state exposed so checkpoints resume exactly
//! (libtorch's optimizer behind `tch::nn::Optimizer` keeps its moments out of reach).
//!
//! The parameters of one optimiser live in one flat buffer (each variable becomes a view of
//! it), so that an update is a dozen whole-buffer kernels rather than a dozen per parameter:
//! small networks on a GPU are bound by kernel launches, not arithmetic.

use std::collections::HashMap;

use anyhow::{anyhow, bail, Result};
use tch::{nn, Kind, Tensor};

/// Adam (Kingma & Ba) as `torch.optim.Adam` without weight decay or amsgrad, after clipping
/// the global gradient norm as `torch.nn.utils.clip_grad_norm_`.
pub struct Adam {
    /// (name, parameter, offset in `flat`), sorted by name.
    params: Vec<(String, Tensor, i64)>,
    /// Every parameter's values; the parameters are views of it.
    flat: Tensor,
    /// First and second moments, laid out as `flat`.
    m: Tensor,
    v: Tensor,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Steps taken so far (bias correction).
    pub step: i64,
}

impl Adam {
    /// Optimises the trainable variables of `vs` (call before freezing any of them). Moves
    /// their values into one buffer; the networks keep using the same variables.
    pub fn new(vs: &nn::VarStore, beta1: f64, beta2: f64) -> Self {
        let mut named: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let total: i64 = named.iter().map(|(_, p)| p.numel() as i64).sum();
        let flat = Tensor::zeros([total], (Kind::Float, vs.device()));
        let mut params = Vec::with_capacity(named.len());
        let mut offset = 0;
        tch::no_grad(|| {
            for (name, mut p) in named {
                let n = p.numel() as i64;
                let mut view = flat.narrow(0, offset, n).view(p.size().as_slice());
                view.copy_(&p);
                p.set_data(&view);
                params.push((name, p, offset));
                offset += n;
            }
        });
        Adam {
            params,
            m: flat.zeros_like(),
            v: flat.zeros_like(),
            flat,
            beta1,
            beta2,
            eps: 1e-8,
            step: 0,
        }
    }

    pub fn zero_grad(&mut self) {
        for (_, p, _) in &mut self.params {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.detach_().zero_();
            }
        }
    }

    /// Clips the gradients' global L2 norm to `max_norm`, then takes one Adam step at learning
    /// rate `lr`. Every parameter must have a gradient (each network here is updated only after
    /// a backward pass through all of it). No host synchronisation.
    pub fn clip_and_step(&mut self, lr: f64, max_norm: f64) -> Result<()> {
        let mut grads = Vec::with_capacity(self.params.len());
        for (name, p, _) in &self.params {
            let g = p.grad();
            if !g.defined() {
                bail!("parameter '{name}' has no gradient to step on");
            }
            grads.push(g.view([-1]));
        }
        self.step += 1;
        let t = self.step as i32;
        let correction1 = 1.0 - self.beta1.powi(t);
        let correction2 = 1.0 - self.beta2.powi(t);
        let (b1, b2, eps) = (self.beta1, self.beta2, self.eps);
        tch::no_grad(|| {
            let g = Tensor::cat(&grads, 0);
            // Multiplying by a coefficient clamped to 1 leaves unclipped gradients exact.
            let coefficient = (g.norm() + 1e-6).reciprocal() * max_norm;
            let g = g * coefficient.clamp_max(1.0);
            let _ = self.m.g_mul_scalar_(b1).g_add_(&(&g * (1.0 - b1)));
            let _ = self.v.g_mul_scalar_(b2).g_add_(&(&g * &g * (1.0 - b2)));
            let denom = (&self.v / correction2).sqrt() + eps;
            let _ = self.flat.g_sub_(&(&self.m / &denom * (lr / correction1)));
        });
        Ok(())
    }

    /// `flat`-shaped `t` cut back into per-parameter views.
    fn per_parameter<'a>(&'a self, t: &'a Tensor) -> impl Iterator<Item = (&'a str, Tensor)> + 'a {
        self.params.iter().map(move |(name, p, offset)| {
            let view = t
                .narrow(0, *offset, p.numel() as i64)
                .view(p.size().as_slice());
            (name.as_str(), view)
        })
    }

    /// Moments and step count as named tensors under `prefix`.
    pub fn state(&self, prefix: &str) -> Vec<(String, Tensor)> {
        let mut out = vec![(format!("{prefix}.step"), Tensor::from(self.step))];
        for ((name, m), (_, v)) in self.per_parameter(&self.m).zip(self.per_parameter(&self.v)) {
            out.push((format!("{prefix}.m.{name}"), m));
            out.push((format!("{prefix}.v.{name}"), v));
        }
        out
    }

    /// Restores what [`Adam::state`] saved.
    pub fn load_state(&mut self, prefix: &str, tensors: &HashMap<String, Tensor>) -> Result<()> {
        let get = |key: String| {
            tensors
                .get(&key)
                .ok_or_else(|| anyhow!("optimizer state '{key}' is missing"))
        };
        self.step = get(format!("{prefix}.step"))?.int64_value(&[]);
        tch::no_grad(|| -> Result<()> {
            for ((name, mut m), (_, mut v)) in
                self.per_parameter(&self.m).zip(self.per_parameter(&self.v))
            {
                m.f_copy_(get(format!("{prefix}.m.{name}"))?)?;
                v.f_copy_(get(format!("{prefix}.v.{name}"))?)?;
            }
            Ok(())
        })
    }
}
