"""Tile puzzles and per-tile rotations of image batches (Pourmirzaei et al., Sec. 3.2).

The labels of the self-supervised heads of HMTL: the image is cut into k x k tiles
(row-major), the tiles are permuted and/or each rotated by a multiple of 90 degrees,
and one head per region predicts which tile sits there / by how much it was rotated.
All of it is batched tensor indexing (one gather for the permutation, one masked
``rot90`` per quarter-turn count), so it runs on whatever device the images are on.
"""
from __future__ import annotations

import torch

from pyface import checks as V

__all__ = ["MODES", "tile_transform", "untile_transform"]

MODES = ("puzzle", "rotation", "puzzle_rotation")
#: puzzle_rotation rotates at most this many tiles per image: rotating every tile can
#: leave several valid solutions and destroys the head pose the supervised heads need
#: (Sec. 3.2, "Puzzling-Rotation").
MAX_ROTATED_PUZZLE_PIECES = 2


def _check(images, k: int, mode: str, remainder: str) -> tuple[int, int]:
    V.tensor("images", images, ndim=4)
    V.integer("k", k, lo=1)
    V.choice("mode", mode, MODES)
    V.choice("remainder", remainder, ("error", "keep"))
    h, w = images.shape[-2:]
    if remainder == "keep":
        h, w = h - h % k, w - w % k
        if h == 0 or w == 0:
            raise ValueError(f"images ({images.shape[-2]}x{images.shape[-1]}) are smaller than k={k} pixels")
    elif h % k or w % k:
        raise ValueError(f"images height and width must be divisible by k={k}, got {h}x{w} "
                         "(remainder='keep' tiles the top-left divisible region)")
    th, tw = h // k, w // k
    if mode != "puzzle" and th != tw:
        raise ValueError(f"mode {mode!r} rotates tiles, which must be square: got {th}x{tw} tiles "
                         f"({h}x{w} images, k={k})")
    return th, tw


def _tiles(images: torch.Tensor, k: int) -> torch.Tensor:
    """[B, C, H, W] -> [B, k*k, C, H/k, W/k], tiles in row-major order."""
    b, c, h, w = images.shape
    t = images.reshape(b, c, k, h // k, k, w // k).permute(0, 2, 4, 1, 3, 5)
    return t.reshape(b, k * k, c, h // k, w // k)


def _untile(tiles: torch.Tensor, k: int) -> torch.Tensor:
    b, _, c, th, tw = tiles.shape
    return tiles.reshape(b, k, k, c, th, tw).permute(0, 3, 1, 4, 2, 5).reshape(b, c, k * th, k * tw)


def _rotate(tiles: torch.Tensor, rot: torch.Tensor) -> torch.Tensor:
    """tiles [B, n, C, t, t] each rotated by rot [B, n] quarter turns (torch.rot90 sense)."""
    out = tiles.clone()
    r = rot % 4
    for q in (1, 2, 3):  # a loop over quarter-turn counts, not over images or tiles
        m = r == q
        if bool(m.any()):
            out[m] = torch.rot90(tiles[m], q, dims=(-2, -1))
    return out


def tile_transform(images: torch.Tensor, k: int, mode: str, generator: torch.Generator | None = None, *,
                   remainder: str = "error") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Puzzle and/or rotate the k x k tiles of every image.

    images: [B, C, H, W] (any dtype, CPU or CUDA; H and W divisible by k, tiles square
    when a mode rotates). mode:

    - ``"puzzle"``: tiles permuted by a uniformly random permutation per image;
    - ``"rotation"``: each tile rotated by an independent uniform multiple of 90 degrees;
    - ``"puzzle_rotation"``: a random permutation, and at most two tiles (two distinct
      regions drawn at random) rotated by a uniform multiple of 90 degrees (0 included);
      every other region has rotation 0.

    Returns ``(out, perm, rot)``: ``out`` like ``images``; ``perm``, ``rot`` int64 [B, k*k]
    on the images' device: region i (row-major) of ``out`` holds original tile
    ``perm[b, i]`` rotated by ``torch.rot90(tile, rot[b, i], dims=(-2, -1))``. A mode that
    does not permute returns ``perm = arange(k*k)``; one that does not rotate ``rot = 0``.
    The draws come from ``generator`` (on its own device; the global RNG when None), so
    the result is deterministic given the generator's state.

    ``remainder="keep"`` accepts sides not divisible by k (e.g. 224 px with k = 3): the
    top-left ``(H // k) * k`` x ``(W // k) * k`` region is tiled, the last ``H % k`` rows and
    ``W % k`` columns stay where they are.
    """
    th, tw = _check(images, k, mode, remainder)
    if (th * k, tw * k) != tuple(images.shape[-2:]):
        inner, perm, rot = tile_transform(images[..., :th * k, :tw * k], k, mode, generator)
        out = images.clone()
        out[..., :th * k, :tw * k] = inner
        return out, perm, rot
    b, n = images.shape[0], k * k
    gdev = generator.device if generator is not None else torch.device("cpu")
    if mode == "rotation":
        perm = torch.arange(n, device=gdev).expand(b, n).clone()
    else:
        perm = torch.rand(b, n, generator=generator, device=gdev).argsort(dim=1)
    if mode == "puzzle":
        rot = torch.zeros(b, n, dtype=torch.int64, device=gdev)
    elif mode == "rotation":
        rot = torch.randint(0, 4, (b, n), generator=generator, device=gdev)
    else:
        m = min(MAX_ROTATED_PUZZLE_PIECES, n)
        where = torch.rand(b, n, generator=generator, device=gdev).argsort(dim=1)[:, :m]
        quarter = torch.randint(0, 4, (b, m), generator=generator, device=gdev)
        rot = torch.zeros(b, n, dtype=torch.int64, device=gdev).scatter_(1, where, quarter)
    perm, rot = perm.to(images.device), rot.to(images.device)
    tiles = _tiles(images, k)
    moved = torch.gather(tiles, 1, perm.view(b, n, 1, 1, 1).expand(-1, -1, *tiles.shape[2:])) \
        if mode != "rotation" else tiles
    if mode != "puzzle":
        moved = _rotate(moved, rot)
    return _untile(moved, k).contiguous(), perm, rot


def untile_transform(out: torch.Tensor, perm: torch.Tensor, rot: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`tile_transform`: the original images from ``(out, perm, rot)``."""
    V.tensor("out", out, ndim=4)
    V.tensor("perm", perm, dtypes=(torch.int64,), ndim=2)
    V.tensor("rot", rot, dtypes=(torch.int64,), ndim=2)
    b, n = perm.shape
    k = int(round(n ** 0.5))
    if k * k != n or perm.shape[0] != out.shape[0] or rot.shape != perm.shape:
        raise ValueError(f"perm and rot must be [B, k*k] with B = {out.shape[0]}, got {list(perm.shape)}, "
                         f"{list(rot.shape)}")
    tiles = _rotate(_tiles(out, k), -rot)
    orig = torch.empty_like(tiles)
    orig.scatter_(1, perm.view(b, n, 1, 1, 1).expand(-1, -1, *tiles.shape[2:]), tiles)
    return _untile(orig, k)
