"""Large-pose margin cosine (LPMC) softmax loss, Eq. 10 of Lee et al. 2024.

The B x C logits are never materialised: classes are processed in chunks. For a
chunk the raw products x @ w_c^T go to a float32 buffer (the vendor BLAS through
torch), and a fused C++/CUDA epilogue applies both normalisations, the margin,
and the online log-sum-exp (forward) or the exact gradient coefficients through
the normalisations (backward). Memory beyond inputs and gradients: O(B * chunk).
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from pyface import checks as V
from pyface.ops._ext import acc_dtype, cuda_path, dtype_code
from pyface.ops._gemm import mm_acc, mm_t_into
from pyface.ops.backends import implementation, no_kernel

__all__ = ["lpmc_loss", "lpmc_shard_stats", "lpmc_shard_backward", "LpmcShardStats", "rescale_row_sum", "pose_margin",
           "default_chunk_size", "GAMMA_READINGS", "POSE_MARGIN_M1", "POSE_MARGIN_M2"]

POSE_MARGIN_M1 = 0.3
POSE_MARGIN_M2 = 0.7
_NORM_EPS = 1e-12
# Target size of the float32 chunk buffer (elements); ~16 MiB keeps it in cache on
# CPU and large enough for full-speed GEMMs on GPU.
_CHUNK_ELEMS_CPU = 1 << 21
_CHUNK_ELEMS_CUDA = 1 << 24


#: Readings of gamma_P (Lee et al. Sec. 3.2.2: "the average of the three poses -- yaw, pitch, and
#: roll -- summed and then divided by 180 to ensure a value ranging between 0 and 1"):
#: "sum": clamp((|yaw| + |pitch| + |roll|) / 180, 0, 1) (the default; docs/papers.md says why);
#: "mean": (|yaw| + |pitch| + |roll|) / 3 / 180 (in [0, 1] without a clamp for |angles| <= 180).
GAMMA_READINGS = ("sum", "mean")


def pose_margin(pose_deg: torch.Tensor, m1: float = POSE_MARGIN_M1, m2: float = POSE_MARGIN_M2,
                gamma: str = "sum") -> torch.Tensor:
    """Per-sample margin m1 + m2 * gamma_P; gamma_P by ``gamma`` (:data:`GAMMA_READINGS`):
    "sum" = clamp((|yaw|+|pitch|+|roll|)/180, 0, 1), "mean" = (|yaw|+|pitch|+|roll|)/540.

    pose_deg: [B, 3] (yaw, pitch, roll) in degrees. Returns float32 [B].
    """
    V.tensor("pose_deg", pose_deg, dtypes=(torch.float32, torch.float64, torch.float16, torch.bfloat16), ndim=2)
    V.shape("pose_deg", pose_deg, (None, 3))
    V.number("m1", m1)
    V.number("m2", m2)
    V.choice("gamma", gamma, GAMMA_READINGS)
    total = pose_deg.float().abs().sum(dim=1)
    gamma_p = (total / 180.0).clamp(0.0, 1.0) if gamma == "sum" else (total / 540.0).clamp(0.0, 1.0)
    return m1 + m2 * gamma_p


def default_chunk_size(batch: int, num_classes: int, device: torch.device) -> int:
    budget = _CHUNK_ELEMS_CUDA if cuda_path(device) else _CHUNK_ELEMS_CPU
    chunk = max(256, budget // max(batch, 1))
    return int(max(1, min(num_classes, chunk)))


def _inv_norm(k, t: torch.Tensor) -> torch.Tensor:
    """1/max(|t_i|, eps) [rows] in the accumulation type, by kernel object ``k``."""
    out = torch.empty(t.shape[0], dtype=acc_dtype(t), device=t.device)
    if t.shape[0]:
        k.row_inv_norm(k.RowInvNormArgs(x=t, n=t.shape[0], d=t.shape[1], dtype=dtype_code(t), eps=_NORM_EPS, out=out))
    return out


def _chunk_args(k, acc, buf, c0, class_offset, inx, inw, labels, margins, scale, arc, ignore_index):
    """The epilogue's arguments for the chunk of classes [c0, c0 + n) of the shard (buf [B, n])."""
    B, n = buf.shape
    return k.LpmcArgs[acc](buf=buf, B=B, n=n, c0=class_offset + c0, inv_norm_x=inx, inv_norm_w=inw[c0:c0 + n],
                           labels=labels, margins=margins, scale=scale, arc=arc, ignore_index=ignore_index)


