"""The same DCGAN as trainer/models.py, written plainly in PyTorch (the peer of `python -m bench peer`).

Radford et al.'s architecture with ngf = ndf = 64 * width: G projects z to
4x4x(8 ngf) (a Linear, which is what a 4x4 ConvTranspose on a 1x1 input is),
then ConvTranspose(4, stride 2, padding 1) + BatchNorm + ReLU up to the image
and tanh; D mirrors it with Conv(4, stride 2, padding 1) + BatchNorm +
LeakyReLU(0.2) and a Linear logit. One step = one D update (real vs detached
fake, BCE with logits) then one G update (non-saturating) on the same fake
batch, Adam(2e-4, 0.5, 0.999), as in the PyTorch DCGAN example. Needs the
`bench` dependency group (`pip install --group bench`: torch 2.13.0, CPU build); nothing in `trainer/` imports it.

Run as a whole job (what `python -m bench peer` launches, one process per run),
it trains on scikit-learn's digits resized like `dcgan train` does and prints
the median images/s over log windows after the first, like `dcgan train`:

    python -m bench.peers.torch_dcgan --resolution=32 --channels=1 --steps=200 --log_every=25 [--bfloat16]
"""

from __future__ import annotations

import math

import torch
from torch import nn


def filters(width: float, level_from_top: int) -> int:
    return max(1, round(64 * width)) * min(2**level_from_top, 8)


class Generator(nn.Module):
    def __init__(self, resolution: int, channels: int, latent_dim: int = 100, width: float = 1.0):
        super().__init__()
        n = int(math.log2(resolution)) - 2
        self.top = filters(width, n - 1)
        self.project = nn.Linear(latent_dim, 4 * 4 * self.top, bias=False)
        blocks = [nn.BatchNorm2d(self.top, momentum=0.1, eps=1e-5), nn.ReLU(True)]
        in_filters = self.top
        for level in range(n - 2, -1, -1):
            out = filters(width, level)
            blocks += [nn.ConvTranspose2d(in_filters, out, 4, 2, 1, bias=False), nn.BatchNorm2d(out), nn.ReLU(True)]
            in_filters = out
        blocks += [nn.ConvTranspose2d(in_filters, channels, 4, 2, 1), nn.Tanh()]
        self.body = nn.Sequential(*blocks)

    def forward(self, z):
        return self.body(self.project(z).view(-1, self.top, 4, 4))


class Discriminator(nn.Module):
    def __init__(self, resolution: int, channels: int, width: float = 1.0):
        super().__init__()
        n = int(math.log2(resolution)) - 2
        blocks = [nn.Conv2d(channels, filters(width, 0), 4, 2, 1), nn.LeakyReLU(0.2, True)]
        for level in range(1, n):
            blocks += [
                nn.Conv2d(filters(width, level - 1), filters(width, level), 4, 2, 1, bias=False),
                nn.BatchNorm2d(filters(width, level)),
                nn.LeakyReLU(0.2, True),
            ]
        self.body = nn.Sequential(*blocks, nn.Flatten())
        self.logit = nn.Linear(4 * 4 * filters(width, n - 1), 1)

    def forward(self, x):
        return self.logit(self.body(x)).view(-1)


def init_weights(module):
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def make_step(
    resolution: int,
    channels: int,
    batch: int,
    width: float = 1.0,
    latent_dim: int = 100,
    precision: str = "float32",
    device: str = "cpu",
    seed: int = 0,
):
    """A callable `step(real)` running one training step on a real batch [batch, C, H, W] in [-1, 1];
    returns the G loss tensor. precision: float32, or bfloat16/float16 under torch.autocast."""
    torch.manual_seed(seed)
    G = Generator(resolution, channels, latent_dim, width).to(device)
    D = Discriminator(resolution, channels, width).to(device)
    G.apply(init_weights)
    D.apply(init_weights)
    g_opt = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    bce = nn.BCEWithLogitsLoss()
    ones, zeros = torch.ones(batch, device=device), torch.zeros(batch, device=device)
    half = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(precision)
    device_type = device.split(":")[0]
    # float16 needs loss scaling (as our float16 mode has); bfloat16 and float32 do not.
    scaler = torch.amp.GradScaler(device_type, enabled=precision == "float16")

    def step(real):
        with torch.autocast(device_type, dtype=half or torch.float32, enabled=half is not None):
            fake = G(torch.randn(batch, latent_dim, device=device))
            d_opt.zero_grad(set_to_none=True)
            d_loss = bce(D(real).float(), ones) + bce(D(fake.detach()).float(), zeros)
        scaler.scale(d_loss).backward()
        scaler.step(d_opt)
        with torch.autocast(device_type, dtype=half or torch.float32, enabled=half is not None):
            g_opt.zero_grad(set_to_none=True)
            g_loss = bce(D(fake).float(), ones)
        scaler.scale(g_loss).backward()
        scaler.step(g_opt)
        scaler.update()
        return g_loss.detach()

    return step


def main(argv=None) -> None:
    import argparse
    import statistics
    import time

    import numpy as np
    from sklearn.datasets import load_digits

    parser = argparse.ArgumentParser(description="Train the peer DCGAN on digits; print images/s like `dcgan train`.")
    parser.add_argument("--resolution", type=int, default=32, help="image side in pixels")
    parser.add_argument("--channels", type=int, default=1, help="1 or 3 (grey digits repeated)")
    parser.add_argument("--batch", type=int, default=64, help="images per step")
    parser.add_argument("--steps", type=int, default=200, help="training steps")
    parser.add_argument("--log_every", type=int, default=25, help="steps per throughput window")
    parser.add_argument("--bfloat16", action="store_true", help="torch.autocast(bfloat16)")
    parser.add_argument("--describe", action="store_true", help="print the torch version and thread count, and exit")
    args = parser.parse_args(argv)
    if args.describe:
        print(torch.__version__, torch.get_num_threads())
        return
    torch.manual_seed(0)
    small = torch.from_numpy((load_digits().images / 16.0).astype(np.float32))[:, None]
    images = torch.nn.functional.interpolate(small, size=(args.resolution,) * 2, mode="bilinear", antialias=True)
    images = (images.clamp(0, 1) * 2 - 1).repeat(1, args.channels, 1, 1)
    train_step = make_step(
        args.resolution, args.channels, args.batch, precision="bfloat16" if args.bfloat16 else "float32"
    )
    rates, started = [], time.perf_counter()
    for step in range(1, args.steps + 1):
        g_loss = train_step(images[torch.randint(len(images), (args.batch,))])
        if step % args.log_every == 0 or step == args.steps:
            float(g_loss)  # as `dcgan train` reads its losses at every log
            now = time.perf_counter()
            rates.append(args.log_every * args.batch / (now - started))
            started = now
    print(
        f"done: step {args.steps}, {statistics.median(rates[1:] or rates):.1f} img/s (median), "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )


if __name__ == "__main__":
    main()
