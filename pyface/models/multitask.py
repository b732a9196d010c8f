"""MultiTaskNet (Lee et al. 2024, Sec. 3.2.1, Fig. 7): a shared trunk and one branch per
enabled head, each head taking the trunk features after its branch point.

Heads come from the registry in :mod:`pyface.models.heads` (``register_head``): the
paper's "fr" (512-d embedding), "fld" (68 x 2 landmarks, input pixels) and "hpe"
(yaw, pitch, roll degrees) branch after stage 3 and own a copy of stage 4 (the 3:1
split); any non-empty subset gives the STL/MTL variants of Table 8. Other heads (e.g.
HopeNet after stage 4, self-supervised branches at flag points 1-4) plug in the same
way. Input: uint8 [B, 3, H, W] RGB (normalised inside as (x - 127.5) / 128) or an
already normalised float tensor.
"""
from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass, field, replace

import torch
from torch import nn

from pyface.errors import ConfigError
from pyface.models import resnet as R
from pyface.models.heads import HEADS
from pyface.registry import did_you_mean

TASKS = ("fr", "fld", "hpe")   # the first paper's heads (more in pyface.models.heads.HEADS)
ARCHS = {
    "resnet18": (R.ResNet, R.BasicBlock, (2, 2, 2, 2)),
    "resnet50": (R.ResNet, R.Bottleneck, (3, 4, 6, 3)),
    "iresnet18": (R.IResNet, None, (2, 2, 2, 2)),
    "iresnet50": (R.IResNet, None, (3, 4, 14, 3)),
    "iresnet100": (R.IResNet, None, (3, 13, 30, 3)),
}


@dataclass(frozen=True)
class ModelConfig:
    arch: str = "iresnet50"
    input_size: int = 112
    tasks: tuple[str, ...] = TASKS
    width: int = 64                  # stage-1 channels (64 = the standard nets)
    embedding_dim: int = 512
    dropout: float = 0.0
    layers: tuple[int, ...] | None = None   # override the block counts of ``arch``
    pose_scale: float = 3.0          # PoseHead out_scale (degrees)
    landmark_scale: float = 1.0      # LandmarkHead out_scale (half image sides)
    head_options: dict = field(default_factory=dict)  # head name -> keyword options of its builder
    frozen: tuple[str, ...] = ()     # submodules kept fixed (no grad, BN statistics frozen), e.g. ("shared",)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["tasks"] = list(self.tasks)
        d["head_options"] = {k: dict(v) for k, v in self.head_options.items()}
        d["layers"] = None if self.layers is None else list(self.layers)
        d["frozen"] = list(self.frozen)
        return d


# name -> config. The first two are the paper's; the rest are small enough for a CPU.
PRESETS: dict[str, ModelConfig] = {
    "iresnet50-multi": ModelConfig("iresnet50", 112),
    "resnet50-fld-hpe": ModelConfig("resnet50", 128, tasks=("fld", "hpe")),
    "iresnet18-multi": ModelConfig("iresnet18", 112),
    "iresnet18-multi-small": ModelConfig("iresnet18", 64, width=16, embedding_dim=128),
    "iresnet10-multi-64": ModelConfig("iresnet18", 64, width=8, embedding_dim=128, layers=(1, 1, 1, 1)),
    # the demo's net: the same layout at 48 x 48, 1.8x less compute per image
    "iresnet10-multi-48": ModelConfig("iresnet18", 48, width=8, embedding_dim=128, layers=(1, 1, 1, 1)),
    "iresnet-tiny-multi": ModelConfig("iresnet18", 64, width=8, embedding_dim=32, layers=(1, 1, 1, 1)),
    "resnet18-fld-hpe": ModelConfig("resnet18", 64, tasks=("fld", "hpe"), width=16),
    # Pourmirzaei et al.: ResNet50 at 224 x 224 with a HopeNet head (+ SSL heads by the recipe)
    "resnet50-hopenet": ModelConfig("resnet50", 224, tasks=("hopenet",)),
    "resnet50-tiny-hopenet-64": ModelConfig("resnet50", 64, tasks=("hopenet",), width=8, layers=(1, 1, 1, 1)),
    # the eye-blink classifier of the labeler (pyface.models.eyeblink): ResNet18 on 32 x 32 eye crops
    "resnet18-eyeblink": ModelConfig("resnet18", 32, tasks=("eyeblink",)),
}


def model_config(preset: str | None = None, **overrides) -> ModelConfig:
    """Preset (or the defaults) with ``overrides`` applied; validates the result."""
    if preset is not None and preset not in PRESETS:
        raise ConfigError(f"unknown model preset {preset!r}{did_you_mean(preset, PRESETS)}; choose from "
                          f"{sorted(PRESETS)}")
    cfg = PRESETS[preset] if preset else ModelConfig()
    overrides = {k: v for k, v in overrides.items() if v is not None}
    for k in ("tasks", "layers", "frozen"):
        if k in overrides:
            overrides[k] = tuple(overrides[k])
    cfg = replace(cfg, **overrides)
    if cfg.arch not in ARCHS:
        raise ConfigError(f"unknown arch {cfg.arch!r}{did_you_mean(cfg.arch, ARCHS)}; choose from {sorted(ARCHS)}")
    for t in cfg.tasks:
        HEADS.get(t, what="model.tasks")  # an unknown head: ConfigError suggesting the close names
    if not cfg.tasks or len(set(cfg.tasks)) != len(cfg.tasks):
        raise ValueError(f"tasks must be distinct registered heads ({HEADS.names()}), got {cfg.tasks}")
    if not isinstance(cfg.head_options, dict) or set(cfg.head_options) - set(cfg.tasks):
        raise ValueError(f"head_options must map enabled heads {cfg.tasks} to options, got {cfg.head_options!r}")
    if not 32 <= cfg.input_size <= 448:
        raise ValueError(f"input_size must be in [32, 448], got {cfg.input_size}")
    return cfg


