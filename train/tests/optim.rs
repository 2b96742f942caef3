//! Adam with gradient clipping against the update rule computed by hand, and its state
//! round trip.

use std::collections::HashMap;

use cyclesr_train::optim::Adam;
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

/// Two parameters (a weight [2, 3] and a bias [2]) of one linear layer, so the flat buffer
/// holds more than one tensor.
fn linear() -> (nn::VarStore, nn::Linear) {
    let vs = nn::VarStore::new(Device::Cpu);
    let layer = nn::linear(vs.root() / "fc", 3, 2, Default::default());
    (vs, layer)
}

/// Gradients of sum(c ⊙ layer(x)) for fixed x and c.
fn backward(layer: &nn::Linear, scale: f64) {
    let x = Tensor::from_slice(&[0.5f32, -1.0, 2.0]).view([1, 3]);
    let c = Tensor::from_slice(&[1.0f32, -3.0]).view([1, 2]) * scale;
    (layer.forward(&x) * c).sum(Kind::Float).backward();
}

fn values(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.to_kind(Kind::Double).flatten(0, -1)).unwrap()
}

/// Adam by hand in f64: returns the parameters after steps with the gradients `grads`.
fn adam_by_hand(p0: &[f64], grads: &[Vec<f64>], lr: f64, max_norm: f64) -> Vec<f64> {
    let (b1, b2, eps) = (0.9, 0.999, 1e-8);
    let mut p = p0.to_vec();
    let (mut m, mut v) = (vec![0.0; p.len()], vec![0.0; p.len()]);
    for (t, g) in grads.iter().enumerate() {
        let norm = g.iter().map(|x| x * x).sum::<f64>().sqrt();
        let k = (max_norm / (norm + 1e-6)).min(1.0);
        let t = t as i32 + 1;
        for i in 0..p.len() {
            let g = g[i] * k;
            m[i] = b1 * m[i] + (1.0 - b1) * g;
            v[i] = b2 * v[i] + (1.0 - b2) * g * g;
            let denom = (v[i] / (1.0 - b2.powi(t))).sqrt() + eps;
            p[i] -= lr * m[i] / (1.0 - b1.powi(t)) / denom;
        }
    }
    p
}

#[test]
fn adam_with_clipping_follows_the_update_rule() {
    tch::manual_seed(1);
    let (vs, layer) = linear();
    let mut opt = Adam::new(&vs, 0.9, 0.999);
    // Flat order is by name: fc.bias, then fc.weight.
    let start: Vec<f64> = [values(layer.bs.as_ref().unwrap()), values(&layer.ws)].concat();
    let gradient = |scale: f64| -> Vec<f64> {
        let (c, x) = ([1.0, -3.0], [0.5, -1.0, 2.0]);
        let bias = c.iter().map(|c| c * scale);
        let weight = c.iter().flat_map(|c| x.iter().map(move |x| c * x * scale));
        bias.chain(weight).collect()
    };
    // The second gradient's norm (≈ 31) is clipped to 5; the first (≈ 7.8) is not.
    let (lr, max_norm) = (0.01, 5.0);
    for scale in [0.5, 4.0] {
        opt.zero_grad();
        backward(&layer, scale);
        opt.clip_and_step(lr, max_norm).unwrap();
    }
    let expected = adam_by_hand(&start, &[gradient(0.5), gradient(4.0)], lr, max_norm);
    let got: Vec<f64> = [values(layer.bs.as_ref().unwrap()), values(&layer.ws)].concat();
    for (g, e) in got.iter().zip(&expected) {
        assert!((g - e).abs() < 1e-6, "got {got:?}\nexpected {expected:?}");
    }
    assert_eq!(opt.step, 2);
}

#[test]
fn state_round_trip_continues_identically() {
    tch::manual_seed(2);
    let (vs, layer) = linear();
    let mut opt = Adam::new(&vs, 0.9, 0.999);
    backward(&layer, 1.0);
    opt.clip_and_step(0.01, 50.0).unwrap();
    let state: HashMap<String, Tensor> = opt
        .state("adam")
        .into_iter()
        .map(|(k, v)| (k, v.copy()))
        .collect();
    assert_eq!(state.len(), 5, "step + m and v of two parameters");
    let weights = layer.ws.copy();

    // A second optimiser over a copy of the layer, restored from the state, takes the same
    // next step as the first.
    let (mut vs2, layer2) = linear();
    vs2.copy(&vs).unwrap();
    let mut opt2 = Adam::new(&vs2, 0.9, 0.999);
    opt2.load_state("adam", &state).unwrap();
    for (o, l) in [(&mut opt, &layer), (&mut opt2, &layer2)] {
        o.zero_grad();
        backward(l, -2.0);
        o.clip_and_step(0.01, 50.0).unwrap();
    }
    assert!(layer.ws.equal(&layer2.ws));
    assert!(!layer.ws.equal(&weights));
    let missing = opt2.load_state("adam", &HashMap::new()).unwrap_err();
    assert!(missing.to_string().contains("adam.step"), "{missing}");
}

#[test]
fn a_parameter_without_gradient_is_an_error() {
    let (vs, _layer) = linear();
    let mut opt = Adam::new(&vs, 0.9, 0.999);
    let e = opt.clip_and_step(0.01, 50.0).unwrap_err();
    assert!(e.to_string().contains("fc.bias"), "{e}");
}

/// A channels-last convolution weight keeps its layout and takes the same steps as its NCHW
/// twin, and its saved moments are the twin's.
#[test]
fn channels_last_parameters_step_as_channels_first_ones() {
    use gstcyclesr::model::layout::{is_channels_last, set_layout, Layout};
    tch::manual_seed(3);
    let x = Tensor::randn([2, 3, 5, 5], (Kind::Float, Device::Cpu));
    let run = |layout: Layout| {
        let vs = nn::VarStore::new(Device::Cpu);
        let conv = nn::conv2d(vs.root() / "conv", 3, 4, 3, Default::default());
        tch::no_grad(|| {
            let mut w = conv.ws.shallow_clone();
            let values = Tensor::arange(4 * 3 * 3 * 3, (Kind::Float, Device::Cpu)) / 100.0;
            w.copy_(&values.view([4, 3, 3, 3]).sin());
        });
        set_layout(&vs, layout);
        let mut opt = Adam::new(&vs, 0.9, 0.999);
        assert_eq!(is_channels_last(&conv.ws), layout == Layout::ChannelsLast);
        for scale in [1.0, -3.0] {
            opt.zero_grad();
            (conv.forward(&x) * scale)
                .square()
                .sum(Kind::Float)
                .backward();
            opt.clip_and_step(0.01, 5.0).unwrap();
        }
        assert_eq!(is_channels_last(&conv.ws), layout == Layout::ChannelsLast);
        let state: HashMap<String, Tensor> = opt.state("adam").into_iter().collect();
        (conv.ws.copy(), state["adam.m.conv.weight"].contiguous())
    };
    let (first, m_first) = run(Layout::ChannelsFirst);
    let (last, m_last) = run(Layout::ChannelsLast);
    assert!(first.allclose(&last, 1e-6, 1e-6, false));
    assert!(m_first.allclose(&m_last, 1e-6, 1e-6, false));
}
