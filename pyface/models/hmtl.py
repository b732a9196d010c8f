"""HMTL heads (Pourmirzaei et al., Sec. 3-4): a HopeNet head on the full trunk, a plain
pose-regression head, and the self-supervised branch that splits off the trunk at a
flag point 1-4 (after ResNet stage 1, 2, 3 or 4).

All heads take a trunk feature map [B, C, s, s] and global-average-pool it (as HopeNet
and the paper's Keras ResNet50 do), so they work at any input size.

Registered heads (``pyface.models.HEADS``; options are the builders' keywords):
``hopenet`` (after stage 4, output "pose_logits" [B, 3, num_bins]), ``pose_regression``
(after stage 4, "pose" [B, 3] degrees), ``ssl_puzzle`` / ``ssl_rotation`` /
``ssl_puzzle_rotation`` (at ``flag`` 1-4, options k, flag, dropout, block; output = the
head name, logits [B, k*k, classes]), ``ssl_image_rotation`` (after stage 4, [B, 1, 4])
and ``barlow_twins`` (the projector after stage 4, "bt_projection" [B, dim]).
"""
from __future__ import annotations

import torch
from torch import nn

from pyface.models.heads import register_head
from pyface.models.resnet import Bottleneck, init_weights

__all__ = ["FLAG_POINTS", "SSL_KINDS", "BarlowProjector", "HopeNetHead", "PoseRegressionHead", "SSLBranch",
           "stage_channels"]

FLAG_POINTS = (1, 2, 3, 4)
SSL_KINDS = {"puzzle": None, "rotation": 4}   # classes per region (None: k*k)
ANGLES = 3                                    # yaw, pitch, roll


def stage_channels(trunk: nn.Module, stage: int) -> int:
    """Channels of the output of ``trunk.layer{stage}`` (a pyface ResNet/IResNet)."""
    if stage not in FLAG_POINTS:
        raise ValueError(f"stage (flag point) must be one of {FLAG_POINTS}, got {stage!r}")
    bns = [m for m in getattr(trunk, f"layer{stage}")[-1].modules() if isinstance(m, nn.BatchNorm2d)]
    return bns[-1].num_features


class HopeNetHead(nn.Module):
    """HopeNet (Ruiz et al. 2018) head: global pool, dropout (0.5 in Sec. 4.2), and per
    angle (yaw, pitch, roll) a linear classifier over ``num_bins`` bins (66 of 3 degrees
    or 198 of 1 degree over [-99, 99]). forward -> logits [B, 3, num_bins]; the angles
    are :func:`pyface.nn.hopenet_angles` of them."""

    def __init__(self, channels: int, num_bins: int = 66, dropout: float = 0.5):
        super().__init__()
        if num_bins < 2:
            raise ValueError(f"num_bins must be >= 2, got {num_bins}")
        self.num_bins = int(num_bins)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        # one Linear per angle: fc_yaw, fc_pitch, fc_roll as in HopeNet
        self.fc_yaw, self.fc_pitch, self.fc_roll = (nn.Linear(channels, num_bins) for _ in range(ANGLES))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        x = self.dropout(torch.flatten(self.pool(f), 1))
        return torch.stack([self.fc_yaw(x), self.fc_pitch(x), self.fc_roll(x)], dim=1)


class PoseRegressionHead(nn.Module):
    """The ablations' plain regression head (Sec. 4.1 / 5.2, Formula 3): global pool,
    dropout, one linear layer -> (yaw, pitch, roll) degrees [B, 3]."""

    def __init__(self, channels: int, dropout: float = 0.4):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, ANGLES)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(torch.flatten(self.pool(f), 1))).float()


class _SSLPath(nn.Module):
    """One bottleneck block with its identity skip, global pool, dropout, and per region a
    linear head (the k*k per-region heads are one Linear with k*k*classes outputs: the
    same parameters and arithmetic as k*k separate layers)."""

    def __init__(self, channels: int, regions: int, classes: int, dropout: float, block: bool = True):
        super().__init__()
        self.block = nn.Identity()
        if block:
            if channels % Bottleneck.expansion:
                raise ValueError(f"the SSL bottleneck needs channels divisible by {Bottleneck.expansion}, "
                                 f"got {channels}")
            self.block = Bottleneck(channels, channels // Bottleneck.expansion)
            init_weights(self.block)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, regions * classes)
        self.regions, self.classes = regions, classes

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        x = self.dropout(torch.flatten(self.pool(self.block(f)), 1))
        return self.fc(x).view(-1, self.regions, self.classes)


