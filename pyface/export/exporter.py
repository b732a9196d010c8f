"""``pyface export``: a checkpoint's inference net as one self-describing file.

The exported graph is :class:`InferenceNet`: uint8 RGB images [B, 3, S, S] in (the
normalisation ``(x - 127.5) / 128`` is inside the graph), a tuple of float32 outputs out
in :data:`pyface.export.metadata.OUTPUT_MEANINGS` order -- "embedding" (one pass, as
insightface's exports; ``pyface eval``'s and the analyzer's flip-sum adds the mirror's,
:func:`pyface.analyze.backend.flip_sum`), "landmarks" (pixels of the S x S input), "pose"
(degrees; a HopeNet head's bin logits are turned into angles in the graph by the softmax
expectation over the bin centres, :func:`pyface.nn.hopenet_angles`).
Self-supervised training branches are never exported. The preprocessing, the outputs
and the source checkpoint are written into the file (:mod:`pyface.export.metadata`).

Formats (:data:`EXPORT_FORMATS`): "onnx" (the TorchScript-based ``torch.onnx`` exporter,
``dynamo=False``: seconds, no onnxscript), "onnx-dynamo" (the same graph through torch's
torch.export-based ONNX exporter, its default since 2.9, which needs onnxscript: the path
that remains when torch drops the other one) -- ONNX Runtime runs either, see
:class:`pyface.analyze.onnx_backend.OnnxBackend` -- and "torch-export" (a ``torch.export``
ExportedProgram, ``.pt2``: ``torch.export.load(path).module()(images)``). TorchScript
files are not offered: ``torch.jit`` is deprecated in the torch versions pyface supports.

Every file is written atomically (:mod:`pyface.io`) and, by default, checked after
writing: the file is loaded back and run on random batches beside the PyTorch model
(:func:`parity`); the maximum absolute differences per output are returned and printed.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

import pyface
from pyface import runtime
from pyface.analyze.backend import OUTPUTS
from pyface.errors import UsageError
from pyface.export import metadata as M
from pyface.io import atomic_path
from pyface.registry import Registry

__all__ = ["EXPORT_FORMATS", "ExportFormat", "ExportResult", "InferenceNet", "exportable_heads", "export_model",
           "onnx_fps_runtimes", "parity", "reference_outputs"]

#: model outputs an export may carry: the analyzer's (pyface.analyze.backend.OUTPUTS;
#: "pose_logits" leaves the graph as "pose"). Other heads -- SSL branches, Barlow Twins
#: projections, the labeler's eye-blink net -- are not exported.
_EXPORTABLE = OUTPUTS | {"pose_logits"}


def exportable_heads(model) -> tuple[str, ...]:
    """The heads of ``model`` (a MultiTaskNet) that an export keeps by default: those whose
    output is an inference output, in the model's order."""
    return tuple(t for t in model.tasks if model.outputs[t] in _EXPORTABLE)


def _hopenet_pose(logits: torch.Tensor, num_bins: int) -> torch.Tensor:
    """Angles (degrees) from HopeNet bin logits over [-99, 99] as ``pyface eval`` takes
    them (``num_bins`` a Python int: a traced ``shape[-1]`` is a tensor)."""
    from pyface.nn import hopenet_angles
    from pyface.nn.hopenet import ANGLE_RANGE

    return hopenet_angles(logits.float(), 2 * ANGLE_RANGE / int(num_bins))


class InferenceNet(nn.Module):
    """What is exported: ``net`` (a MultiTaskNet with only the exported heads, eval mode)
    -> tuple of float32 outputs named :attr:`output_names` (HopeNet logits as angles)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        outs = {net.outputs[t] for t in net.tasks}
        if "pose_logits" in outs:
            outs = (outs - {"pose_logits"}) | {"pose"}
        self.output_names = tuple(n for n in M.OUTPUT_MEANINGS if n in outs)
        logits = [t for t in net.tasks if net.outputs[t] == "pose_logits"]
        self._bins = net.heads[logits[0]].num_bins if logits else None

    def forward(self, images: torch.Tensor):
        out = self.net(images)
        if "pose_logits" in out:
            out["pose"] = _hopenet_pose(out.pop("pose_logits"), self._bins)
        return tuple(out[n].float() for n in self.output_names)


# ---------------------------------------------------------------------------- formats
@dataclass
class ExportFormat:
    """A registered export format: ``write(net, example, path, props, dynamic_batch,
    opset)`` writes the file at ``path`` (a temporary name the caller commits);
    ``load(path) -> fn(uint8 numpy [B, 3, S, S]) -> dict[name, numpy]`` runs a written
    file (for :func:`parity`); ``suffix`` is the usual file suffix."""

    name: str
    suffix: str
    write: object
    load: object
    needs: tuple[str, ...] = field(default_factory=tuple)


#: name -> :class:`ExportFormat`.
EXPORT_FORMATS: Registry[ExportFormat] = Registry("export format")


@contextlib.contextmanager
def _quiet_tracing():
    """The trace turns MultiTaskNet's input-shape checks into constants (the input size
    is fixed by design) and the exporters announce deprecations: neither is news."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        yield


