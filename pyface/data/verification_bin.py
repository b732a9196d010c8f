"""insightface verification ``.bin`` files (LFW, CFP-FP, AgeDB-30, ...): a pickle of
``(bins, issame_list)`` where ``bins`` holds ``2 * len(issame_list)`` encoded images
(pair k = images 2k and 2k+1). Read as insightface's ``load_bin`` does (plain
``pickle.load``, then ``encoding="bytes"`` for Python-2 pickles), without mxnet: the
images are decoded with OpenCV to RGB on access.

Unpickling runs code named in the file, so only the builtin containers and numpy
arrays that real ``.bin`` files contain are allowed; anything else is refused.
"""
from __future__ import annotations

import io
import os
import pickle
from typing import Sequence

import numpy as np

from pyface.data.base import FaceDataset, decode_image
from pyface.data.sample import DataError
from pyface.data.spec import register_dataset
from pyface.io import atomic_write

__all__ = ["VerificationBin", "read_bin", "write_bin"]

_ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"), ("builtins", "bytearray"), ("__builtin__", "bytearray")}


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def read_bin(path: str) -> tuple[list[bytes], np.ndarray]:
    """(encoded images, issame bool [P]) of a verification .bin; DataError naming the
    file when it is not one."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"verification .bin not found: {path}")
    with open(path, "rb") as f:
        data = f.read()
    obj = None
    for kw in ({}, {"encoding": "bytes"}):
        try:
            obj = _Unpickler(io.BytesIO(data), **kw).load()
            break
        except UnicodeDecodeError:
            continue
        except Exception as exc:
            raise DataError(f"{path}: not an insightface verification .bin ({type(exc).__name__}: {exc})") from exc
    if obj is None:
        raise DataError(f"{path}: not an insightface verification .bin (undecodable pickle)")
    if not isinstance(obj, (tuple, list)) or len(obj) != 2:
        raise DataError(f"{path}: expected a pickled (images, issame) pair, got {type(obj).__name__}")
    bins, issame = obj
    issame = np.asarray(issame)
    if issame.ndim != 1 or issame.dtype.kind not in "biu":
        raise DataError(f"{path}: issame must be a list of booleans, got {issame.dtype} {issame.shape}")
    if len(bins) != 2 * len(issame):
        raise DataError(f"{path}: {len(bins)} images for {len(issame)} pairs (expected {2 * len(issame)})")
    out = []
    for k, b in enumerate(bins):
        if isinstance(b, np.ndarray):
            b = b.tobytes()
        if not isinstance(b, (bytes, bytearray)):
            raise DataError(f"{path}: image {k} is a {type(b).__name__}, not encoded bytes")
        out.append(bytes(b))
    return out, issame.astype(bool)


@register_dataset
class VerificationBin(FaceDataset):
    """Images of a .bin in file order (no labels; identity -1); ``issame`` [P] and
    ``name`` (the file stem, e.g. "lfw") as attributes."""

    source = "verification_bin"

    def __init__(self, path: str, transform=None, **kw):
        kw.setdefault("check_labels", False)
        super().__init__(transform=transform, on_error="raise", **kw)
        self.path = str(path)
        self.name = os.path.splitext(os.path.basename(self.path))[0]
        self.bins, self.issame = read_bin(self.path)

    def __len__(self) -> int:
        return len(self.bins)

    def describe(self, i: int) -> str:
        return f"{self.path}[image {i}]"

    def _load(self, i: int):
        return decode_image(self.bins[i], self.describe(i)), None, None, -1


def write_bin(path: str, images: Sequence[np.ndarray], issame, ext: str = ".jpg") -> None:
    """Write RGB HxWx3 images (pairs 2k, 2k+1) and issame as a .bin (atomic)."""
    import cv2

    bins = []
    for k, img in enumerate(images):
        ok, buf = cv2.imencode(ext, cv2.cvtColor(np.asarray(img), cv2.COLOR_RGB2BGR))
        if not ok:
            raise OSError(f"cannot encode image {k}")
        bins.append(buf.tobytes())
    issame = [bool(v) for v in issame]
    if len(bins) != 2 * len(issame):
        raise ValueError(f"{len(bins)} images for {len(issame)} pairs")
    with atomic_write(path, "wb") as f:
        pickle.dump((bins, issame), f, protocol=4)
