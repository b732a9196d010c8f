"""Image-folder-per-identity datasets (VGGFace2 layout): ``root/<identity>/<image>``.

Identities are the sub-folder names in sorted order (``dataset.classes``), numbered
from 0; landmarks and pose are unknown (NaN).
"""
from __future__ import annotations

import os
from typing import Iterable

from pyface.data.base import FaceDataset, read_image, write_image
from pyface.data.spec import register_dataset

__all__ = ["ImageFolderFaces", "write_image_folder", "list_class_images", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def list_class_images(root: str, classes, extensions=IMAGE_EXTENSIONS) -> tuple[list[str], list[int]]:
    """Images of ``root/<class>/`` for each class in order, sorted by name: (paths
    relative to ``root``, class index of each)."""
    exts = tuple(e.lower() for e in extensions)
    files, labels = [], []
    for label, name in enumerate(classes):
        for f in sorted(os.listdir(os.path.join(root, name))):
            if f.lower().endswith(exts):
                files.append(os.path.join(name, f))
                labels.append(label)
    return files, labels


@register_dataset
class ImageFolderFaces(FaceDataset):
    source = "image_folder"

    def __init__(self, root: str, transform=None, on_error: str = "raise",
                 extensions: Iterable[str] = IMAGE_EXTENSIONS, source: str | None = None, **kw):
        super().__init__(transform=transform, on_error=on_error, **kw)
        self.root = str(root)
        if source is not None:
            self.source = source
        if not os.path.isdir(self.root):
            raise FileNotFoundError(f"image folder root not found: {self.root}")
        exts = tuple(e.lower() for e in extensions)
        self.classes = sorted(d.name for d in os.scandir(self.root) if d.is_dir())
        self.num_identities = len(self.classes)
        self.files, self.labels = list_class_images(self.root, self.classes, exts)
        if not self.files:
            raise FileNotFoundError(f"no images ({', '.join(exts)}) under {self.root}/<identity>/")

    def __len__(self) -> int:
        return len(self.files)

    def describe(self, i: int) -> str:
        return os.path.join(self.root, self.files[i])

    def _load(self, i: int):
        return read_image(self.describe(i)), None, None, self.labels[i]


def write_image_folder(root: str, samples: Iterable[dict], ext: str = ".jpg", quality: int = 95) -> list[str]:
    """Write contract samples as ``root/<identity as %06d>/<n>.jpg``; returns the paths
    relative to ``root``."""
    os.makedirs(root, exist_ok=True)
    counts: dict[int, int] = {}
    paths = []
    for s in samples:
        ident = int(s["identity"])
        if ident < 0:
            raise ValueError("write_image_folder needs known identities (>= 0)")
        k = counts.get(ident, 0)
        counts[ident] = k + 1
        rel = os.path.join(f"{ident:06d}", f"{k:04d}{ext}")
        os.makedirs(os.path.join(root, f"{ident:06d}"), exist_ok=True)
        write_image(os.path.join(root, rel), s["image"].permute(1, 2, 0).numpy(), quality)
        paths.append(rel)
    return paths