def _write_onnx(net: InferenceNet, example: torch.Tensor, path: Path, props: dict, dynamic_batch: bool,
                opset: int) -> None:
    """The TorchScript-based exporter (``dynamo=False``): seconds, needs no onnxscript."""
    props["opset"] = str(opset)
    names = list(net.output_names)
    axes = {n: {0: "batch"} for n in [M.INPUT_NAME, *names]} if dynamic_batch else None
    with _quiet_tracing():
        torch.onnx.export(net, (example,), str(path), dynamo=False, input_names=[M.INPUT_NAME], output_names=names,
                          dynamic_axes=axes, opset_version=opset, do_constant_folding=True)
    _finish_onnx(path, props)


def _write_onnx_dynamo(net: InferenceNet, example: torch.Tensor, path: Path, props: dict, dynamic_batch: bool,
                       opset: int) -> None:
    """The torch.export-based exporter (torch's default since 2.9; needs onnxscript, opset >= 18):
    the path that stays when the TorchScript-based one is removed from torch."""
    import logging

    opset = max(opset, 18)
    props["opset"] = str(opset)
    shapes = ({0: torch.export.Dim("batch", min=1, max=1 << 16)},) if dynamic_batch else None
    log = logging.getLogger("torch.onnx._internal.exporter._registration")  # "torchvision is not installed"
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with _quiet_tracing():
            torch.onnx.export(net, (example,), str(path), dynamo=True, input_names=[M.INPUT_NAME],
                              output_names=list(net.output_names), dynamic_shapes=shapes, opset_version=opset,
                              external_data=False, verbose=False)
    finally:
        log.setLevel(level)
    _finish_onnx(path, props)


