"""Compact 2D networks written here: U-Net (optionally with attention gates) and U-Net 3+.

smp provides the encoder-based families (ResNeXt U-Net, UNet++, FPN, Swin); these three are
small enough to read in one sitting and to train on a CPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_block(c_in: int, c_out: int) -> nn.Sequential:
    """Two 3x3 convolutions with batch norm and ReLU (same spatial size).

    Examples
    --------
    >>> conv_block(3, 8)(torch.rand(1, 3, 16, 16)).shape
    torch.Size([1, 8, 16, 16])
    """
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True))


class AttentionGate(nn.Module):
    """Additive attention (Oktay et al. 2018): weight a skip connection by the coarser signal.

    Examples
    --------
    >>> gate = AttentionGate(8, 8, 4)
    >>> gate(torch.rand(1, 8, 16, 16), torch.rand(1, 8, 16, 16)).shape
    torch.Size([1, 8, 16, 16])
    """

    def __init__(self, c_skip: int, c_gate: int, c_mid: int):
        super().__init__()
        self.skip = nn.Conv2d(c_skip, c_mid, 1, bias=False)
        self.gate = nn.Conv2d(c_gate, c_mid, 1)
        self.psi = nn.Sequential(nn.ReLU(inplace=True), nn.Conv2d(c_mid, 1, 1), nn.Sigmoid())

    def forward(self, skip: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        return skip * self.psi(self.skip(skip) + self.gate(gate))


class UNet(nn.Module):
    """U-Net with ``depth`` poolings and ``width * 2**level`` channels per level.

    ``attention=True`` gates every skip connection with the upsampled decoder signal
    (Attention U-Net). Inputs must be divisible by ``2**depth``.

    Examples
    --------
    >>> UNet(1, 4, width=4, depth=2)(torch.rand(2, 1, 32, 32)).shape
    torch.Size([2, 4, 32, 32])
    """

    def __init__(self, in_channels: int = 1, classes: int = 4, width: int = 16, depth: int = 4,
                 attention: bool = False):
        super().__init__()
        widths = [width * 2 ** i for i in range(depth + 1)]
        self.down = nn.ModuleList([conv_block(in_channels, widths[0])] + [
            conv_block(widths[i - 1], widths[i]) for i in range(1, depth + 1)])
        self.up = nn.ModuleList([nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2)
                                 for i in reversed(range(depth))])
        self.gates = nn.ModuleList([AttentionGate(widths[i], widths[i], max(widths[i] // 2, 1))
                                    for i in reversed(range(depth))]) if attention else None
        self.merge = nn.ModuleList([conv_block(2 * widths[i], widths[i])
                                    for i in reversed(range(depth))])
        self.head = nn.Conv2d(widths[0], classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        x = skips.pop()
        for k, (up, merge) in enumerate(zip(self.up, self.merge)):
            x = up(x)
            skip = skips.pop()
            if self.gates is not None:
                skip = self.gates[k](skip, x)
            x = merge(torch.cat([skip, x], 1))
        return self.head(x)


class UNet3Plus(nn.Module):
    """U-Net 3+ (Huang et al. 2020): every decoder node sees all encoder and deeper decoder
    scales; with ``deep_supervision`` the training forward pass also returns one upsampled
    prediction per decoder scale (inference returns the finest only).

    Examples
    --------
    >>> net = UNet3Plus(1, 3, width=4, depth=2)
    >>> [o.shape[1:] for o in net.train()(torch.rand(2, 1, 32, 32))]
    [torch.Size([3, 32, 32]), torch.Size([3, 32, 32]), torch.Size([3, 32, 32])]
    >>> net.eval()(torch.rand(1, 1, 32, 32)).shape
    torch.Size([1, 3, 32, 32])
    """

    def __init__(self, in_channels: int = 1, classes: int = 4, width: int = 16, depth: int = 4,
                 deep_supervision: bool = True):
        super().__init__()
        self.depth = depth
        widths = [width * 2 ** i for i in range(depth + 1)]
        cat = width  # channels each scale contributes to a decoder node
        self.down = nn.ModuleList([conv_block(in_channels, widths[0])] + [
            conv_block(widths[i - 1], widths[i]) for i in range(1, depth + 1)])
        n = depth + 1
        # link[i][j]: scale j -> decoder node i (encoder output for j <= i, decoder for j > i)
        self.link = nn.ModuleList([nn.ModuleList([
            nn.Sequential(nn.Conv2d(widths[j] if (j <= i or j == depth) else cat * n, cat, 3,
                                    padding=1, bias=False),
                          nn.BatchNorm2d(cat), nn.ReLU(inplace=True))
            for j in range(n)]) for i in range(depth)])
        self.fuse = nn.ModuleList([nn.Sequential(
            nn.Conv2d(cat * n, cat * n, 3, padding=1, bias=False), nn.BatchNorm2d(cat * n),
            nn.ReLU(inplace=True)) for _ in range(depth)])
        self.head = nn.Conv2d(cat * n, classes, 1)
        self.aux = nn.ModuleList([nn.Conv2d(cat * n, classes, 1) for _ in range(depth - 1)]
                                 + [nn.Conv2d(widths[depth], classes, 1)]) \
            if deep_supervision else None

    def forward(self, x: torch.Tensor):
        size = x.shape[-2:]
        enc = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            enc.append(x)
        dec: dict[int, torch.Tensor] = {self.depth: enc[self.depth]}
        for i in reversed(range(self.depth)):
            target = enc[i].shape[-2:]
            parts = []
            for j in range(self.depth + 1):
                src = enc[j] if j <= i else dec[j]
                if j < i:
                    src = F.max_pool2d(src, 2 ** (i - j))
                elif j > i:
                    src = F.interpolate(src, size=target, mode="bilinear", align_corners=False)
                parts.append(self.link[i][j](src))
            dec[i] = self.fuse[i](torch.cat(parts, 1))
        out = self.head(dec[0])
        if not (self.training and self.aux is not None):
            return out
        aux = [F.interpolate(head(dec[i + 1]), size=size, mode="bilinear", align_corners=False)
               for i, head in enumerate(self.aux)]
        return [out, *aux]
