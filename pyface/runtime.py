"""Running a pyface model: the one place that loads checkpoints, picks devices, sets the
mixed precision, prepares the input and computes flip-sum embeddings -- for the trainer,
``pyface eval``, the labeler, ``pyface label identities`` and the photo analyzer alike.

- **Checkpoints** (:func:`load_model`, :func:`read_checkpoint`, :func:`save_model`):
  ``model.pt`` (``{"model", "model_config"}``), a training checkpoint
  ``checkpoints/last.pt`` (the same two keys among others) or a run folder holding
  either. Files are read with ``torch.load(weights_only=True)`` and an allow-list of the
  only non-tensor globals pyface's checkpoints ever held (numpy's array reconstruction,
  for the numpy RNG state of training checkpoints written before it was stored as a
  tensor), so a crafted file cannot run code while loading. Weights written before the
  head registry (``stage4.<head>.*`` beside ``heads.<head>.*``) are upgraded here, once,
  for every loader. Every failure is a :class:`~pyface.errors.CheckpointError` naming
  the file (a missing one also a ``FileNotFoundError``).
- **Devices** (:func:`resolve_device`): ``None``/"auto" (CUDA when available), "cpu",
  "cuda", "cuda:N" or a ``torch.device``; anything else is an error naming the argument.
- **Mixed precision** (:func:`autocast`): inference runs under fp16 autocast on CUDA by
  default (:data:`INFERENCE_AMP`) and in fp32 on the CPU (autocast off: CPU numbers do
  not depend on this policy). fp16 rather than bf16 because its 10-bit mantissa (bf16:
  7) rounds the landmark head's output to ~0.05 % of the input side (bf16: ~0.4 %, over
  a tenth of a 3 % NME), while the nets' activations (batch-normalised; the heads cast
  their outputs to float32) stay far below fp16's 65504 limit; and every CUDA GPU has
  fp16 tensor cores (bf16 ones need Ampere or later). "bf16" and fp32 (``amp=False``)
  are options wherever ``amp`` is taken (``pyface eval``, the labeler, identities).
- **Input** (:func:`prepare_input`): uint8 RGB [B, 3, H, W] -> the nets' normalised
  float input ``(x - 127.5) / 128`` (:meth:`MultiTaskNet.normalize`), resized
  (bilinear, antialiased) to the net's input side when it differs.
- **Outputs** (:func:`forward`, :func:`embed`): the model's outputs under the AMP
  policy; the face embedding optionally the flip-sum (the image's plus its mirror's,
  insightface's test-time augmentation), optionally L2-normalised.
- **Sub-networks**: ``load_model(..., heads=["fr"], export=True)`` or
  :meth:`MultiTaskNet.export` -- the net with only those heads, at their cost.
"""
from __future__ import annotations

import contextlib
import os
import platform
import re
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from pyface.errors import CheckpointError, ConfigError, UsageError
from pyface.io import atomic_write

__all__ = ["AMP_DTYPES", "CHECKPOINT_FILES", "INFERENCE_AMP", "CheckpointNotFoundError", "amp_dtype", "autocast",
           "device_name", "embed", "find_checkpoint", "forward", "is_legacy_state_dict", "load_model",
           "model_from_checkpoint", "prepare_input", "read_checkpoint", "require_heads", "resolve_device",
           "save_model", "upgrade_state_dict", "weights_digest"]

#: Where a run folder keeps its weights, in the order they are looked for.
CHECKPOINT_FILES = ("model.pt", "checkpoints/last.pt")
#: Autocast dtypes by name.
AMP_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
#: The inference default on CUDA (see the module docstring for why fp16).
INFERENCE_AMP = "fp16"


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """A checkpoint path that does not exist (or a run folder without weights)."""


def _prefix(what: str | None) -> str:
    return f"{what}: " if what else ""


def _arg_error(what: str, msg: str) -> Exception:
    """A command-line flag (``--device``) is a usage error, anything else a config key."""
    return (UsageError if what.startswith("-") else ConfigError)(f"{what}: {msg}")


