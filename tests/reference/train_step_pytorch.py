"""PyTorch eager twin of one joint training iteration of `train`, the baseline `train bench-step`
compares tch against.

Mirrors, from the same options file (TOML, the project's sections): the networks of
train/src/archs/cyclegan.rs (ResNet translators G_s2r and G_r2s, `residual` included, and the
PatchGAN discriminators D_r and D_s), G_l2h from sr_models.py (the twin of
plugin/src/model/arch.rs), D_h of train/src/archs/vgg.rs in joint-gan mode, and the step of
`CycleSrModel::train_step` in the joint phase (train/src/model.rs, `translator_step`):

1. D_r, D_s (and D_h) frozen; L1 = LSGAN of both translations + λ_cyc·cycle L1 + λ_id·identity
   L1 (+ the optional low-frequency term); L2 = λ_mse·MSE of G_l2h(G_s2r(syn)) against HR
   (+ λ_advsr·relativistic GAN with D_h in joint-gan mode; no perceptual term);
2. one backward of L1 + L2 into G_s2r, G_r2s and G_l2h; the gradient norm of each group clipped
   (translators together, G_l2h alone), then Adam;
3. D_r and D_s on image-pooled fakes (LSGAN, halved), clipped, Adam;
4. joint-gan: D_h (relativistic average GAN) on HR and the detached SR output, clipped, Adam.

Every loss value is read back as a number, as the Rust side logs it. The optimiser and clipping
are what a PyTorch user writes (torch.optim.Adam, clip_grad_norm_), the same maths as
train/src/optim.rs. Inputs are fixed random tensors of the configured shape; each iteration
uses the first iteration of the joint phase (learning-rate factor 1).

Prints one JSON object on stdout (and writes it to --json):

    {"torch": "2.11.0+cu130", "device": "cpu", "threads": 2, "mode": "joint",
     "shape": {"batch": 8, "lr_patch": 32, "scale": 4},
     "parameters": {"g_s2r": ..., "g_r2s": ..., "d_r": ..., "d_s": ..., "g_l2h": ...},
     "steps": [...], "step_seconds_median": ..., "losses": {...}}

Usage: train_step_pytorch.py --config FILE.toml [--device cpu|cuda] [--threads N]
       [--warmup 2] [--steps 5] [--json OUT]
"""
import argparse
import json
import math
import os
import random
import statistics
import sys
import time
import tomllib

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sr_models import build  # noqa: E402


def instance_norm(x):
    """CycleGAN's instance norm without affine parameters or running statistics."""
    return F.instance_norm(x, eps=1e-5)


def reflect(x, left, right, top, bottom):
    return F.pad(x, (left, right, top, bottom), mode="reflect")


class TranslatorBlock(nn.Module):
    def __init__(self, nf):
        super().__init__()
        self.conv1 = nn.Conv2d(nf, nf, 3)
        self.conv2 = nn.Conv2d(nf, nf, 3)


class ResnetTranslator(nn.Module):
    """`resnet_generator`: [0, 1] in and out, reflect-padded to a multiple of 4 and cropped back."""

    def __init__(self, features, blocks, residual=False):
        super().__init__()
        f = features
        self.residual = residual
        self.head = nn.Conv2d(3, f, 7)
        self.down1 = nn.Conv2d(f, 2 * f, 3, stride=2, padding=1)
        self.down2 = nn.Conv2d(2 * f, 4 * f, 3, stride=2, padding=1)
        self.body = nn.ModuleList(TranslatorBlock(4 * f) for _ in range(blocks))
        self.up1 = nn.ConvTranspose2d(4 * f, 2 * f, 3, stride=2, padding=1, output_padding=1)
        self.up2 = nn.ConvTranspose2d(2 * f, f, 3, stride=2, padding=1, output_padding=1)
        self.tail = nn.Conv2d(f, 3, 7)
        if residual:
            with torch.no_grad():
                self.tail.weight.zero_()
                self.tail.bias.zero_()

    def forward(self, x):
        h, w = x.shape[2], x.shape[3]
        pad_h, pad_w = (4 - h % 4) % 4, (4 - w % 4) % 4
        y = reflect(x * 2.0 - 1.0, 0, pad_w, 0, pad_h)
        feat = F.relu(instance_norm(self.head(reflect(y, 3, 3, 3, 3))))
        for d in (self.down1, self.down2):
            feat = F.relu(instance_norm(d(feat)))
        for b in self.body:
            r = F.relu(instance_norm(b.conv1(reflect(feat, 1, 1, 1, 1))))
            r = instance_norm(b.conv2(reflect(r, 1, 1, 1, 1)))
            feat = feat + r
        for u in (self.up1, self.up2):
            feat = F.relu(instance_norm(u(feat)))
        out = torch.tanh(self.tail(reflect(feat, 3, 3, 3, 3)))[:, :, :h, :w]
        return x + out / 2.0 if self.residual else (out + 1.0) / 2.0


