//! Adam with gradient-norm clipping, with its state exposed so checkpoints resume exactly
//! (libtorch's optimizer behind `tch::nn::Optimizer` keeps its moments out of reach).

use std::collections::HashMap;

use anyhow::{anyhow, Result};
use tch::{nn, Tensor};

/// Adam (Kingma & Ba) exactly as `torch.optim.Adam` without weight decay or amsgrad.
pub struct Adam {
    /// (name, parameter, first moment, second moment), sorted by name.
    params: Vec<(String, Tensor, Tensor, Tensor)>,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Steps taken so far (bias correction).
    pub step: i64,
}

impl Adam {
    /// Optimises the trainable variables of `vs` (call before freezing any of them).
    pub fn new(vs: &nn::VarStore, beta1: f64, beta2: f64) -> Self {
        let mut named: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let params = named
            .into_iter()
            .map(|(name, p)| {
                let m = p.zeros_like();
                let v = p.zeros_like();
                (name, p, m, v)
            })
            .collect();
        Adam {
            params,
            beta1,
            beta2,
            eps: 1e-8,
            step: 0,
        }
    }

    pub fn zero_grad(&mut self) {
        for (_, p, _, _) in &mut self.params {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.detach_().zero_();
            }
        }
    }

    /// Scales gradients so that their global L2 norm is at most `max_norm` (as
    /// `torch.nn.utils.clip_grad_norm_`); returns the norm before clipping.
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> f64 {
        let grads: Vec<Tensor> = self
            .params
            .iter()
            .map(|(_, p, _, _)| p.grad())
            .filter(|g| g.defined())
            .collect();
        if grads.is_empty() {
            return 0.0;
        }
        let norms: Vec<Tensor> = grads.iter().map(|g| g.norm()).collect();
        let total = Tensor::stack(&norms, 0).norm().double_value(&[]);
        let coefficient = max_norm / (total + 1e-6);
        if coefficient < 1.0 {
            tch::no_grad(|| {
                for mut g in grads {
                    let _ = g.g_mul_scalar_(coefficient);
                }
            });
        }
        total
    }

    /// One Adam update at learning rate `lr`; parameters without a gradient are left alone.
    pub fn step(&mut self, lr: f64) {
        self.step += 1;
        let t = self.step as i32;
        let correction1 = 1.0 - self.beta1.powi(t);
        let correction2 = 1.0 - self.beta2.powi(t);
        let (b1, b2, eps) = (self.beta1, self.beta2, self.eps);
        tch::no_grad(|| {
            for (_, p, m, v) in &mut self.params {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let _ = m.g_mul_scalar_(b1).g_add_(&(&g * (1.0 - b1)));
                let _ = v.g_mul_scalar_(b2).g_add_(&(&g * &g * (1.0 - b2)));
                let denom = (&*v / correction2).sqrt() + eps;
                let _ = p.g_sub_(&(&*m / &denom * (lr / correction1)));
            }
        });
    }

    /// Moments and step count as named tensors under `prefix`.
    pub fn state(&self, prefix: &str) -> Vec<(String, Tensor)> {
        let mut out = vec![(format!("{prefix}.step"), Tensor::from(self.step))];
        for (name, _, m, v) in &self.params {
            out.push((format!("{prefix}.m.{name}"), m.shallow_clone()));
            out.push((format!("{prefix}.v.{name}"), v.shallow_clone()));
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
            for (name, _, m, v) in &mut self.params {
                m.f_copy_(get(format!("{prefix}.m.{name}"))?)?;
                v.f_copy_(get(format!("{prefix}.v.{name}"))?)?;
            }
            Ok(())
        })
    }
}