def _finish_onnx(path: Path, props: dict) -> None:
    """Write the metadata into the file and check it (onnx.checker)."""
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    for k, v in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    model.doc_string = "pyface export: " + props.get("heads", "")
    model.producer_name = "pyface"
    model.producer_version = pyface.__version__
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _load_onnx(path: Path):
    """A plain ONNX Runtime session on the CPU (independent of OnnxBackend, which the
    tests check against the same reference)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    sess = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return lambda images: dict(zip(names, sess.run(None, {M.INPUT_NAME: np.ascontiguousarray(images)})))


def _write_pt2(net: InferenceNet, example: torch.Tensor, path: Path, props: dict, dynamic_batch: bool,
               opset: int) -> None:
    shapes = ({0: torch.export.Dim("batch", min=1, max=1 << 16)},) if dynamic_batch else None
    with _quiet_tracing():
        ep = torch.export.export(net, (example,), dynamic_shapes=shapes)
        with open(path, "wb") as f:  # a file object: given a name, torch.export wants it to end in .pt2
            torch.export.save(ep, f, extra_files={"pyface.json": json.dumps(props)})


def _load_pt2(path: Path):
    with _quiet_tracing():
        extra = {"pyface.json": ""}
        ep = torch.export.load(str(path), extra_files=extra)
    names = list(json.loads(json.loads(extra["pyface.json"])["outputs"]))
    mod = ep.module()

    def run(images: np.ndarray) -> dict[str, np.ndarray]:
        with torch.no_grad():
            out = mod(torch.from_numpy(np.ascontiguousarray(images)))
        return {n: o.numpy() for n, o in zip(names, out)}

    return run


EXPORT_FORMATS.register("onnx", ExportFormat("onnx", ".onnx", _write_onnx, _load_onnx, needs=("onnx",)))
EXPORT_FORMATS.register("onnx-dynamo", ExportFormat("onnx-dynamo", ".onnx", _write_onnx_dynamo, _load_onnx,
                                                    needs=("onnx", "onnxscript")))
EXPORT_FORMATS.register("torch-export", ExportFormat("torch-export", ".pt2", _write_pt2, _load_pt2))


# ---------------------------------------------------------------------------- export
@dataclass
class ExportResult:
    path: Path
    format: str
    props: dict
    #: output -> max abs difference vs PyTorch over the checked batches (None: not checked)
    parity: dict | None = None


def _sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _props(net: InferenceNet, fmt: str, dynamic_batch: bool, batch_size: int, opset: int, source) -> dict:
    cfg = net.net.config
    s = cfg.input_size
    shapes = {"embedding": ["batch", cfg.embedding_dim], "landmarks": ["batch", 68, 2], "pose": ["batch", 3]}
    outputs = {}
    for n in net.output_names:
        meaning = M.OUTPUT_MEANINGS[n]
        if n == "landmarks":
            meaning = meaning.replace("S x S", f"{s} x {s}")
        outputs[n] = {"shape": shapes[n], "dtype": "float32", "meaning": meaning}
    src = getattr(net.net, "checkpoint_path", None) if source is None else source
    return {
        "pyface_export": M.SCHEMA_VERSION, "format": fmt,
        "input_name": M.INPUT_NAME, "input_dtype": "uint8", "input_layout": "NCHW", "channel_order": "RGB",
        "input_size": str(s), "mean": str(M.MEAN), "std": str(M.STD),
        "normalization": f"(x - {M.MEAN}) / {M.STD} on the uint8 RGB input, inside the graph: pass raw pixels",
        "batch": "dynamic" if dynamic_batch else str(batch_size),
        "outputs": json.dumps(outputs), "heads": ",".join(net.net.tasks),
        "model_config": json.dumps(cfg.to_dict()),
        "source": str(src) if src else "",
        "source_sha256": _sha256(src) if src and os.path.isfile(src) else "",
        "pyface_version": pyface.__version__, "torch_version": torch.__version__,
    }


def _parse_heads(heads) -> tuple[str, ...] | None:
    if heads is None:
        return None
    if isinstance(heads, str):
        heads = [h.strip() for h in heads.split(",")]
    heads = tuple(h for h in heads if h)
    if not heads:
        raise UsageError("--heads: give at least one head, e.g. fr,fld,hpe")
    return heads


def _need(module: str, fmt: str) -> None:
    try:
        __import__(module)
    except ImportError:
        raise UsageError(f"--format {fmt}: needs the Python package {module!r}; install the onnx extra: "
                         "pip install 'pyface-mtl[onnx]'") from None


def export_model(source, out: str | os.PathLike, *, format: str = "onnx", heads=None, dynamic_batch: bool = False,
                 batch_size: int = 1, opset: int = 17, check: bool = True,
                 check_batches=(1, 5), seed: int = 0) -> ExportResult:
    """Export ``source`` (a checkpoint file, a run folder or a MultiTaskNet) to ``out``.

    ``heads``: the heads to keep ("fr,fld,hpe" or a sequence; default: every inference
    head of the checkpoint, :func:`exportable_heads`); a head the checkpoint lacks is a
    CheckpointError naming the file. ``dynamic_batch``: any batch size, else exactly
    ``batch_size``. ``check``: load the file
    back and compare it with PyTorch on ``check_batches`` (:func:`parity`; a fixed-batch
    export is checked at its own batch size)."""
    fmt = EXPORT_FORMATS.get(format, what="--format")
    for mod in fmt.needs:
        _need(mod, format)
    heads = _parse_heads(heads)
    model = runtime.load_model(source, "cpu", what="--checkpoint")
    allowed = exportable_heads(model)
    if heads is None:
        heads = allowed
    bad = [h for h in heads if h in model.tasks and h not in allowed]
    if bad:
        raise UsageError(f"--heads: {bad} are training-only branches (outputs "
                         f"{[model.outputs[h] for h in bad]}); exportable heads of this model: {list(allowed)}")
    if not heads:
        raise UsageError(f"--checkpoint: the model has no exportable head (its heads: {list(model.tasks)})")
    model = runtime.load_model(model, "cpu", heads=list(heads), export=True, what="--checkpoint",
                               purpose="asked for by --heads")
    if batch_size < 1:
        raise UsageError(f"--batch-size: must be >= 1, got {batch_size}")
    net = InferenceNet(model).eval()
    s = model.config.input_size
    # tracing at batch 2 keeps a dynamic batch from being specialised to 1
    example = torch.randint(0, 256, (2 if dynamic_batch else batch_size, 3, s, s), dtype=torch.uint8,
                            generator=torch.Generator().manual_seed(seed))
    props = _props(net, format, dynamic_batch, batch_size, opset, getattr(model, "checkpoint_path", None))
    out = Path(out)
    if out.is_dir():
        raise UsageError(f"--out: {out} is a folder; give a file name such as model{fmt.suffix}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        fmt.write(net, example, tmp, props, dynamic_batch, opset)
    result = ExportResult(out, format, props)
    if check:
        batches = tuple(check_batches) if dynamic_batch else (batch_size,)
        result.parity = parity(model, fmt.load(out), batches, seed=seed)
    return result


# ---------------------------------------------------------------------------- throughput
def onnx_fps_runtimes(model, backend, device) -> dict:
    """``pyface eval fps --onnx``: the runtimes timed beside the checkpoint's PyTorch
    forward (:func:`pyface.eval.runner.measure_fps` ``others``): "onnxruntime" (the file,
    all its outputs) and "pytorch-export" (PyTorch running the same graph -- the exported
    heads, HopeNet angles -- so the two differ only in the runtime)."""
    device = torch.device(device)
    heads = [h for h in backend.info.heads if h in model.tasks]
    net = InferenceNet(runtime.load_model(model, device, heads=heads, export=True)).eval()

    def torch_run(x: np.ndarray):
        with torch.no_grad():
            net(torch.from_numpy(x).to(device))
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    providers = ", ".join(p.replace("ExecutionProvider", "") for p in backend.providers)
    threads = backend.session.get_session_options().intra_op_num_threads
    return {"pytorch-export": (torch_run, runtime.device_name(device)),
            "onnxruntime": (backend.predict, f"onnxruntime {providers}" + (f" ({threads} threads)" if threads else ""))}


# ---------------------------------------------------------------------------- parity
@torch.no_grad()
def reference_outputs(model, images: torch.Tensor) -> dict[str, np.ndarray]:
    """What pyface computes in PyTorch (fp32) for uint8 ``images``, through the runtime
    every other command uses (:func:`pyface.runtime.forward`; HopeNet logits -> angles
    as ``pyface eval`` does)."""
    out = runtime.forward(model, images, amp=False)
    ref = {}
    for k, v in out.items():
        if k == "pose_logits":
            ref["pose"] = _hopenet_pose(v, v.shape[-1]).numpy()
        elif k in _EXPORTABLE:
            ref[k] = v.float().numpy()
    return ref


def parity(model, run, batch_sizes=(1, 5), *, seed: int = 0) -> dict[str, dict]:
    """Max absolute difference per output between ``run`` (an exported file's runner:
    uint8 numpy -> dict of numpy) and :func:`reference_outputs` of ``model`` on random
    uint8 batches of each size: ``{output: {"max_abs": ..., "ref_max_abs": ..., "batches": [...]}}``
    (``ref_max_abs``: the largest reference magnitude, to read the difference against)."""
    g = torch.Generator().manual_seed(seed)
    s = model.config.input_size
    res: dict[str, dict] = {}
    for bs in batch_sizes:
        x = torch.randint(0, 256, (bs, 3, s, s), dtype=torch.uint8, generator=g)
        ref = reference_outputs(model, x)
        got = run(x.numpy())
        if set(got) != set(ref):
            raise AssertionError(f"exported outputs {sorted(got)} differ from the model's {sorted(ref)}")
        for k in ref:
            if got[k].shape != ref[k].shape:
                raise AssertionError(f"{k}: exported shape {got[k].shape}, PyTorch {ref[k].shape}")
            d = float(np.abs(got[k].astype(np.float64) - ref[k]).max())
            r = res.setdefault(k, {"max_abs": 0.0, "ref_max_abs": 0.0, "batches": []})
            r["max_abs"] = max(r["max_abs"], d)
            r["ref_max_abs"] = max(r["ref_max_abs"], float(np.abs(ref[k]).max()))
            r["batches"].append(bs)
    return res