class PatchDiscriminator(nn.Module):
    """`patch_discriminator`: one raw score per overlapping patch."""

    def __init__(self, features, layers):
        super().__init__()

        def width(i):
            return features * (1 << min(i, 3))

        self.conv0 = nn.Conv2d(3, features, 4, stride=2, padding=1)
        self.normed = nn.ModuleList(
            nn.Conv2d(width(i - 1), width(i), 4, stride=2 if i < layers else 1, padding=1)
            for i in range(1, layers + 1)
        )
        self.classifier = nn.Conv2d(width(layers), 1, 4, stride=1, padding=1)

    def forward(self, x):
        feat = F.leaky_relu(self.conv0(x * 2.0 - 1.0), 0.2)
        for c in self.normed:
            feat = F.leaky_relu(instance_norm(c(feat)), 0.2)
        return self.classifier(feat)


class VggDiscriminator(nn.Module):
    """`vgg_discriminator` (ESRGAN's D_h, pooled to 4×4 before the linear layers)."""

    def __init__(self, features):
        super().__init__()
        f = features
        self.conv0_0 = nn.Conv2d(3, f, 3, padding=1)
        specs = [(f, f, 4, 2)]
        widths = [f, 2 * f, 4 * f, 8 * f, 8 * f]
        for c_in, c_out in zip(widths, widths[1:]):
            specs += [(c_in, c_out, 3, 1), (c_out, c_out, 4, 2)]
        self.convs = nn.ModuleList(
            nn.Conv2d(c_in, c_out, k, stride=s, padding=1, bias=False) for c_in, c_out, k, s in specs
        )
        self.bns = nn.ModuleList(nn.BatchNorm2d(c_out) for _, c_out, _, _ in specs)
        self.linear1 = nn.Linear(8 * f * 4 * 4, 100)
        self.linear2 = nn.Linear(100, 1)

    def forward(self, x):
        feat = F.leaky_relu(self.conv0_0(x), 0.2)
        for conv, bn in zip(self.convs, self.bns):
            feat = F.leaky_relu(bn(conv(feat)), 0.2)
        feat = torch.flatten(F.adaptive_avg_pool2d(feat, 4), 1)
        return self.linear2(F.leaky_relu(self.linear1(feat), 0.2))


def lsgan(pred, target_is_real):
    return F.mse_loss(pred, torch.full_like(pred, 1.0 if target_is_real else 0.0))


def bce_with_logits(x, label):
    return F.binary_cross_entropy_with_logits(x, torch.full_like(x, 1.0 if label else 0.0))


def relativistic_gan_discriminator(real_pred, fake_pred):
    return (
        bce_with_logits(real_pred - fake_pred.mean(), True)
        + bce_with_logits(fake_pred - real_pred.mean(), False)
    ) / 2.0


def relativistic_gan_generator(real_pred, fake_pred):
    return (
        bce_with_logits(real_pred - fake_pred.mean(), False)
        + bce_with_logits(fake_pred - real_pred.mean(), True)
    ) / 2.0


class ImagePool:
    """train/src/pool.rs: each image stored while the pool fills, then swapped with probability ½."""

    def __init__(self, capacity):
        self.capacity = capacity
        self.images = []

    def query(self, batch, rng):
        batch = batch.detach()
        if self.capacity == 0:
            return batch
        out = []
        for i in range(batch.shape[0]):
            image = batch[i].clone()
            if len(self.images) < self.capacity:
                self.images.append(image)
                out.append(image)
            elif rng.random() < 0.5:
                j = rng.randrange(self.capacity)
                out.append(self.images[j])
                self.images[j] = image
            else:
                out.append(image)
        return torch.stack(out)


def set_trainable(module, on):
    for p in module.parameters():
        p.requires_grad_(on)


