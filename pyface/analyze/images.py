"""Reading what ``pyface analyze`` is given: image files (any bit depth or channel
count, EXIF orientation honoured, huge ones decoded at a reduced size) and the list of
inputs behind a set of paths (files, folders, videos).

Decoding is OpenCV's ``IMREAD_COLOR`` (as :func:`pyface.data.base.decode_image`):
grayscale becomes three equal channels, 16-bit samples are scaled to 8 bits, an alpha
channel is dropped, and the EXIF orientation of a JPEG is applied, so coordinates are
those of the picture as a viewer shows it. An image of more than ``max_pixels`` pixels
is decoded at 1/2, 1/4 or 1/8 of its size (JPEG: inside the decoder, so memory stays
bounded; other formats: resized after decoding) and every coordinate reported is scaled
back to the full-size picture (``LoadedImage.scale``).
"""
from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pyface.errors import DataError

__all__ = ["IMAGE_EXTENSIONS", "VIDEO_EXTENSIONS", "DEFAULT_MAX_PIXELS", "LoadedImage", "collect_inputs",
           "load_image", "to_rgb8"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".jp2", ".pgm", ".ppm", ".pbm")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv")
#: Largest picture decoded at full size (6000 x 6000: ~108 MB as 8-bit RGB).
DEFAULT_MAX_PIXELS = 36_000_000


@dataclass
class LoadedImage:
    """An image as the analyzer sees it: ``rgb`` HxWx3 uint8 and ``scale``, the
    full-size picture's pixels per pixel of ``rgb`` (1 unless it was decoded reduced);
    ``size`` (height, width) of the full-size picture as displayed."""

    rgb: np.ndarray
    scale: float
    size: tuple[int, int]
    path: str = ""


def to_rgb8(image: np.ndarray, what: str = "image") -> np.ndarray:
    """An array from the caller (HxW, HxWx1/3/4, uint8 or uint16 or float in [0, 1]) as
    HxWx3 uint8 RGB; DataError naming ``what`` otherwise."""
    a = np.asarray(image)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4) or a.shape[0] < 1 or a.shape[1] < 1:
        raise DataError(f"{what}: expected an HxW or HxWxC (C = 1, 3, 4) image array, got shape {a.shape}")
    if a.dtype == np.uint16:
        a = (a.astype(np.uint32) * 255 + 32767) // 65535
    elif a.dtype.kind == "f":
        if not np.isfinite(a).all():
            raise DataError(f"{what}: the image has non-finite values")
        a = np.clip(a, 0.0, 1.0) * 255.0 + 0.5
    elif a.dtype != np.uint8:
        raise DataError(f"{what}: expected uint8, uint16 or float pixels, got {a.dtype}")
    a = a.astype(np.uint8, copy=False)
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    return np.ascontiguousarray(a[:, :, :3])


def _header(data: bytes) -> tuple[tuple[int, int], bool] | None:
    """((height, width) as displayed, is JPEG) from the file header, without decoding;
    None when Pillow cannot tell."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow comes with matplotlib
        return None
    old = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = None  # only the header is read: no bomb to guard against here
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as im:
                w, h = im.size
                orient = im.getexif().get(0x0112, 1) if im.format in ("JPEG", "MPO", "TIFF", "WEBP") else 1
                fmt = im.format
    except Exception:  # noqa: BLE001 - not a format Pillow knows: OpenCV decides below
        return None
    finally:
        Image.MAX_IMAGE_PIXELS = old
    if orient in (5, 6, 7, 8):
        w, h = h, w
    return (h, w), fmt in ("JPEG", "MPO")


_REDUCED = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}


def load_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Read and decode one image file (module docstring); :class:`DataError` naming the
    file when it cannot be read or is not an image."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if not data:
        raise DataError(f"{path}: empty file, not an image")
    head = _header(data)
    full = head[0] if head else None
    r = 1
    if full is not None:
        while full[0] * full[1] / (r * r) > max_pixels and r < 8:
            r *= 2
    buf = np.frombuffer(data, np.uint8)
    flags = _REDUCED[r] if (r > 1 and head and head[1]) else cv2.IMREAD_COLOR
    try:
        img = cv2.imdecode(buf, flags)
    except cv2.error as exc:  # e.g. over OpenCV's own pixel limit
        raise DataError(f"{path}: cannot decode image ({' '.join(str(exc).split())[-160:]})") from exc
    if img is None:
        raise DataError(f"{path}: not an image OpenCV can decode ({len(data)} bytes)")
    if full is None:
        full = img.shape[:2]
    h, w = img.shape[:2]
    if h * w > max_pixels:  # a format decoded at full size: shrink now
        f = (max_pixels / (h * w)) ** 0.5
        img = cv2.resize(img, (max(1, int(w * f)), max(1, int(h * f))), interpolation=cv2.INTER_AREA)
    rgb = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return LoadedImage(rgb, full[1] / rgb.shape[1], (int(full[0]), int(full[1])), path)


def collect_inputs(paths, *, recursive: bool = True) -> list[tuple[str, str, str]]:
    """``paths`` (files and folders) -> sorted (kind, path, name) with kind "image" or
    "video" by extension (folders: their image and video files, recursively), name the
    path relative to the folder given (or the file name). A path that does not exist is
    a DataError naming it; a file with an unknown extension counts as an image (its
    decoding then says whether it is one)."""
    out = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            files = sorted(f for f in (p.rglob("*") if recursive else p.iterdir()) if f.is_file())
            for f in files:
                ext = f.suffix.lower()
                if ext in IMAGE_EXTENSIONS or ext in VIDEO_EXTENSIONS:
                    out.append(("video" if ext in VIDEO_EXTENSIONS else "image", str(f), str(f.relative_to(p))))
        elif p.is_file():
            kind = "video" if p.suffix.lower() in VIDEO_EXTENSIONS else "image"
            out.append((kind, str(p), p.name))
        else:
            raise DataError(f"{p}: no such file or folder")
    return out
