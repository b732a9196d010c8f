"""Cosine duplicate search over identity embeddings (Algorithm 2 of Lee et al. 2024).

All pairs (i, j) with cos(a_i, b_j) >= threshold, optionally also above a second
threshold in a second embedding space (the paper's second FR network), without
materialising the Na x Nb similarity matrix. The pairs are found tile by tile:
the raw products of an (a-block, b-block) tile go to a reusable float32 buffer
(vendor BLAS through torch: MKL/OpenBLAS on CPU, cuBLAS tensor cores for
fp16/bf16 and, when torch allows it, TF32 for fp32 on GPU), then a C++/CUDA
epilogue applies both inverse norms and the threshold and appends the hits to a
growable output. The second space's tile is computed only for tiles with at least
one first-space hit, and only those candidates are checked. Self-search skips the
tiles strictly below the diagonal. Memory: O((Na + Nb) * D + K + tile).
"""
from __future__ import annotations

import torch

from pyface import checks as V
from pyface.ops._ext import cuda_path, dtype_code
from pyface.ops._gemm import mm_t_into
from pyface.ops.backends import implementation, no_kernel

__all__ = ["cosine_duplicates"]

# Float32 elements of one tile buffer (32 MiB on CPU: BLAS runs ~40% faster than
# at 8 MiB tiles; 256 MiB on CUDA for full-speed GEMMs).
_TILE_ELEMS_CPU = 1 << 23
_TILE_ELEMS_CUDA = 1 << 26
_TILE_ROWS_CPU = 2048
_TILE_ROWS_CUDA = 8192
_MIN_CAPACITY = 1 << 12
_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


def _initial_capacity(na: int, nb: int) -> int:
    """First size of the output buffers (it grows when full)."""
    return max(_MIN_CAPACITY, na + nb)