def count(module):
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


class JointStep:
    """The networks, optimisers and pools of a joint / joint-gan run, and its iteration."""

    def __init__(self, options, device):
        self.options = options
        self.gan_terms = options["mode"] == "joint-gan"
        nets, losses, o = options["networks"], options["losses"], options["optimizer"]
        self.scale = options["data"]["scale"]
        torch.manual_seed(options["seed"])
        t, d = nets["translator"], nets["discriminator"]
        self.g_s2r = ResnetTranslator(t["features"], t["blocks"], t.get("residual", False))
        self.g_r2s = ResnetTranslator(t["features"], t["blocks"], t.get("residual", False))
        self.d_r = PatchDiscriminator(d["features"], d["layers"])
        self.d_s = PatchDiscriminator(d["features"], d["layers"])
        sr = nets["sr"]
        self.g_l2h = build(sr["arch"], sr["blocks"], sr["features"], self.scale)
        self.d_h = VggDiscriminator(nets["sr_discriminator"]["features"]) if self.gan_terms else None
        for m in self.networks().values():
            m.to(device).train()

        betas = (o["beta1"], o["beta2"])
        self.lr_g, self.lr_sr, self.clip = o["lr_translator"], o["lr_sr"], o["grad_clip"]
        self.translator_params = [*self.g_s2r.parameters(), *self.g_r2s.parameters()]
        self.discriminator_params = [*self.d_r.parameters(), *self.d_s.parameters()]
        self.opt_g = torch.optim.Adam(self.translator_params, lr=self.lr_g, betas=betas, eps=1e-8)
        self.opt_d = torch.optim.Adam(self.discriminator_params, lr=self.lr_g, betas=betas, eps=1e-8)
        self.opt_sr = torch.optim.Adam(self.g_l2h.parameters(), lr=self.lr_sr, betas=betas, eps=1e-8)
        self.opt_dh = (
            torch.optim.Adam(self.d_h.parameters(), lr=self.lr_sr, betas=betas, eps=1e-8)
            if self.gan_terms
            else None
        )

        self.w_gan = losses["gan"]["weight"]
        self.w_cycle = losses["cycle"]["weight"]
        identity = losses["identity"]
        self.w_identity = identity["weight"] * (
            self.w_cycle if identity.get("scale_by_cycle", False) else 1.0
        )
        self.w_low = losses.get("low_frequency", {"weight": 0.0})["weight"]
        self.w_mse = losses["sr_mse"]["weight"]
        self.w_sr_gan = losses["sr_gan"]["weight"]
        pool = options["schedule"]["pool_size"]
        self.pool_r, self.pool_s = ImagePool(pool), ImagePool(pool)

    def networks(self):
        nets = {"g_s2r": self.g_s2r, "g_r2s": self.g_r2s, "d_r": self.d_r, "d_s": self.d_s, "g_l2h": self.g_l2h}
        if self.d_h is not None:
            nets["d_h"] = self.d_h
        return nets

    def step(self, real, syn, hr, rng):
        values = {}
        set_trainable(self.d_r, False)
        set_trainable(self.d_s, False)
        if self.d_h is not None:
            set_trainable(self.d_h, False)

        # Generators: L1 + L2, one backward.
        fake_r = self.g_s2r(syn)
        fake_s = self.g_r2s(real)
        cycle = F.l1_loss(self.g_r2s(fake_r), syn) + F.l1_loss(self.g_s2r(fake_s), real)
        adversarial = lsgan(self.d_r(fake_r), True) + lsgan(self.d_s(fake_s), True)
        total = adversarial * self.w_gan + cycle * self.w_cycle
        values["g_gan"] = adversarial.item()
        values["g_cycle"] = cycle.item()
        if self.w_identity > 0.0:
            identity = F.l1_loss(self.g_s2r(real), real) + F.l1_loss(self.g_r2s(syn), syn)
            values["g_identity"] = identity.item()
            total = total + identity * self.w_identity
        if self.w_low > 0.0:

            def low(t):
                return F.avg_pool2d(t, 4, 4, 0, ceil_mode=True, count_include_pad=False)

            kept = F.l1_loss(low(fake_r), low(syn)) + F.l1_loss(low(fake_s), low(real))
            values["g_low_frequency"] = kept.item()
            total = total + kept * self.w_low
        sr = self.g_l2h(fake_r)
        pixel = F.mse_loss(sr, hr)
        values["sr_mse"] = pixel.item()
        l2 = pixel * self.w_mse
        if self.gan_terms:
            with torch.no_grad():
                real_pred = self.d_h(hr)
            adv = relativistic_gan_generator(real_pred, self.d_h(sr))
            values["sr_gan"] = adv.item()
            l2 = l2 + adv * self.w_sr_gan
        total = total + l2
        self.opt_g.zero_grad()
        self.opt_sr.zero_grad()
        total.backward()
        nn.utils.clip_grad_norm_(self.translator_params, self.clip)
        self.opt_g.step()
        nn.utils.clip_grad_norm_(self.g_l2h.parameters(), self.clip)
        self.opt_sr.step()

        # D_r and D_s (LSGAN, halved) on pooled fakes.
        set_trainable(self.d_r, True)
        set_trainable(self.d_s, True)
        pooled_r = self.pool_r.query(fake_r, rng)
        pooled_s = self.pool_s.query(fake_s, rng)
        d_r = (lsgan(self.d_r(real), True) + lsgan(self.d_r(pooled_r), False)) * 0.5
        d_s = (lsgan(self.d_s(syn), True) + lsgan(self.d_s(pooled_s), False)) * 0.5
        values["d_r"] = d_r.item()
        values["d_s"] = d_s.item()
        self.opt_d.zero_grad()
        ((d_r + d_s) * self.w_gan).backward()
        nn.utils.clip_grad_norm_(self.discriminator_params, self.clip)
        self.opt_d.step()

        if self.gan_terms:
            set_trainable(self.d_h, True)
            d_h = relativistic_gan_discriminator(self.d_h(hr), self.d_h(sr.detach()))
            values["d_h"] = d_h.item()
            self.opt_dh.zero_grad()
            d_h.backward()
            nn.utils.clip_grad_norm_(self.d_h.parameters(), self.clip)
            self.opt_dh.step()

        for name, value in values.items():
            if not math.isfinite(value):
                raise RuntimeError(f"loss term '{name}' became {value}")
        return values


