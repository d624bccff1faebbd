"""A quick screen of generator designs on a GPU, in PyTorch: which levers are worth building in trainer/?

Not the product: `dcgan train` (TensorFlow) is what users run and what the
usefulness experiment measures. This script exists because a GPU lent for a few
minutes has PyTorch but no TensorFlow, and one CPU run of `dcgan train` on
`shapes` takes 20 minutes: here a dozen designs train side by side in minutes,
and the winners' samples come back to be measured by the real recipes
(`experiments.usefulness`-style, in TensorFlow, on the validation split).

The designs mirror trainer/models.py (the Radford DCGAN: `concat` label
embedding, BatchNorm D, projection head, DiffAugment colour/translation/cutout,
non-saturating loss, G EMA 0.999) with switches for the levers under test:
an AC-GAN class head on D (--class_loss_weight), class-conditional BatchNorm in
G, SNGAN-style ResNet G and D with hinge loss, and the schedule length.

    python -m experiments.gan_screen_torch --data=screen/shapes.npz --variant=ac1 --class_loss_weight=1 \\
        --steps=10000 --out=results/

The .npz holds train_x/train_y (the GAN's training images, uint8 NHWC) and
val_x/val_y (a validation split: GAN-test's classifier and the downstream score;
never the test split). Prints and appends one JSON line to OUT/results.jsonl;
--samples=N also writes OUT/samples-NAME.npz (N uint8 images and their labels).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import spectral_norm as sn

# -- DiffAugment (Zhao et al. 2020): colour, translation by 1/8, cutout of half the side; images in [-1, 1].


def diffaugment(x: torch.Tensor) -> torch.Tensor:
    b, _, h, w = x.shape
    dev = x.device
    x = x + (torch.rand(b, 1, 1, 1, device=dev) - 0.5)
    mean = x.mean(1, keepdim=True)
    x = (x - mean) * (torch.rand(b, 1, 1, 1, device=dev) * 2) + mean
    mean = x.mean([1, 2, 3], keepdim=True)
    x = (x - mean) * (torch.rand(b, 1, 1, 1, device=dev) + 0.5) + mean
    shift = int(h * 0.125 + 0.5)
    tx = torch.randint(-shift, shift + 1, (b, 1, 1), device=dev)
    ty = torch.randint(-shift, shift + 1, (b, 1, 1), device=dev)
    gb, gx, gy = torch.meshgrid(
        torch.arange(b, device=dev), torch.arange(h, device=dev), torch.arange(w, device=dev), indexing="ij"
    )
    gx = torch.clamp(gx + tx + 1, 0, h + 1)
    gy = torch.clamp(gy + ty + 1, 0, w + 1)
    x = F.pad(x, [1, 1, 1, 1]).permute(0, 2, 3, 1)[gb, gx, gy].permute(0, 3, 1, 2)
    cut = int(h * 0.5 + 0.5)
    ox = torch.randint(0, h + (1 - cut % 2), (b, 1, 1), device=dev)
    oy = torch.randint(0, w + (1 - cut % 2), (b, 1, 1), device=dev)
    gb, gx, gy = torch.meshgrid(
        torch.arange(b, device=dev), torch.arange(cut, device=dev), torch.arange(cut, device=dev), indexing="ij"
    )
    gx = torch.clamp(gx + ox - cut // 2, 0, h - 1)
    gy = torch.clamp(gy + oy - cut // 2, 0, w - 1)
    mask = torch.ones(b, h, w, device=dev)
    mask[gb, gx, gy] = 0
    return x * mask.unsqueeze(1)


# -- Models


class CondBN(nn.Module):
    """BatchNorm whose gain and bias are per class (or plain BatchNorm when classes == 0)."""

    def __init__(self, c: int, classes: int):
        super().__init__()
        self.classes = classes
        self.bn = nn.BatchNorm2d(c, affine=classes == 0)
        if classes:
            self.gain = nn.Embedding(classes, c)
            self.bias = nn.Embedding(classes, c)
            nn.init.ones_(self.gain.weight)
            nn.init.zeros_(self.bias.weight)

    def forward(self, x, y):
        x = self.bn(x)
        if self.classes:
            x = x * self.gain(y)[:, :, None, None] + self.bias(y)[:, :, None, None]
        return x


class DcganG(nn.Module):
    def __init__(self, channels, classes, cbn, latent=100, base=64):
        super().__init__()
        self.embed = nn.Embedding(classes, latent)
        self.project = nn.Linear(2 * latent, 4 * 4 * base * 4, bias=False)
        k = classes if cbn else 0
        self.n0 = CondBN(base * 4, k)
        self.up1, self.n1 = nn.ConvTranspose2d(base * 4, base * 2, 4, 2, 1, bias=False), CondBN(base * 2, k)
        self.up2, self.n2 = nn.ConvTranspose2d(base * 2, base, 4, 2, 1, bias=False), CondBN(base, k)
        self.out = nn.ConvTranspose2d(base, channels, 4, 2, 1)
        self.base = base

    def forward(self, z, y):
        h = self.project(torch.cat([z, self.embed(y)], 1)).view(-1, self.base * 4, 4, 4)
        h = F.relu(self.n0(h, y))
        h = F.relu(self.n1(self.up1(h), y))
        h = F.relu(self.n2(self.up2(h), y))
        return torch.tanh(self.out(h))


class DcganD(nn.Module):
    def __init__(self, channels, classes, spectral, class_head, base=64):
        super().__init__()
        wrap = sn if spectral else (lambda m: m)
        self.c1 = wrap(nn.Conv2d(channels, base, 4, 2, 1))
        self.c2 = wrap(nn.Conv2d(base, base * 2, 4, 2, 1, bias=spectral))
        self.c3 = wrap(nn.Conv2d(base * 2, base * 4, 4, 2, 1, bias=spectral))
        self.b2 = nn.Identity() if spectral else nn.BatchNorm2d(base * 2)
        self.b3 = nn.Identity() if spectral else nn.BatchNorm2d(base * 4)
        feat = base * 4 * 16
        self.head = Head(feat, classes, spectral, class_head)

    def forward(self, x, y):
        h = F.leaky_relu(self.c1(x), 0.2)
        h = F.leaky_relu(self.b2(self.c2(h)), 0.2)
        h = F.leaky_relu(self.b3(self.c3(h)), 0.2)
        return self.head(h.flatten(1), y)


class Head(nn.Module):
    """Projection logit (w.h + b + <embed(y), h>) and an optional AC-GAN class head."""

    def __init__(self, feat, classes, spectral, class_head):
        super().__init__()
        wrap = sn if spectral else (lambda m: m)
        self.linear = wrap(nn.Linear(feat, 1))
        self.embed = wrap(nn.Embedding(classes, feat))
        self.classes = nn.Linear(feat, classes) if class_head else None

    def forward(self, h, y):
        logit = self.linear(h)[:, 0] + (self.embed(y) * h).sum(1)
        return logit, (self.classes(h) if self.classes is not None else None)


class GBlock(nn.Module):
    def __init__(self, cin, cout, classes):
        super().__init__()
        self.n1, self.c1 = CondBN(cin, classes), nn.Conv2d(cin, cout, 3, 1, 1)
        self.n2, self.c2 = CondBN(cout, classes), nn.Conv2d(cout, cout, 3, 1, 1)
        self.skip = nn.Conv2d(cin, cout, 1)

    def forward(self, x, y):
        h = F.interpolate(F.relu(self.n1(x, y)), scale_factor=2)
        h = self.c2(F.relu(self.n2(self.c1(h), y)))
        return h + self.skip(F.interpolate(x, scale_factor=2))


class ResnetG(nn.Module):
    """SNGAN's CIFAR generator: 4x4 -> three up-blocks (nearest, 3x3 convs, class-conditional BN) -> 32x32."""

    def __init__(self, channels, classes, ch=128, latent=100):
        super().__init__()
        self.ch = ch
        self.project = nn.Linear(latent, 4 * 4 * ch)
        self.blocks = nn.ModuleList([GBlock(ch, ch, classes) for _ in range(3)])
        self.bn = nn.BatchNorm2d(ch)
        self.out = nn.Conv2d(ch, channels, 3, 1, 1)

    def forward(self, z, y):
        h = self.project(z).view(-1, self.ch, 4, 4)
        for block in self.blocks:
            h = block(h, y)
        return torch.tanh(self.out(F.relu(self.bn(h))))