def _tiles(na: int, nb: int, device: torch.device, self_search: bool, tile_size: int | None) -> tuple[int, int]:
    if tile_size is not None:
        return max(1, min(na, tile_size)), max(1, min(nb, tile_size))
    cuda = cuda_path(device)
    ta = max(1, min(na, _TILE_ROWS_CUDA if cuda else _TILE_ROWS_CPU))
    if self_search:
        return ta, ta
    budget = _TILE_ELEMS_CUDA if cuda else _TILE_ELEMS_CPU
    return ta, max(1, min(nb, budget // ta))


def _inv_norm(k, name: str, x: torch.Tensor) -> torch.Tensor:
    """1/|x_i| as float32; zero or non-finite rows raise ValueError naming ``name``."""
    V.finite(name, x)
    out = torch.empty(x.shape[0], dtype=torch.float32, device=x.device)
    if x.shape[0]:
        k.row_inv_norm(k.RowInvNormArgs(x=x, n=x.shape[0], d=x.shape[1], dtype=dtype_code(x), eps=0.0, out=out))
        zero = torch.isinf(out)
        if bool(zero.any()):
            raise ValueError(f"{name} has rows of zero norm (cosine undefined), first in row "
                             f"{int(zero.nonzero()[0, 0])}")
    return out


class _Out:
    """Growable output: pairs [cap, 2] int64, sim [cap] and, with a second space,
    sim2 [cap] float32 and keep [cap] uint8."""

    def __init__(self, cap: int, device: torch.device, two: bool):
        self.cap, self.device, self.two = cap, device, two
        self.pairs = torch.empty(cap, 2, dtype=torch.int64, device=device)
        self.sim = torch.empty(cap, dtype=torch.float32, device=device)
        self.sim2 = torch.empty(cap if two else 0, dtype=torch.float32, device=device)
        self.keep = torch.empty(cap if two else 0, dtype=torch.uint8, device=device)

    def grow(self, need: int, prefix: int) -> None:
        """Capacity >= need, keeping the first ``prefix`` entries."""
        cap = max(need + need // 2, 2 * self.cap)
        old = (self.pairs, self.sim, self.sim2, self.keep)
        self.__init__(cap, self.device, self.two)
        for new, o in zip((self.pairs, self.sim, self.sim2, self.keep), old):
            if o.numel():
                new[:prefix].copy_(o[:prefix])


def _search(k, a, b, ia, ib, threshold, self_search, a2, b2, ia2, ib2, threshold2, ta, tb):
    dev = a.device
    na, nb = a.shape[0], b.shape[0]
    two = a2 is not None
    out = _Out(_initial_capacity(na, nb), dev, two)
    counter = torch.zeros(1, dtype=torch.int64, device=dev)
    flat = torch.empty(ta * tb, dtype=torch.float32, device=dev)
    flat2 = torch.empty(ta * tb, dtype=torch.float32, device=dev) if two else None

    def tile(i0, j0, na_t, nb_t):
        buf = flat[: na_t * nb_t].view(na_t, nb_t)
        mm_t_into(buf, a[i0:i0 + na_t], b[j0:j0 + nb_t])
        return buf

    def epilogue(buf, i0, j0):
        na_t, nb_t = buf.shape
        k.dup_tile(k.DupTileArgs(buf=buf, ta=na_t, tb=nb_t, i0=i0, j0=j0, inv_a=ia[i0:i0 + na_t],
                                 inv_b=ib[j0:j0 + nb_t], threshold=threshold, self=self_search, pairs=out.pairs,
                                 sim=out.sim, capacity=out.cap, counter=counter))

    def second(i0, j0, na_t, nb_t, begin, end):
        buf2 = flat2[: na_t * nb_t].view(na_t, nb_t)
        mm_t_into(buf2, a2[i0:i0 + na_t], b2[j0:j0 + nb_t])
        k.dup_second(k.DupSecondArgs(buf2=buf2, tb=nb_t, i0=i0, j0=j0, inv_a2=ia2[i0:i0 + na_t],
                                     inv_b2=ib2[j0:j0 + nb_t], threshold2=threshold2, pairs=out.pairs, begin=begin,
                                     end=end, sim2=out.sim2, keep=out.keep))

    for i0 in range(0, na, ta):
        na_t = min(ta, na - i0)
        # Self-search: a tile holds some j > i unless it lies wholly on or below the diagonal.
        cols = [(j0, min(tb, nb - j0)) for j0 in range(0, nb, tb)
                if not (self_search and j0 + min(tb, nb - j0) - 1 <= i0)]
        if not cols:
            continue
        if not cuda_path(dev):  # synchronous: handle a full buffer tile by tile
            for j0, nb_t in cols:
                buf = tile(i0, j0, na_t, nb_t)
                start = int(counter[0])
                epilogue(buf, i0, j0)
                end = int(counter[0])
                if end > out.cap:
                    out.grow(end, start)
                    counter[0] = start
                    epilogue(buf, i0, j0)
                if two and end > start:
                    second(i0, j0, na_t, nb_t, start, end)
            continue
        # CUDA: counts are snapshot on the device after every tile, read once per
        # row of tiles; from the first tile that overflowed on, the row is redone.
        snaps = torch.empty(len(cols) + 1, dtype=torch.int64, device=dev)
        snaps[:1].copy_(counter)
        for t, (j0, nb_t) in enumerate(cols):
            epilogue(tile(i0, j0, na_t, nb_t), i0, j0)
            snaps[t + 1:t + 2].copy_(counter)
        s = snaps.tolist()
        if s[-1] > out.cap:
            first = next(t for t in range(len(cols)) if s[t + 1] > out.cap)
            out.grow(s[-1], s[first])
            counter.fill_(s[first])
            for j0, nb_t in cols[first:]:
                epilogue(tile(i0, j0, na_t, nb_t), i0, j0)
        if two:
            for t, (j0, nb_t) in enumerate(cols):
                if s[t + 1] > s[t]:
                    second(i0, j0, na_t, nb_t, s[t], s[t + 1])

    n_hits = int(counter[0])
    pairs, sim = out.pairs[:n_hits], out.sim[:n_hits]
    sim2 = out.sim2[:n_hits]
    if two:
        keep = out.keep[:n_hits].bool()
        pairs, sim, sim2 = pairs[keep], sim[keep], sim2[keep]
    order = torch.argsort(pairs[:, 0] * max(nb, 1) + pairs[:, 1])
    return pairs[order], sim[order], sim2[order] if two else sim2.new_empty(0)


@torch.library.custom_op("pyface::cosine_duplicates", mutates_args=())
def _cosine_duplicates(a: torch.Tensor, b: torch.Tensor, threshold: float, self_search: bool,
                       a2: torch.Tensor | None, b2: torch.Tensor | None, threshold2: float, tile_a: int,
                       tile_b: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(pairs [K, 2] int64, sim [K] float32, sim2 [K] float32, or [0] without a second space)."""
    raise no_kernel("pyface::cosine_duplicates", a.device)


@implementation(_cosine_duplicates)
def _cosine_duplicates_impl(k, a, b, threshold, self_search, a2, b2, threshold2, tile_a, tile_b):
    # The kernels read row-major memory: a caller of the raw op may pass any layout.
    a, b = a.contiguous(), b.contiguous()
    a2, b2 = (None if t is None else t.contiguous() for t in (a2, b2))
    ia = _inv_norm(k, "a", a)
    ib = ia if self_search else _inv_norm(k, "b", b)
    ia2 = ib2 = None
    if a2 is not None:
        ia2 = _inv_norm(k, "a2", a2)
        ib2 = ia2 if self_search else _inv_norm(k, "b2", b2)
    if a.shape[0] == 0 or b.shape[0] == 0:
        e = torch.empty(0, dtype=torch.float32, device=a.device)
        return torch.empty(0, 2, dtype=torch.int64, device=a.device), e, e.clone()
    return _search(k, a, b, ia, ib, threshold, self_search, a2, b2, ia2, ib2, threshold2, tile_a, tile_b)


@_cosine_duplicates.register_fake
def _(a, b, threshold, self_search, a2, b2, threshold2, tile_a, tile_b):
    k = torch.library.get_ctx().new_dynamic_size()
    return (a.new_empty((k, 2), dtype=torch.int64), a.new_empty((k,), dtype=torch.float32),
            a.new_empty((k if a2 is not None else 0,), dtype=torch.float32))


def _as_tensor(name: str, x) -> torch.Tensor:
    """torch tensors as they are; numpy / cupy / any DLPack producer without a copy."""
    if isinstance(x, torch.Tensor):
        return x
    if hasattr(x, "__dlpack__"):
        try:
            return torch.from_dlpack(x)
        except (RuntimeError, TypeError, BufferError) as exc:
            raise TypeError(f"{name} could not be read through DLPack: {exc}") from exc
    raise TypeError(f"{name} must be a torch tensor or a DLPack array (numpy, cupy), got {type(x).__name__}")


def _matrix(name: str, x) -> torch.Tensor:
    x = V.tensor(name, _as_tensor(name, x), dtypes=_DTYPES, ndim=2)
    if x.shape[1] == 0:
        raise ValueError(f"{name} must have a non-zero embedding dimension, got shape {list(x.shape)}")
    return x


def _prepare(x: torch.Tensor) -> torch.Tensor:
    """The kernels' input form: contiguous; float32 on CPU (and for float64); fp16/bf16 stay on CUDA."""
    if x.dtype == torch.float64 or (not cuda_path(x.device) and x.dtype != torch.float32):
        x = x.float()
    return x.contiguous()


def cosine_duplicates(a, b=None, threshold: float = 0.5, *, a2=None, b2=None, threshold2: float | None = None,
                      tile_size: int | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """All pairs of rows with cosine similarity >= threshold, never forming Na x Nb.

    a: [Na, D], b: [Nb, D] or None (self-search within a: pairs i < j); float32,
    float16, bfloat16 (float64 is computed in float32); torch tensors or any
    DLPack array (numpy, cupy), on one device. Rows are L2-normalised inside.
    With a second embedding space (a2 [Na, D2], b2 [Nb, D2]; with b=None only
    a2), a pair must also have cos(a2_i, b2_j) >= threshold2. On CUDA, fp16/bf16
    products run on tensor cores with fp32 accumulation; fp32 uses TF32 when torch
    allows it (torch.backends.cuda.matmul.allow_tf32). tile_size: rows/columns per
    tile (default: sized for the device).

    Returns torch tensors on the inputs' device: pairs [K, 2] int64 (i, j) sorted
    by (i, j), sim [K] float32 and sim2 [K] float32 (None without a second space).
    """
    a = _matrix("a", a)
    self_search = b is None
    if not self_search:
        b = _matrix("b", b)
        if b.shape[1] != a.shape[1]:
            raise ValueError(f"b must have shape [Nb, {a.shape[1]}] to match a, got {list(b.shape)}")
        if b.dtype != a.dtype:
            raise TypeError(f"b dtype {b.dtype} must match a dtype {a.dtype}")
    threshold = V.number("threshold", threshold, lo=-1.0, hi=1.0)
    if a2 is None and b2 is not None:
        raise ValueError("b2 given without a2: the second embedding space needs both a2 and b2")
    if a2 is not None:
        a2 = _matrix("a2", a2)
        if a2.shape[0] != a.shape[0]:
            raise ValueError(f"a2 must have {a.shape[0]} rows (one per row of a), got {list(a2.shape)}")
        if self_search:
            if b2 is not None:
                raise ValueError("b2 must be None for a self-search (b is None)")
        else:
            if b2 is None:
                raise ValueError("b2 is missing: a2 without b2 (the second space needs both)")
            b2 = _matrix("b2", b2)
            if b2.shape[0] != b.shape[0]:
                raise ValueError(f"b2 must have {b.shape[0]} rows (one per row of b), got {list(b2.shape)}")
            if b2.shape[1] != a2.shape[1]:
                raise ValueError(f"b2 must have shape [Nb, {a2.shape[1]}] to match a2, got {list(b2.shape)}")
            if b2.dtype != a2.dtype:
                raise TypeError(f"b2 dtype {b2.dtype} must match a2 dtype {a2.dtype}")
        if threshold2 is None:
            raise ValueError("threshold2 is required with a second embedding space (a2)")
        threshold2 = V.number("threshold2", threshold2, lo=-1.0, hi=1.0)
    elif threshold2 is not None:
        raise ValueError("threshold2 given without a second embedding space (a2, b2)")
    dev = V.same_device(a=a, b=b, a2=a2, b2=b2)
    if tile_size is not None:
        tile_size = V.integer("tile_size", tile_size, lo=1)
    a = _prepare(a)
    b = a if self_search else _prepare(b)
    if a2 is not None:
        a2 = _prepare(a2)
        b2 = a2 if self_search else _prepare(b2)
    ta, tb = _tiles(a.shape[0], b.shape[0], dev, self_search, tile_size)
    pairs, sim, sim2 = torch.ops.pyface.cosine_duplicates(a, b, threshold, self_search, a2, b2,
                                                          float(threshold2 or 0.0), ta, tb)
    return pairs, sim, (sim2 if a2 is not None else None)
