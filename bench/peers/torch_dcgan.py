"""The same DCGAN as trainer/models.py, written plainly in PyTorch (the peer of `python -m bench peer`).

Radford et al.'s architecture with ngf = ndf = 64 * width: G projects z to
4x4x(8 ngf) (a Linear, which is what a 4x4 ConvTranspose on a 1x1 input is),
then ConvTranspose(4, stride 2, padding 1) + BatchNorm + ReLU up to the image
and tanh; D mirrors it with Conv(4, stride 2, padding 1) + BatchNorm +
LeakyReLU(0.2) and a Linear logit. One step = one D update (real vs detached
fake, BCE with logits) then one G update (non-saturating) on the same fake
batch, Adam(2e-4, 0.5, 0.999), as in the PyTorch DCGAN example. Needs the
`bench` extra (torch 2.13.0, CPU build); nothing in `trainer/` imports it.

    python -c "from bench.peers import torch_dcgan as t; step = t.make_step(32, 1, 64); step(); print('ok')"
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
            blocks += [nn.Conv2d(filters(width, level - 1), filters(width, level), 4, 2, 1, bias=False),
                       nn.BatchNorm2d(filters(width, level)), nn.LeakyReLU(0.2, True)]
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


def make_step(resolution: int, channels: int, batch: int, width: float = 1.0, latent_dim: int = 100,
              bfloat16: bool = False, seed: int = 0):
    """A no-argument callable running one training step on a fixed real batch; returns (d_loss, g_loss)."""
    torch.manual_seed(seed)
    G, D = Generator(resolution, channels, latent_dim, width), Discriminator(resolution, channels, width)
    G.apply(init_weights)
    D.apply(init_weights)
    g_opt = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    bce = nn.BCEWithLogitsLoss()
    real = torch.rand(batch, channels, resolution, resolution) * 2 - 1
    ones, zeros = torch.ones(batch), torch.zeros(batch)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bfloat16):
            z = torch.randn(batch, latent_dim)
            fake = G(z)
            d_opt.zero_grad(set_to_none=True)
            d_loss = bce(D(real).float(), ones) + bce(D(fake.detach()).float(), zeros)
            d_loss.backward()
            d_opt.step()
            g_opt.zero_grad(set_to_none=True)
            g_loss = bce(D(fake).float(), ones)
            g_loss.backward()
            g_opt.step()
        return float(d_loss.detach()), float(g_loss.detach())

    return step