class DBlock(nn.Module):
    def __init__(self, cin, cout, down, first):
        super().__init__()
        self.c1, self.c2 = sn(nn.Conv2d(cin, cout, 3, 1, 1)), sn(nn.Conv2d(cout, cout, 3, 1, 1))
        self.skip = sn(nn.Conv2d(cin, cout, 1))
        self.down, self.first = down, first

    def forward(self, x):
        h = x if self.first else F.relu(x)
        h = self.c2(F.relu(self.c1(h)))
        s = x
        if self.down:
            h = F.avg_pool2d(h, 2)
            s = F.avg_pool2d(s, 2) if self.first else s
        s = self.skip(s)
        if self.down and not self.first:
            s = F.avg_pool2d(s, 2)
        return h + s


class ResnetD(nn.Module):
    def __init__(self, channels, classes, class_head, ch=128):
        super().__init__()
        self.blocks = nn.Sequential(
            DBlock(channels, ch, True, True),
            DBlock(ch, ch, True, False),
            DBlock(ch, ch, False, False),
            DBlock(ch, ch, False, False),
        )
        self.head = Head(ch, classes, True, class_head)

    def forward(self, x, y):
        h = F.relu(self.blocks(x)).sum([2, 3])
        return self.head(h, y)


# -- The small downstream classifier of trainer/metrics.py (build_classifier), its recipe, and GAN-test.