def joint_iteration(schedule):
    """First iteration of the joint phase (after the pretraining phases), as `Plan::at` counts."""
    return schedule.get("pretrain_translator", 0) + schedule.get("pretrain_sr", 0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True, help="options file (TOML) of `train`")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--json", help="also write the JSON report here")
    args = ap.parse_args()
    if args.steps < 1:
        sys.exit(f"--steps {args.steps} must be at least 1")

    with open(args.config, "rb") as f:
        options = tomllib.load(f)
    mode = options["mode"]
    if mode not in ("joint", "joint-gan"):
        sys.exit(f"{args.config}: mode '{mode}' has no joint phase (joint or joint-gan)")
    if mode == "joint-gan" and options["networks"].get("vgg19"):
        sys.exit(f"{args.config}: networks.vgg19 is set, but this twin has no perceptual term")

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    data = options["data"]
    batch, patch, scale = data.get("batch", 32), data.get("lr_patch", 120), data.get("scale", 4)

    model = JointStep(options, device)
    parameters = {name: count(m) for name, m in model.networks().items()}
    gen = torch.Generator().manual_seed(options["seed"] + 1)

    def rand(side):
        return torch.rand(batch, 3, side, side, generator=gen).to(device)

    real, syn, hr = rand(patch), rand(patch), rand(patch * scale)
    # The Rust side's pool randomness for its fixed iteration (train_step's seed).
    i = joint_iteration(options["schedule"])
    seed = (options["seed"] ^ ((i * 0xA24BAED4963EE407) & (2**64 - 1)) ^ 0x9001) & (2**64 - 1)

    times = []
    for k in range(args.warmup + args.steps):
        rng = random.Random(seed)
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        values = model.step(real, syn, hr, rng)
        if cuda:
            torch.cuda.synchronize()
        if k >= args.warmup:
            times.append(time.perf_counter() - t0)

    report = {
        "torch": torch.__version__,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "mode": mode,
        "iteration": i,
        "shape": {"batch": batch, "lr_patch": patch, "scale": scale},
        "parameters": parameters,
        "steps": times,
        "step_seconds_median": statistics.median(times),
        "losses": values,
    }
    text = json.dumps(report)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