# ---------------------------------------------------------------------------- devices
def resolve_device(name: str | torch.device | None = None, *, what: str = "device") -> torch.device:
    """``None``, "" or "auto": CUDA when available, else the CPU; "cpu", "cuda", "cuda:N"
    or a ``torch.device``. A malformed name, an unsupported device type, CUDA without a
    GPU or a GPU index past the last one raise an error naming ``what`` (a
    :class:`UsageError` for a flag such as "--device", else a :class:`ConfigError`)."""
    if name is None or (isinstance(name, str) and name.strip().lower() in ("", "auto")):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(name, torch.device):
        dev = name
    elif isinstance(name, str):
        try:
            dev = torch.device(name.strip())
        except (RuntimeError, ValueError):
            raise _arg_error(what, f"{name!r} is not a device (use auto, cpu, cuda or cuda:N)") from None
    else:
        raise _arg_error(what, f"expected a device name (auto, cpu, cuda, cuda:N), got {type(name).__name__}")
    if dev.type not in ("cpu", "cuda"):
        raise _arg_error(what, f"{str(dev)!r} is not supported (use auto, cpu, cuda or cuda:N)")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise _arg_error(what, f"{str(dev)!r} requested but CUDA is not available")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise _arg_error(what, f"{str(dev)!r} requested but there are {torch.cuda.device_count()} CUDA "
                                   "device(s)")
    return dev