class MultiTaskNet(nn.Module):
    """forward(images) -> dict with one entry per enabled head, under the head's output
    name ("embedding" [B, D], "landmarks" [B, 68, 2], "pose" [B, 3], ...).

    ``shared`` holds the stem and the trunk stages up to the deepest branch point;
    ``heads[name]`` the branch of each head (for the paper's heads: stage-4 copy + head)."""

    def __init__(self, config: ModelConfig | None = None, **overrides):
        super().__init__()
        cfg = model_config(None, **overrides) if config is None else replace(config, **overrides)
        self.config = cfg
        cls, block, layers = ARCHS[cfg.arch]
        layers = cfg.layers or layers
        if cls is R.ResNet:
            trunk = R.ResNet(block, layers, width=cfg.width)
        else:
            trunk = R.IResNet(layers, width=cfg.width)
        specs = [HEADS.get(t) for t in cfg.tasks]
        opts = [cfg.head_options.get(t, {}) for t in cfg.tasks]
        self.branch_points = {t: sp.branch_point(**o) for t, sp, o in zip(cfg.tasks, specs, opts)}
        self.outputs = {t: sp.output for t, sp in zip(cfg.tasks, specs)}
        if len(set(self.outputs.values())) != len(self.outputs):
            raise ValueError(f"heads {cfg.tasks} write the same output name: {self.outputs}")
        depth = max(self.branch_points.values())
        stages = [trunk.stem, trunk.layer1, trunk.layer2, trunk.layer3, trunk.layer4]
        self.shared = nn.ModuleList(stages[:depth + 1])
        # Each head is built from a generator of its own, seeded by one draw of the global
        # RNG and the head's name: a head's initial weights (and the global RNG afterwards)
        # do not depend on which other heads exist or on their order -- "identical initial
        # weights" for SL vs HMTL (Pourmirzaei et al. Sec. 5.2) and for the STL/MTL rows.
        base = int(torch.randint(0, 2**62, (), dtype=torch.int64, device="cpu"))
        heads = {}
        for t, sp, o in zip(cfg.tasks, specs, opts):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed((base + zlib.crc32(t.encode())) % (2**63 - 1))
                heads[t] = sp.build(cfg, trunk, **o)
        self.heads = nn.ModuleDict(heads)
        for name in cfg.frozen:
            try:
                self.get_submodule(name).requires_grad_(False)
            except AttributeError as exc:
                raise ValueError(f"frozen: no submodule {name!r} (e.g. 'shared', 'heads.<head>')") from exc

    def train(self, mode: bool = True):
        super().train(mode)
        for name in self.config.frozen:  # a frozen encoder keeps its BatchNorm statistics
            self.get_submodule(name).eval()
        return self

    def export(self, heads) -> "MultiTaskNet":
        """The inference net with only ``heads`` (e.g. dropping self-supervised branches):
        a new MultiTaskNet whose shared stages stop at the deepest remaining branch point,
        with this net's weights. Its cost is that of a net built with only those heads."""
        heads = tuple(heads)
        missing = [h for h in heads if h not in self.config.tasks]
        if missing:
            raise ValueError(f"export: heads {missing} are not in this model ({self.config.tasks})")
        cfg = replace(self.config, tasks=heads, frozen=(),
                      head_options={h: o for h, o in self.config.head_options.items() if h in heads})
        net = MultiTaskNet(cfg)
        own = self.state_dict()
        state = net.state_dict()
        for k in state:
            state[k] = own[k]
        net.load_state_dict(state)
        if hasattr(self, "checkpoint_path"):  # errors keep naming the file it came from
            net.checkpoint_path = self.checkpoint_path
        return net.to(next(self.parameters()).device).train(self.training)

    @property
    def tasks(self) -> tuple[str, ...]:
        return self.config.tasks

    @staticmethod
    def normalize(images: torch.Tensor) -> torch.Tensor:
        if images.dtype == torch.uint8:
            return (images.float() - 127.5) / 128.0
        return images

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must have shape [B, 3, H, W], got {list(images.shape)}")
        n = self.config.input_size
        if images.shape[2] != n or images.shape[3] != n:
            raise ValueError(f"images must be {n}x{n} (model input_size), got {images.shape[2]}x{images.shape[3]}")
        x = self.normalize(images)
        feats = []
        for stage in self.shared:  # feats[k] = output of stage k (0 = stem)
            x = stage(x)
            feats.append(x)
        return {self.outputs[t]: self.heads[t](feats[self.branch_points[t]]) for t in self.config.tasks}

    def parameter_counts(self) -> dict[str, int]:
        """Parameters (trainable or not) of the shared trunk, each head's branch, and the total."""
        n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
        counts = {"shared": n(self.shared)}
        for t in self.config.tasks:
            counts[t] = n(self.heads[t])
        counts["total"] = n(self)
        return counts


def build_model(preset: str | None = None, **overrides) -> MultiTaskNet:
    return MultiTaskNet(model_config(preset, **overrides))