class Classifier(nn.Module):
    def __init__(self, channels, classes):
        super().__init__()
        self.c1, self.c2, self.c3 = (
            nn.Conv2d(channels, 16, 3, 1, 1),
            nn.Conv2d(16, 32, 3, 1, 1),
            nn.Conv2d(32, 64, 3, 1, 1),
        )
        self.fc, self.out, self.drop = nn.Linear(64, 128), nn.Linear(128, classes), nn.Dropout(0.3)

    def forward(self, x):
        h = F.max_pool2d(F.relu(self.c1(x)), 2)
        h = F.max_pool2d(F.relu(self.c2(h)), 2)
        h = F.relu(self.c3(h)).mean([2, 3])
        return self.out(self.drop(F.relu(self.fc(h))))


def shift_flip(x, flip):
    """The downstream policy here: translation by up to 4 pixels (edge-padded), and a horizontal flip."""
    b, _, h, w = x.shape
    pad = F.pad(x, [4, 4, 4, 4], mode="replicate")
    i = torch.randint(0, 9, (b,), device=x.device)
    j = torch.randint(0, 9, (b,), device=x.device)
    rows = (i[:, None] + torch.arange(h, device=x.device))[:, None, :, None].expand(b, x.shape[1], h, w + 8)
    out = torch.gather(pad, 2, rows)
    cols = (j[:, None] + torch.arange(w, device=x.device))[:, None, None, :].expand(b, x.shape[1], h, w)
    out = torch.gather(out, 3, cols)
    if flip:
        mask = torch.rand(b, device=x.device) < 0.5
        out = torch.where(mask[:, None, None, None], out.flip(3), out)
    return out


def train_classifier(x, y, classes, seed, flip, synthetic=None, share=0.0, steps=1000, batch=64):
    torch.manual_seed(seed)
    model = Classifier(x.shape[1], classes).to(x.device)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    n_synth = int(round(batch * share)) if synthetic is not None else 0
    for _ in range(steps):
        idx = torch.randint(0, len(x), (batch - n_synth,), device=x.device)
        xb, yb = shift_flip(x[idx], flip), y[idx]
        if n_synth:
            sidx = torch.randint(0, len(synthetic[0]), (n_synth,), device=x.device)
            xb, yb = torch.cat([xb, synthetic[0][sidx]]), torch.cat([yb, synthetic[1][sidx]])
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval()


@torch.no_grad()
def accuracy(model, x, y):
    return float((model(x).argmax(1) == y).float().mean())


# -- Training