def device_name(device: torch.device | str) -> str:
    """GPU name, or the CPU model with the torch thread count (reports and benchmarks)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{name} ({torch.get_num_threads()} threads)"


# ---------------------------------------------------------------------------- mixed precision
def amp_dtype(amp, device: torch.device | str) -> torch.dtype | None:
    """The autocast dtype for ``amp`` on ``device`` (None: fp32). ``amp``: True -> the
    inference policy (:data:`INFERENCE_AMP` on CUDA, fp32 on the CPU); False, None or
    "none" -> fp32; "fp16" / "bf16" (or a torch dtype) -> that dtype on any device (the
    trainer's ``amp`` setting)."""
    device = torch.device(device)
    if amp is True:
        return AMP_DTYPES[INFERENCE_AMP] if device.type == "cuda" else None
    if amp is None or amp is False or amp == "none":
        return None
    if isinstance(amp, torch.dtype) and amp in AMP_DTYPES.values():
        return amp
    if isinstance(amp, str) and amp in AMP_DTYPES:
        return AMP_DTYPES[amp]
    raise ConfigError(f"amp: expected true, false, 'none', 'fp16' or 'bf16', got {amp!r}")


def autocast(device: torch.device | str, amp=True):
    """The autocast context for ``amp`` (see :func:`amp_dtype`) on ``device``; fp32 is an
    explicitly disabled autocast, so an enclosing autocast region does not leak in."""
    device = torch.device(device)
    dtype = amp_dtype(amp, device)
    if dtype is None:
        return torch.autocast(device.type, enabled=False)
    return torch.autocast(device.type, dtype=dtype)


# ---------------------------------------------------------------------------- input and outputs
def prepare_input(images: torch.Tensor, size: int | None = None) -> torch.Tensor:
    """uint8 RGB [B, 3, H, W] -> the nets' normalised float input (a float tensor is taken
    as already normalised), resized to ``size`` x ``size`` (bilinear, antialiased) when
    given and different."""
    from pyface.models import MultiTaskNet

    x = MultiTaskNet.normalize(images)
    if size is not None and (x.shape[-1] != size or x.shape[-2] != size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x


def _device_of(model, default: torch.device) -> torch.device:
    """A module's device (its first parameter's); ``default`` for a plain callable."""
    p = next(iter(model.parameters()), None) if isinstance(model, torch.nn.Module) else None
    return p.device if p is not None else default


@torch.no_grad()
def forward(model: torch.nn.Module, images: torch.Tensor, *, flip: bool = False, amp=True,
            size: int | None = None) -> dict[str, torch.Tensor]:
    """``model``'s outputs for ``images`` (uint8 or normalised, moved to the model's
    device; resized to ``size`` when given) under :func:`autocast` ``amp``. With
    ``flip``, "embedding" is the flip-sum: the float32 sum of the image's and its
    mirror's embeddings (unnormalised, as insightface; the mirror pass runs only when
    the model has an embedding)."""
    dev = _device_of(model, images.device)
    x = images.to(dev, non_blocking=True)
    if size is not None:
        x = prepare_input(x, size)
    with autocast(dev, amp):
        out = model(x)
        if flip and isinstance(out, dict) and "embedding" in out:
            out["embedding"] = out["embedding"].float() + model(x.flip(3))["embedding"].float()
    return out


def embed(model: torch.nn.Module, images: torch.Tensor, *, flip: bool = True, normalize: bool = False, amp=True,
          size: int | None = None) -> torch.Tensor:
    """Face embeddings [B, D] float32 of ``images`` (see :func:`forward`): the flip-sum
    by default, L2-normalised with ``normalize``. ``model`` returns a dict with
    "embedding" or the embedding tensor itself."""
    dev = _device_of(model, images.device)
    x = images.to(dev, non_blocking=True)
    if size is not None:
        x = prepare_input(x, size)

    def one(t):
        out = model(t)
        return (out["embedding"] if isinstance(out, dict) else out).float()

    with torch.no_grad(), autocast(dev, amp):
        e = one(x)
        if flip:
            e = e + one(x.flip(3))
    return F.normalize(e, dim=1) if normalize else e


# ---------------------------------------------------------------------------- checkpoints
def find_checkpoint(path: str | os.PathLike, *, what: str | None = None) -> Path:
    """A checkpoint file, or the run folder of ``pyface train`` (``model.pt``, else
    ``checkpoints/last.pt``). :class:`CheckpointNotFoundError` naming the path."""
    p = Path(path)
    if p.is_dir():
        for name in CHECKPOINT_FILES:
            if (p / name).is_file():
                return p / name
        raise CheckpointNotFoundError(f"{_prefix(what)}{p}: no {' or '.join(CHECKPOINT_FILES)} in this run folder")
    if not p.is_file():
        raise CheckpointNotFoundError(f"{_prefix(what)}checkpoint not found: {p}")
    return p


def _safe_globals() -> list:
    """The non-tensor globals pyface's checkpoints hold: numpy arrays and scalars, only
    in training checkpoints written before the numpy RNG state was stored as a tensor
    (under numpy 1's and numpy 2's module names)."""
    import numpy as np

    try:
        from numpy._core import multiarray as ma
    except ImportError:  # numpy < 2
        from numpy.core import multiarray as ma
    out = [np.ndarray, np.dtype, ma._reconstruct, ma.scalar]
    if torch.torch_version.TorchVersion(torch.__version__) >= "2.6":  # (object, pickled name) entries
        # a pickle written under the other numpy major names the functions by its module
        other = "numpy.core.multiarray" if ma.__name__ == "numpy._core.multiarray" else "numpy._core.multiarray"
        out += [(ma._reconstruct, f"{other}._reconstruct"), (ma.scalar, f"{other}.scalar")]
    # the dtypes they were: the MT19937 key (uint32) and metric values in the logs
    out += [type(np.dtype(t)) for t in ("uint32", "float64", "float32", "int64")]
    return out


@contextlib.contextmanager
def _allow(globs):
    """``torch.serialization.safe_globals`` (torch >= 2.5); on torch 2.4 the same entries
    added process-wide, which is all that version offers."""
    ctx = getattr(torch.serialization, "safe_globals", None)
    if ctx is not None:
        with ctx(globs):
            yield
    else:
        torch.serialization.add_safe_globals(globs)
        yield


def read_checkpoint(path: str | os.PathLike, *, map_location="cpu", what: str | None = None) -> dict:
    """The dict in a pyface checkpoint file, loaded without running code (see the module
    docstring). :class:`CheckpointError` naming the file when it is missing, unreadable
    (truncated, not a torch file, or holding anything but tensors and plain data) or
    not a dict."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointNotFoundError(f"{_prefix(what)}checkpoint not found: {p}")
    try:
        with _allow(_safe_globals()), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            st = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - whatever a foreign or torn file raises, it is a bad file
        code = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if code:  # weights_only refused to import something: a crafted or foreign pickle
            raise CheckpointError(f"{_prefix(what)}cannot read checkpoint {p}: not a readable pyface checkpoint: it "
                                  f"refers to {code.group(1)} (pyface's hold only tensors and plain data); "
                                  "nothing in it was run") from None
        raise CheckpointError(f"{_prefix(what)}cannot read checkpoint {p}: not a readable torch checkpoint "
                              f"(truncated or another format: {type(exc).__name__}: {_short(exc, 200)})") from exc
    if not isinstance(st, dict):
        raise CheckpointError(f"{_prefix(what)}{p}: not a pyface checkpoint (a {type(st).__name__}, not a dict)")
    return st


def is_legacy_state_dict(sd) -> bool:
    """Weights of a MultiTaskNet written before the head registry (``stage4.<head>.*``)."""
    return any(isinstance(k, str) and k.startswith("stage4.") for k in sd)


def upgrade_state_dict(sd: dict, tasks=None) -> dict:
    """Weights written before the head registry (``stage4.<head>.*`` beside
    ``heads.<head>.*``) in today's layout (``heads.<head>.stage4.*``,
    ``heads.<head>.head.*``); newer ones are returned unchanged. ``tasks``: the heads
    (default: those with a ``stage4.<head>`` copy, which every head had then)."""
    if not is_legacy_state_dict(sd):
        return sd
    if tasks is None:
        tasks = {k.split(".")[1] for k in sd if k.startswith("stage4.") and k.count(".") >= 2}
    out = {}
    for k, v in sd.items():
        parts = k.split(".", 2)
        if len(parts) == 3 and parts[0] == "stage4" and parts[1] in tasks:
            out[f"heads.{parts[1]}.stage4.{parts[2]}"] = v
        elif len(parts) == 3 and parts[0] == "heads" and parts[1] in tasks:
            out[f"heads.{parts[1]}.head.{parts[2]}"] = v
        else:
            out[k] = v
    return out


def model_from_checkpoint(st: dict, source: str | os.PathLike = "checkpoint", *, what: str | None = None):
    """A MultiTaskNet (train mode, CPU) from a checkpoint dict's "model" and
    "model_config" (legacy weights upgraded); :class:`CheckpointError` naming ``source``."""
    from pyface.models import MultiTaskNet, model_config

    if not isinstance(st, dict) or "model" not in st or "model_config" not in st:
        keys = sorted(map(str, st)) if isinstance(st, dict) else type(st).__name__
        raise CheckpointError(f"{_prefix(what)}{source}: not a pyface checkpoint (needs 'model' and 'model_config', "
                              f"has {keys})")
    try:
        model = MultiTaskNet(model_config(None, **dict(st["model_config"])))
    except (TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{_prefix(what)}{source}: its model_config cannot be built ({_short(exc)})") from exc
    try:
        model.load_state_dict(upgrade_state_dict(st["model"], model.tasks))
    except (TypeError, ValueError, RuntimeError, AttributeError) as exc:
        raise CheckpointError(f"{_prefix(what)}{source}: weights do not match its model_config "
                              f"({_short(exc)})") from exc
    return model


def _short(exc: Exception, n: int = 400) -> str:
    msg = " ".join(str(exc).split())
    return msg[:n] + " ..." if len(msg) > n else msg


def require_heads(model: torch.nn.Module, heads, *, what: str | None = None, purpose: str | None = None) -> None:
    """:class:`CheckpointError` naming the model's file (or "the given model") when it
    lacks one of ``heads``; ``purpose`` says who needs them."""
    have = tuple(getattr(getattr(model, "config", None), "tasks", ()) or ())
    missing = [h for h in heads if h not in have]
    if missing:
        src = getattr(model, "checkpoint_path", None) or "the given model"
        why = f"; {purpose}" if purpose else ""
        raise CheckpointError(f"{_prefix(what)}{src} has heads {list(have)}, not {missing}{why}")


def load_model(source, device=None, *, heads=None, export: bool = False, what: str | None = None,
               purpose: str | None = None):
    """A MultiTaskNet from ``source`` -- a checkpoint file, a run folder (see
    :func:`find_checkpoint`) or an already built module (used as is) -- on ``device``
    (:func:`resolve_device`; default: CPU for a file, a module's own device), in eval
    mode. ``heads``: heads it must have (:func:`require_heads`); with ``export``, only
    those heads are kept (:meth:`MultiTaskNet.export`). The file is kept in
    ``model.checkpoint_path``. ``what`` names the argument in errors."""
    if isinstance(source, torch.nn.Module):
        model = source
    else:
        p = find_checkpoint(source, what=what)
        model = model_from_checkpoint(read_checkpoint(p, what=what), p, what=what)
        model.checkpoint_path = str(p)
    if heads:
        require_heads(model, heads, what=what, purpose=purpose)
        if export and hasattr(model, "export"):
            model = model.export(heads)
    if device is not None or not isinstance(source, torch.nn.Module):
        model = model.to(resolve_device(device, what=what or "device") if device is not None else "cpu")
    return model.eval()


def weights_digest(module: torch.nn.Module | None) -> str | None:
    """SHA-256 over a module's state dict (names, shapes and bytes): identifies the
    weights themselves, whatever file they came from (the labeler's resume check, the
    evaluation cache's key). Kept byte-for-byte as the labeler first wrote it, so the
    configuration hashes of existing labeling runs still match."""
    if module is None:
        return None
    import hashlib

    h = hashlib.sha256()
    for k, v in module.state_dict().items():
        h.update(k.encode())
        h.update(str(tuple(v.shape)).encode())
        h.update(v.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes() if v.numel() else b"")
    return h.hexdigest()


def save_model(model: torch.nn.Module, path: str | os.PathLike) -> Path:
    """Commit ``model.pt`` (``{"model": state_dict, "model_config": dict}``) atomically:
    a reader sees the previous file or the new one, never a torn one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    st = {"model": model.state_dict(), "model_config": model.config.to_dict()}
    with atomic_write(path, "wb") as f:
        torch.save(st, f)
    return path