class SSLBranch(nn.Module):
    """Self-supervised auxiliary branch at a flag point (Sec. 3.2, 4.1): for each of
    ``kinds`` ("puzzle": k*k classes per region; "rotation": 4 per region) its own
    bottleneck block (Sec. 4.1: puzzle and rotation "have separate branches but the
    branching points are the same"), global pool, dropout 0.2, a linear + softmax head
    per region. forward -> logits [B, k*k, sum of classes] (puzzle classes first).

    ``k = 1`` with ("rotation",) is whole-image 4-way rotation; ``block=False`` drops the
    bottleneck (a linear probe on the pooled features, e.g. for SSL pre-training heads
    on the full trunk)."""

    def __init__(self, channels: int, k: int, kinds=("puzzle",), dropout: float = 0.2, block: bool = True):
        super().__init__()
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"k must be an int >= 1, got {k!r}")
        kinds = tuple(kinds)
        if not kinds or any(t not in SSL_KINDS for t in kinds) or len(set(kinds)) != len(kinds):
            raise ValueError(f"kinds must be distinct values of {list(SSL_KINDS)}, got {kinds}")
        self.k, self.kinds = k, tuple(sorted(kinds, key=list(SSL_KINDS).index))
        if k == 1 and "puzzle" in self.kinds:
            raise ValueError("a 1x1 puzzle has nothing to solve: use k >= 2 for 'puzzle'")
        self.paths = nn.ModuleDict({t: _SSLPath(channels, k * k, SSL_KINDS[t] or k * k, dropout, block)
                                    for t in self.kinds})

    def classes(self, kind: str) -> slice:
        """Where ``kind``'s logits sit along the last output dim."""
        start = 0
        for t in self.kinds:
            n = self.paths[t].classes
            if t == kind:
                return slice(start, start + n)
            start += n
        raise KeyError(kind)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.paths[t](f) for t in self.kinds], dim=-1)


class BarlowProjector(nn.Module):
    """Barlow Twins projector (Sec. 4.3): global pool, then three linear layers of ``dim``
    units with BN + ReLU after the first two. forward -> [B, dim] projections."""

    def __init__(self, channels: int, dim: int = 2048):
        super().__init__()
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.mlp = nn.Sequential(
            nn.Linear(channels, dim, bias=False), nn.BatchNorm1d(dim), nn.ReLU(inplace=True),
            nn.Linear(dim, dim, bias=False), nn.BatchNorm1d(dim), nn.ReLU(inplace=True),
            nn.Linear(dim, dim, bias=False))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.flatten(self.pool(f), 1))


# ---------------------------------------------------------------------- registered heads
def _flag(flag: int = 3, **_) -> int:
    return flag


@register_head("hopenet", output="pose_logits", branch_point=4)
def hopenet_head(cfg, trunk, num_bins: int = 66, dropout: float = 0.5):
    return HopeNetHead(trunk.out_channels, num_bins, dropout)


@register_head("pose_regression", output="pose", branch_point=4)
def pose_regression_head(cfg, trunk, dropout: float = 0.4):
    return PoseRegressionHead(trunk.out_channels, dropout)


def _ssl_head(kinds):
    def build(cfg, trunk, k: int = 2, flag: int = 3, dropout: float = 0.2, block: bool = True):
        return SSLBranch(stage_channels(trunk, flag), k, kinds, dropout, block)

    return build


register_head("ssl_puzzle", output="ssl_puzzle", branch_point=_flag)(_ssl_head(("puzzle",)))
register_head("ssl_rotation", output="ssl_rotation", branch_point=_flag)(_ssl_head(("rotation",)))
register_head("ssl_puzzle_rotation", output="ssl_puzzle_rotation", branch_point=_flag)(
    _ssl_head(("puzzle", "rotation")))


@register_head("ssl_image_rotation", output="ssl_image_rotation", branch_point=4)
def ssl_image_rotation_head(cfg, trunk, dropout: float = 0.0):
    """Whole-image 4-way rotation pre-training: a linear probe on the pooled trunk output."""
    return SSLBranch(trunk.out_channels, 1, ("rotation",), dropout, block=False)


@register_head("barlow_twins", output="bt_projection", branch_point=4)
def barlow_twins_head(cfg, trunk, dim: int = 2048):
    return BarlowProjector(trunk.out_channels, dim)