def to_tensor(images, device):
    return torch.tensor(images, device=device).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--variant", required=True)
    p.add_argument("--arch", default="dcgan", choices=("dcgan", "resnet"))
    p.add_argument("--cbn", action="store_true")
    p.add_argument("--spectral", action="store_true")
    p.add_argument("--loss", default="nonsaturating", choices=("nonsaturating", "hinge"))
    p.add_argument("--class_loss_weight", type=float, default=0.0)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--budget_s", type=float, default=1e9, help="stop training after this many seconds")
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--beta1", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--flip", action="store_true", help="the downstream policy flips (not for digits)")
    p.add_argument("--samples", type=int, default=0)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(a.seed)
    d = np.load(a.data)
    x, y = to_tensor(d["train_x"], dev), torch.tensor(d["train_y"], device=dev).long()
    vx, vy = to_tensor(d["val_x"], dev), torch.tensor(d["val_y"], device=dev).long()
    classes, channels = int(max(y.max(), vy.max()) + 1), x.shape[1]
    if a.arch == "dcgan":
        G, D = DcganG(channels, classes, a.cbn), DcganD(channels, classes, a.spectral, a.class_loss_weight > 0)
        G_ema = DcganG(channels, classes, a.cbn)
    else:
        G, D, G_ema = (
            ResnetG(channels, classes),
            ResnetD(channels, classes, a.class_loss_weight > 0),
            ResnetG(channels, classes),
        )
    for m in (G, D):
        for mod in m.modules():
            if isinstance(mod, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)) and a.arch == "dcgan":
                nn.init.normal_(mod.weight, 0, 0.02)
    G, D, G_ema = G.to(dev), D.to(dev), G_ema.to(dev)
    G_ema.load_state_dict(G.state_dict())
    g_opt = torch.optim.Adam(G.parameters(), a.lr, betas=(a.beta1, 0.999))
    d_opt = torch.optim.Adam(D.parameters(), a.lr, betas=(a.beta1, 0.999))
    batch, latent = 64, 100
    started, step = time.time(), 0
    d_real_acc = g_fake_acc = 0.0
    while step < a.steps and time.time() - started < a.budget_s:
        idx = torch.randint(0, len(x), (batch,), device=dev)
        real, real_y = x[idx], y[idx]
        z = torch.randn(batch, latent, device=dev)
        fake_y = torch.randint(0, classes, (batch,), device=dev)
        fake = G(z, fake_y)
        r_logit, r_cls = D(diffaugment(real), real_y)
        f_logit, _ = D(diffaugment(fake.detach()), fake_y)
        if a.loss == "hinge":
            d_loss = F.relu(1 - r_logit).mean() + F.relu(1 + f_logit).mean()
        else:
            d_loss = F.softplus(-r_logit).mean() + F.softplus(f_logit).mean()
        if r_cls is not None:
            d_loss = d_loss + a.class_loss_weight * F.cross_entropy(r_cls, real_y)
            d_real_acc = 0.99 * d_real_acc + 0.01 * float((r_cls.argmax(1) == real_y).float().mean())
        d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        d_opt.step()
        g_logit, g_cls = D(diffaugment(fake), fake_y)
        g_loss = -g_logit.mean() if a.loss == "hinge" else F.softplus(-g_logit).mean()
        if g_cls is not None:
            g_loss = g_loss + a.class_loss_weight * F.cross_entropy(g_cls, fake_y)
            g_fake_acc = 0.99 * g_fake_acc + 0.01 * float((g_cls.argmax(1) == fake_y).float().mean())
        g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        g_opt.step()
        step += 1
        with torch.no_grad():
            decay = min(0.999, (1 + step) / (10 + step))
            for e, v in zip(G_ema.parameters(), G.parameters()):
                e.lerp_(v, 1 - decay)
            for e, v in zip(G_ema.buffers(), G.buffers()):
                e.copy_(v)
    train_s = time.time() - started
    # -- Samples of G_ema (eval-mode BatchNorm), balanced labels.
    G_ema.eval()
    n = max(a.samples, 5000)
    with torch.no_grad():
        sy = torch.arange(n, device=dev) % classes
        sx = torch.cat([G_ema(torch.randn(500, latent, device=dev), sy[i : i + 500]) for i in range(0, n, 500)])
    sx_u8 = ((sx.clamp(-1, 1) + 1) * 127.5).round()
    sx_f = sx_u8 / 127.5 - 1.0
    # -- Nearest training image (pixels) per sample vs between training images: a memorization signal.
    flat_t, flat_s = x.flatten(1), sx_f[:2000].flatten(1)
    nn_s = torch.cdist(flat_s, flat_t).min(1).values
    dist_tt = torch.cdist(flat_t, flat_t)
    dist_tt.fill_diagonal_(float("inf"))
    threshold = torch.quantile(dist_tt.min(1).values, 0.01)
    memorized = float((nn_s < threshold).float().mean())
    # -- GAN-test: a classifier trained on the validation split, accuracy on samples; and on held-out train.
    judge = train_classifier(vx, vy, classes, seed=100, flip=a.flip)
    gan_test, judge_held_out = accuracy(judge, sx_f, sy), accuracy(judge, x, y)
    # -- Downstream on the validation split: real + policy, and + synthetic (hard labels) at two shares.
    down = {}
    for name, share in (("real", 0.0), ("synthetic 0.25", 0.25), ("synthetic 0.5", 0.5)):
        runs = [
            accuracy(train_classifier(x, y, classes, seed=s, flip=a.flip, synthetic=(sx_f, sy), share=share), vx, vy)
            for s in range(3)
        ]
        down[name] = [float(np.mean(runs)), float(np.std(runs))]
    result = {
        "data": os.path.basename(a.data),
        "variant": a.variant,
        "steps": step,
        "train_s": round(train_s, 1),
        "d_class_acc_real": round(d_real_acc, 3),
        "d_class_acc_fake": round(g_fake_acc, 3),
        "gan_test": round(gan_test, 4),
        "judge_held_out": round(judge_held_out, 4),
        "memorized": round(memorized, 4),
        "downstream_val": down,
        "total_s": round(time.time() - started, 1),
    }
    print(json.dumps(result), flush=True)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "results.jsonl"), "a") as f:
        f.write(json.dumps(result) + "\n")
    if a.samples:
        images = sx_u8[: a.samples].permute(0, 2, 3, 1).to(torch.uint8).cpu().numpy()
        tag = f"{os.path.splitext(os.path.basename(a.data))[0]}-{a.variant}"
        np.savez(os.path.join(a.out, f"samples-{tag}.npz"), x=images, y=sy[: a.samples].cpu().numpy().astype(np.int32))


if __name__ == "__main__":
    main()