def _raw_chunk(flat: torch.Tensor, x: torch.Tensor, w_c: torch.Tensor) -> torch.Tensor:
    """[B, n] = x @ w_c^T in the accumulation type, written into the front of ``flat``."""
    return mm_t_into(flat[: x.shape[0] * w_c.shape[0]].view(x.shape[0], w_c.shape[0]), x, w_c)


def _scalars(scale, margin_type, ignore_index):
    return float(scale), margin_type == "arc", int(ignore_index)


def _fwd_stats(k, x, w, labels, margins, class_offset, scale, arc, ignore_index, chunk_size):
    """Per-row (max, sum of exp(logit - max), target logit) over the classes
    [class_offset, class_offset + C) that ``w`` holds, plus 1/|x| [B] and 1/|w| [C].

    The chunk epilogues take the global index of their first class (c0), so a shard
    of the class-centre matrix is just a chunk loop that starts at ``class_offset``:
    rows whose label lies outside it fold every logit into the normaliser and keep
    target 0. Ignored rows keep (-inf, 0, 0)."""
    B, C = x.shape[0], w.shape[0]
    dev, acc = x.device, acc_dtype(x)
    # The kernels read row-major memory: a caller of the raw op may pass any layout.
    x, w, labels = x.contiguous(), w.contiguous(), labels.contiguous()
    margins = margins.to(acc).contiguous()
    inx, inw = _inv_norm(k, x), _inv_norm(k, w)
    run_max = torch.full((B,), float("-inf"), dtype=acc, device=dev)
    run_sum = torch.zeros(B, dtype=acc, device=dev)
    tgt = torch.zeros(B, dtype=acc, device=dev)
    if B and C:
        flat = torch.empty(B * min(chunk_size, C), dtype=acc, device=dev)
        for c0 in range(0, C, chunk_size):
            w_c = w[c0:c0 + chunk_size]
            buf = _raw_chunk(flat, x, w_c)
            k.lpmc_fwd_chunk(_chunk_args(k, acc, buf, c0, class_offset, inx, inw, labels, margins, scale, arc,
                                         ignore_index), run_max, run_sum, tgt)
    return run_max, run_sum, tgt, inx, inw


