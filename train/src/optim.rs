//! Adam with gradient-norm clipping, with its state exposed so checkpoints resume exactly
//! (libtorch's optimizer behind `tch::nn::Optimizer` keeps its moments out of reach).
//!
//! The parameters of one optimiser live in one flat buffer (each variable becomes a view of
//! it), so that an update is a dozen whole-buffer kernels rather than a dozen per parameter:
//! small networks on a GPU are bound by kernel launches, not arithmetic. A channels-last
//! parameter keeps its layout: its slice of the buffer is in NHWC order.

use std::collections::HashMap;

use anyhow::{anyhow, bail, Result};
use gstcyclesr::model::layout::is_channels_last;
use tch::{nn, Kind, Tensor};

/// Adam (Kingma & Ba) as `torch.optim.Adam` without weight decay or amsgrad, after clipping
/// the global gradient norm as `torch.nn.utils.clip_grad_norm_`.
pub struct Adam {
    /// Parameters sorted by name.
    params: Vec<Parameter>,
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

struct Parameter {
    name: String,
    tensor: Tensor,
    /// Where its values start in `flat`.
    offset: i64,
    /// Its slice of `flat` is in NHWC order (a channels-last convolution weight).
    channels_last: bool,
}

impl Parameter {
    /// `flat`-shaped `t`'s slice for this parameter, as a view with the parameter's shape
    /// and layout.
    fn view_of(&self, t: &Tensor) -> Tensor {
        let size = self.tensor.size();
        let slice = t.narrow(0, self.offset, self.tensor.numel() as i64);
        if self.channels_last {
            slice
                .view([size[0], size[2], size[3], size[1]])
                .permute([0, 3, 1, 2])
        } else {
            slice.view(size.as_slice())
        }
    }

    /// `t` (shaped as the parameter) flattened in the order of the parameter's slice.
    fn flatten(&self, t: &Tensor) -> Tensor {
        if self.channels_last {
            t.permute([0, 2, 3, 1]).reshape([-1])
        } else {
            t.reshape([-1])
        }
    }
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
            for (name, tensor) in named {
                let mut parameter = Parameter {
                    name,
                    channels_last: is_channels_last(&tensor),
                    tensor,
                    offset,
                };
                let mut view = parameter.view_of(&flat);
                view.copy_(&parameter.tensor);
                parameter.tensor.set_data(&view);
                offset += parameter.tensor.numel() as i64;
                params.push(parameter);
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
        for p in &mut self.params {
            let mut g = p.tensor.grad();
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
        for p in &self.params {
            let g = p.tensor.grad();
            if !g.defined() {
                bail!("parameter '{}' has no gradient to step on", p.name);
            }
            grads.push(p.flatten(&g));
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
        self.params
            .iter()
            .map(move |p| (p.name.as_str(), p.view_of(t)))
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