def _bwd(k, grad_rows, x, w, labels, margins, lse, inx, inw, class_offset, scale, arc, ignore_index, chunk_size):
    """Exact gradients of sum_i grad_rows_i * (lse_i - target_i) with respect to x and to
    the class shard ``w`` (classes [class_offset, class_offset + C)), given the per-row
    log-sum-exp ``lse`` over all classes. Returns dx [B, D] in the accumulation type
    (this shard's part of it: the parts of all shards add up to the full gradient) and
    dw [C, D] in w's dtype."""
    B, D = x.shape
    C = w.shape[0]
    dev, acc = x.device, acc_dtype(x)
    x, w, labels = x.contiguous(), w.contiguous(), labels.contiguous()
    inx, inw = inx.to(acc).contiguous(), inw.to(acc).contiguous()
    grad_rows = grad_rows.to(acc).contiguous()
    margins = margins.to(acc).contiguous()
    lse = lse.to(acc).contiguous()
    dx_acc = torch.zeros(B, D, dtype=acc, device=dev)
    rx = torch.zeros(B, dtype=acc, device=dev)
    dw = torch.empty_like(w)
    half_cuda = cuda_path(dev) and x.dtype in (torch.float16, torch.bfloat16)
    if B and C:
        n_max = min(chunk_size, C)
        flat = torch.empty(B * n_max, dtype=acc, device=dev)
        rw_all = torch.empty(n_max, dtype=acc, device=dev)
        extra = ()
        if cuda_path(dev):
            scratch = torch.empty(B * ((n_max + 31) // 32), dtype=acc, device=dev)
            extra = (scratch,)
        x_acc = x.to(acc)
        for c0 in range(0, C, chunk_size):
            w_c = w[c0:c0 + chunk_size]
            n = w_c.shape[0]
            buf = _raw_chunk(flat, x, w_c)
            rw = rw_all[:n]
            k.lpmc_bwd_chunk(_chunk_args(k, acc, buf, c0, class_offset, inx, inw, labels, margins, scale, arc,
                                         ignore_index), lse, grad_rows, rx, rw, *extra)
            # buf now holds H = G / (|x_i| |w_j|); dx += H @ w_c, dw_c = H^T @ x - rw * w_c.
            w_acc = w_c.to(acc)
            if half_cuda:  # tensor-core products in the input dtype, fp32 results
                h = buf.to(x.dtype)
                dx_acc.add_(mm_acc(h, w_c, acc))
                dw_c = mm_acc(h.t(), x, acc)
            else:
                dx_acc.addmm_(buf, w_acc)
                dw_c = torch.mm(buf.t(), x_acc)
            dw_c.addcmul_(w_acc, rw[:, None], value=-1.0)
            dw[c0:c0 + n].copy_(dw_c)
    dx_acc.addcmul_(x.to(acc), rx[:, None], value=-1.0)
    return dx_acc, dw


@torch.library.custom_op("pyface::lpmc_fwd", mutates_args=())
def _lpmc_fwd(x: torch.Tensor, w: torch.Tensor, labels: torch.Tensor, margins: torch.Tensor, scale: float,
              arc: bool, ignore_index: int,
              chunk_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Returns (per-row loss [B], lse [B], 1/|x| [B], 1/|w| [C]) in the accumulation type."""
    raise no_kernel("pyface::lpmc_fwd", x.device)


@implementation(_lpmc_fwd)
def _lpmc_fwd_impl(k, x, w, labels, margins, scale, arc, ignore_index, chunk_size):
    check_label_values(labels, margins, w.shape[0], ignore_index)
    run_max, run_sum, tgt, inx, inw = _fwd_stats(k, x, w, labels, margins, 0, scale, arc, ignore_index, chunk_size)
    lse = run_max + torch.log(run_sum)
    valid = labels != ignore_index
    rows = torch.where(valid, lse - tgt, torch.zeros_like(lse))
    return rows, lse, inx, inw


@_lpmc_fwd.register_fake
def _(x, w, labels, margins, scale, arc, ignore_index, chunk_size):
    B, C = x.shape[0], w.shape[0]
    f = lambda n: x.new_empty((n,), dtype=acc_dtype(x))  # noqa: E731
    return f(B), f(B), f(B), f(C)


@torch.library.custom_op("pyface::lpmc_bwd", mutates_args=())
def _lpmc_bwd(grad_rows: torch.Tensor, x: torch.Tensor, w: torch.Tensor, labels: torch.Tensor, margins: torch.Tensor,
              lse: torch.Tensor, inx: torch.Tensor, inw: torch.Tensor, scale: float, arc: bool, ignore_index: int,
              chunk_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact gradients (dx [B, D], dw [C, D]) in the input dtypes."""
    raise no_kernel("pyface::lpmc_bwd", x.device)


@implementation(_lpmc_bwd)
def _lpmc_bwd_impl(k, grad_rows, x, w, labels, margins, lse, inx, inw, scale, arc, ignore_index, chunk_size):
    dx, dw = _bwd(k, grad_rows, x, w, labels, margins, lse, inx, inw, 0, scale, arc, ignore_index, chunk_size)
    return dx.to(x.dtype), dw


@_lpmc_bwd.register_fake
def _(grad_rows, x, w, labels, margins, lse, inx, inw, scale, arc, ignore_index, chunk_size):
    return x.new_empty(x.shape), w.new_empty(w.shape)  # contiguous, like the kernels' outputs


def _setup_context(ctx, inputs, output):
    x, w, labels, margins, scale, arc, ignore_index, chunk_size = inputs
    _, lse, inx, inw = output
    ctx.save_for_backward(x, w, labels, margins, lse, inx, inw)
    ctx.args = (scale, arc, ignore_index, chunk_size)


def _backward(ctx, grad_rows, _g_lse, _g_inx, _g_inw):
    x, w, labels, margins, lse, inx, inw = ctx.saved_tensors
    dx, dw = torch.ops.pyface.lpmc_bwd(grad_rows, x, w, labels, margins, lse, inx, inw, *ctx.args)
    return dx, dw, None, None, None, None, None, None


_lpmc_fwd.register_autograd(_backward, setup_context=_setup_context)


def check_label_values(labels: torch.Tensor, margins: torch.Tensor, num_classes: int, ignore_index: int) -> None:
    """Value checks (one host sync); run inside the op so they also hold under torch.compile."""
    if labels.numel() == 0:
        return
    valid = labels != ignore_index
    bad_label = (valid & ((labels < 0) | (labels >= num_classes))).any()
    bad_margin = ~torch.isfinite(margins).all()
    flags = torch.stack([bad_label, bad_margin]).tolist()
    if flags[0]:
        first = labels[valid & ((labels < 0) | (labels >= num_classes))][0].item()
        raise ValueError(f"labels must be in [0, {num_classes}) or equal ignore_index={ignore_index}; found {first}")
    if flags[1]:
        raise ValueError("margins contains non-finite values (nan or inf)")


def _validate(embeddings, weight, labels, margins, scale, margin_type, ignore_index, chunk_size):
    """Argument checks shared by every LPMC entry point; returns the chunk size."""
    V.tensor("embeddings", embeddings, dtypes=V.FLOAT_DTYPES + (torch.float64,), ndim=2)
    V.tensor("weight", weight, dtypes=V.FLOAT_DTYPES + (torch.float64,), ndim=2)
    V.tensor("labels", labels, dtypes=(torch.int64,), ndim=1)
    V.tensor("margins", margins, dtypes=(torch.float32, torch.float64, torch.float16, torch.bfloat16), ndim=1)
    if weight.dtype != embeddings.dtype:
        raise TypeError(f"weight dtype {weight.dtype} must match embeddings dtype {embeddings.dtype}")
    B, D = embeddings.shape
    if weight.shape[1] != D:
        raise ValueError(f"weight must have shape [C, {D}] to match embeddings [B, {D}], got {list(weight.shape)}")
    if labels.shape[0] != B:
        raise ValueError(f"labels must have shape [{B}] (batch of embeddings), got {list(labels.shape)}")
    if margins.shape[0] != B:
        raise ValueError(f"margins must have shape [{B}] (batch of embeddings), got {list(margins.shape)}")
    if D == 0:
        raise ValueError("embeddings must have a non-zero embedding dimension")
    dev = V.same_device(embeddings=embeddings, weight=weight, labels=labels, margins=margins)
    V.number("scale", scale, lo=0.0, lo_open=True)
    V.choice("margin_type", margin_type, ("cosine", "arc"))
    V.integer("ignore_index", ignore_index)
    if chunk_size is None:
        return default_chunk_size(B, weight.shape[0], dev)
    return V.integer("chunk_size", chunk_size, lo=1)


def lpmc_loss(embeddings: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, margins: torch.Tensor, *,
              scale: float = 64.0, margin_type: str = "cosine", ignore_index: int = -1, reduction: str = "mean",
              chunk_size: int | None = None) -> torch.Tensor:
    """Fused LPMC margin-softmax cross-entropy (Eq. 10).

    embeddings: [B, D] float32/bfloat16/float16; weight: [C, D] class centres of the
    same dtype; labels: [B] int64 (rows equal to ``ignore_index`` contribute 0 and are
    left out of the mean); margins: [B] per-sample margins (see :func:`pose_margin`).
    Both embeddings and weight rows are L2-normalised inside. ``margin_type``:
    "cosine" -> target logit s*(cos - m); "arc" -> s*cos(theta + m) with the
    s*(cos - m*sin m) fallback where theta + m >= pi. Returns float32: a scalar for
    "mean"/"sum" (mean over non-ignored rows, 0 if none), [B] for "none".
    Gradients are exact through both normalisations; none for labels or margins.
    """
    V.choice("reduction", reduction, ("mean", "sum", "none"))
    chunk_size = _validate(embeddings, weight, labels, margins, scale, margin_type, ignore_index, chunk_size)
    # A non-contiguous weight (e.g. a transposed view) would make the kernels read the
    # wrong elements: the copy is explicit and only of what is needed.
    x = embeddings.contiguous()
    w = weight.contiguous()
    s, arc, ign = _scalars(scale, margin_type, ignore_index)
    rows, _, _, _ = torch.ops.pyface.lpmc_fwd(x, w, labels.contiguous(), margins.contiguous(), s, arc, ign,
                                              int(chunk_size))
    if reduction == "none":
        return rows
    if reduction == "sum":
        return rows.sum()
    return rows.sum() / (labels != ignore_index).sum().clamp(min=1)


# ----------------------------------------------------------------------------- class shards
# Building blocks of the class-sharded loss (pyface.nn.LPMCLoss with a process group):
# each rank holds the centres of classes [class_offset, class_offset + C) of a larger
# matrix. The forward statistics of all shards combine into the full log-sum-exp; the
# backward of a shard needs only that global lse. No B x C tensor, same fused kernels.


@torch.library.custom_op("pyface::lpmc_shard_fwd", mutates_args=())
def _lpmc_shard_fwd(x: torch.Tensor, w: torch.Tensor, labels: torch.Tensor, margins: torch.Tensor, class_offset: int,
                    num_classes: int, scale: float, arc: bool, ignore_index: int,
                    chunk_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(row_max [B], row_sum [B], target [B], 1/|x| [B], 1/|w| [C]) in the accumulation type."""
    raise no_kernel("pyface::lpmc_shard_fwd", x.device)


@implementation(_lpmc_shard_fwd)
def _lpmc_shard_fwd_impl(k, x, w, labels, margins, class_offset, num_classes, scale, arc, ignore_index, chunk_size):
    check_label_values(labels, margins, num_classes, ignore_index)
    return _fwd_stats(k, x, w, labels, margins, class_offset, scale, arc, ignore_index, chunk_size)


@_lpmc_shard_fwd.register_fake
def _(x, w, labels, margins, class_offset, num_classes, scale, arc, ignore_index, chunk_size):
    B, C = x.shape[0], w.shape[0]
    f = lambda n: x.new_empty((n,), dtype=acc_dtype(x))  # noqa: E731
    return f(B), f(B), f(B), f(B), f(C)


@torch.library.custom_op("pyface::lpmc_shard_bwd", mutates_args=())
def _lpmc_shard_bwd(grad_rows: torch.Tensor, x: torch.Tensor, w: torch.Tensor, labels: torch.Tensor,
                    margins: torch.Tensor, lse: torch.Tensor, inx: torch.Tensor | None, inw: torch.Tensor | None,
                    class_offset: int, scale: float, arc: bool, ignore_index: int,
                    chunk_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(this shard's part of dx [B, D] in the accumulation type, dw [C, D] in w's dtype); inx / inw
    (1/|x| [B], 1/|w| [C] in the accumulation type) are computed when None."""
    raise no_kernel("pyface::lpmc_shard_bwd", x.device)


@implementation(_lpmc_shard_bwd)
def _lpmc_shard_bwd_impl(k, grad_rows, x, w, labels, margins, lse, inx, inw, class_offset, scale, arc, ignore_index,
                         chunk_size):
    inx = _inv_norm(k, x) if inx is None else inx
    inw = _inv_norm(k, w) if inw is None else inw
    return _bwd(k, grad_rows, x, w, labels, margins, lse, inx, inw, class_offset, scale, arc, ignore_index, chunk_size)


@_lpmc_shard_bwd.register_fake
def _(grad_rows, x, w, labels, margins, lse, inx, inw, class_offset, scale, arc, ignore_index, chunk_size):
    return x.new_empty(x.shape, dtype=acc_dtype(x)), w.new_empty(w.shape)


class LpmcShardStats(NamedTuple):
    """Per-row statistics of one class shard (accumulation type: float32, or float64).

    row_max/row_sum: max and sum of exp(logit - row_max) over the shard's logits
    (margin applied to the target logit when the target lies in the shard);
    (-inf, 0) for ignored rows and for an empty shard. target: the target logit where
    the shard owns the row's label, else 0. inv_norm_x [B], inv_norm_w [C]: reused by
    :func:`lpmc_shard_backward`."""
    row_max: torch.Tensor
    row_sum: torch.Tensor
    target: torch.Tensor
    inv_norm_x: torch.Tensor
    inv_norm_w: torch.Tensor


def _check_shard(weight_shard, class_offset, num_classes):
    class_offset = V.integer("class_offset", class_offset, lo=0)
    num_classes = V.integer("num_classes", num_classes, lo=1)
    if class_offset + weight_shard.shape[0] > num_classes:
        raise ValueError(f"class_offset + weight_shard rows ({class_offset} + {weight_shard.shape[0]}) exceed "
                         f"num_classes={num_classes}")
    return class_offset, num_classes


def lpmc_shard_stats(embeddings: torch.Tensor, weight_shard: torch.Tensor, labels: torch.Tensor,
                     margins: torch.Tensor, *, class_offset: int, num_classes: int, scale: float = 64.0,
                     margin_type: str = "cosine", ignore_index: int = -1,
                     chunk_size: int | None = None) -> LpmcShardStats:
    """Forward statistics of the LPMC loss over one shard of the classes.

    weight_shard [C_s, D] holds classes [class_offset, class_offset + C_s) of a
    num_classes-row matrix; labels are global class ids in [0, num_classes) or
    ``ignore_index``. Over all shards, lse = M + log(sum_s row_sum_s * exp(row_max_s - M))
    with M = max_s row_max_s, and the loss row is lse - target of the owning shard.
    No autograd (the backward is :func:`lpmc_shard_backward`)."""
    chunk_size = _validate(embeddings, weight_shard, labels, margins, scale, margin_type, ignore_index, chunk_size)
    class_offset, num_classes = _check_shard(weight_shard, class_offset, num_classes)
    s, arc, ign = _scalars(scale, margin_type, ignore_index)
    out = torch.ops.pyface.lpmc_shard_fwd(embeddings.detach().contiguous(), weight_shard.detach().contiguous(),
                                          labels.contiguous(), margins.detach().contiguous(), class_offset,
                                          num_classes, s, arc, ign, int(chunk_size))
    return LpmcShardStats(*out)


def lpmc_shard_backward(grad_rows: torch.Tensor, embeddings: torch.Tensor, weight_shard: torch.Tensor,
                        labels: torch.Tensor, margins: torch.Tensor, lse: torch.Tensor, *, class_offset: int,
                        num_classes: int, inv_norm_x: torch.Tensor | None = None,
                        inv_norm_w: torch.Tensor | None = None, scale: float = 64.0, margin_type: str = "cosine",
                        ignore_index: int = -1, chunk_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of sum_i grad_rows_i * loss_i with respect to the embeddings and to one
    class shard, given the global per-row log-sum-exp ``lse`` [B] over all classes.

    Returns (dx [B, D] float32/float64: this shard's part of the embedding gradient,
    the parts of all shards sum to the full one; dw [C_s, D] in weight_shard's dtype:
    exactly those rows of the full weight gradient). Ignored rows get zero."""
    chunk_size = _validate(embeddings, weight_shard, labels, margins, scale, margin_type, ignore_index, chunk_size)
    class_offset, num_classes = _check_shard(weight_shard, class_offset, num_classes)
    B = embeddings.shape[0]
    for name, t in (("grad_rows", grad_rows), ("lse", lse)):
        V.tensor(name, t, dtypes=(torch.float32, torch.float64), ndim=1)
        V.shape(name, t, (B,))
    x, w = embeddings.detach().contiguous(), weight_shard.detach().contiguous()
    inx = None if inv_norm_x is None else inv_norm_x.to(acc_dtype(x)).contiguous()
    inw = None if inv_norm_w is None else inv_norm_w.to(acc_dtype(x)).contiguous()
    s, arc, ign = _scalars(scale, margin_type, ignore_index)
    return torch.ops.pyface.lpmc_shard_bwd(grad_rows.contiguous(), x, w, labels.contiguous(),
                                           margins.detach().contiguous(), lse.contiguous(), inx, inw, class_offset,
                                           s, arc, ign, int(chunk_size))


def rescale_row_sum(row_max: torch.Tensor, row_sum: torch.Tensor, global_max: torch.Tensor) -> torch.Tensor:
    """A shard's row_sum expressed relative to the global row max (0 for empty rows), so
    that the shards' sums add up: lse = global_max + log(sum over shards)."""
    return torch.where(row_sum > 0, row_sum * torch.exp(row_max - global_max), torch.zeros_like(row_sum))
