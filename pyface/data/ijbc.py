"""IJB-C 1:1 verification set in insightface's layout (``eval_ijbc.py``):

- ``<root>/meta/ijbc_face_tid_mid.txt``: ``image_name template_id media_id`` per image;
- ``<root>/meta/ijbc_template_pair_label.txt``: ``template1 template2 label`` per pair
  (15,658,489 lines);
- ``<root>/meta/ijbc_name_5pts_score.txt``: ``image_name x1 y1 ... x5 y5 faceness`` per
  image, in the same order as the tid/mid file;
- ``<root>/loose_crop/<image_name>``: the images.

:class:`IJBC` reads and cross-checks the meta files before any inference (missing
files, mismatched image lists, pairs naming unknown templates raise errors naming the
file); :class:`IJBCFaces` yields the 5-point-aligned crops. ``target="IJBB"`` reads the
IJB-B files of the same layout.
"""
from __future__ import annotations

import os
from typing import Iterable

import numpy as np

from pyface.data.align import align_face
from pyface.data.base import FaceDataset, read_image, write_image
from pyface.data.sample import DataError
from pyface.data.spec import register_dataset
from pyface.io import write_text_atomic

__all__ = ["IJBC", "IJBCFaces", "write_ijbc"]


def _read_table(path: str, ncols: int, types) -> list[np.ndarray]:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    if not os.path.isfile(path):
        raise FileNotFoundError(f"IJB-C meta file missing: {path}")
    names = [f"c{k}" for k in range(ncols)]
    try:
        tab = pcsv.read_csv(path, read_options=pcsv.ReadOptions(column_names=names),
                            parse_options=pcsv.ParseOptions(delimiter=" "),
                            convert_options=pcsv.ConvertOptions(column_types={n: t for n, t in zip(names, types)}))
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise DataError(f"{path}: expected {ncols} space-separated columns per line ({exc})") from exc
    cols = []
    for n, t in zip(names, types):
        c = tab.column(n)
        if c.null_count:
            raise DataError(f"{path}: empty values in column {names.index(n) + 1}")
        cols.append(np.asarray(c.to_pylist(), dtype=object) if t == pa.string() else c.to_numpy())
    return cols


class IJBC:
    """Meta data of an IJB-C root: ``names``, ``templates``, ``medias``, ``landmarks5``
    [N, 5, 2], ``faceness`` [N], pairs ``t1``, ``t2``, ``labels``."""

    def __init__(self, root: str, target: str = "IJBC"):
        import pyarrow as pa

        self.root, self.target = str(root), target
        if not os.path.isdir(self.root):
            raise FileNotFoundError(f"IJB-C root not found: {self.root}")
        meta = os.path.join(self.root, "meta")
        p = target.lower()
        self.tid_mid_path = os.path.join(meta, f"{p}_face_tid_mid.txt")
        self.pair_path = os.path.join(meta, f"{p}_template_pair_label.txt")
        self.pts_path = os.path.join(meta, f"{p}_name_5pts_score.txt")
        self.image_dir = os.path.join(self.root, "loose_crop")
        for f in (self.tid_mid_path, self.pair_path, self.pts_path):
            if not os.path.isfile(f):
                raise FileNotFoundError(f"IJB-C meta file missing: {f}")
        if not os.path.isdir(self.image_dir):
            raise FileNotFoundError(f"IJB-C image folder missing: {self.image_dir}")
        names, self.templates, self.medias = _read_table(self.tid_mid_path, 3, [pa.string(), pa.int64(), pa.int64()])
        self.t1, self.t2, labels = _read_table(self.pair_path, 3, [pa.int64()] * 3)
        if not np.isin(labels, (0, 1)).all():
            raise DataError(f"{self.pair_path}: labels must be 0 or 1")
        self.labels = labels.astype(bool)
        cols = _read_table(self.pts_path, 12, [pa.string()] + [pa.float64()] * 11)
        if len(cols[0]) != len(names) or not np.array_equal(cols[0], names):
            k = next((i for i, (a, b) in enumerate(zip(cols[0], names)) if a != b), min(len(cols[0]), len(names)))
            raise DataError(f"{self.pts_path}: its image list differs from {self.tid_mid_path} "
                            f"({len(cols[0])} vs {len(names)} lines, first difference at line {k + 1})")
        self.names = names
        if any("/" in n for n in names):
            missing = [n for n in names if not os.path.isfile(os.path.join(self.image_dir, n))]
        else:  # one directory listing: cheap even for IJB-C's 469k images
            present = set(os.listdir(self.image_dir))
            missing = [n for n in names if n not in present]
        if missing:
            raise FileNotFoundError(f"{os.path.join(self.image_dir, missing[0])}: image missing "
                                    f"({len(missing)} of {len(names)} listed in {self.pts_path} are absent)")
        self.landmarks5 = np.stack(cols[1:11], 1).reshape(-1, 5, 2)
        self.faceness = cols[11].astype(np.float32)
        known = np.unique(self.templates)
        for side, t in (("first", self.t1), ("second", self.t2)):
            bad = ~np.isin(t, known)
            if bad.any():
                k = int(np.flatnonzero(bad)[0])
                raise DataError(f"{self.pair_path}: {int(bad.sum())} pair(s) name templates (column {side}) "
                                f"absent from {self.tid_mid_path} (first: template {int(t[k])} on line {k + 1})")

    def __len__(self) -> int:
        return len(self.names)

    def faces(self, size: int = 112, **kw) -> "IJBCFaces":
        return IJBCFaces(self, size, **kw)


@register_dataset
class IJBCFaces(FaceDataset):
    """Aligned ``size`` x ``size`` RGB crops of the IJB-C images, in meta order."""

    source = "ijbc"

    def __init__(self, meta: IJBC, size: int = 112, **kw):
        kw.setdefault("check_labels", False)
        super().__init__(**kw)
        self.meta, self.size = meta, int(size)

    def __len__(self) -> int:
        return len(self.meta)

    def describe(self, i: int) -> str:
        return os.path.join(self.meta.image_dir, str(self.meta.names[i]))

    def _load(self, i: int):
        img = read_image(self.describe(i))
        return align_face(img, self.meta.landmarks5[i], self.size), None, None, -1


def write_ijbc(root: str, images: Iterable[np.ndarray], points5, templates, medias, pairs,
               faceness=None, target: str = "IJBC") -> list[str]:
    """Write RGB images with their five points, template/media ids and pairs
    ``[(t1, t2, label)]`` in the IJB-C layout (tests and the demo). Returns image names."""
    os.makedirs(os.path.join(root, "meta"), exist_ok=True)
    os.makedirs(os.path.join(root, "loose_crop"), exist_ok=True)
    p = target.lower()
    names, pts_lines, tid_lines = [], [], []
    images = list(images)
    faceness = np.ones(len(images)) if faceness is None else np.asarray(faceness)
    for k, img in enumerate(images):
        name = f"{k + 1}.jpg"
        write_image(os.path.join(root, "loose_crop", name), img, quality=None)
        pts = " ".join(f"{v:.3f}" for v in np.asarray(points5[k], np.float64).reshape(10))
        pts_lines.append(f"{name} {pts} {float(faceness[k]):.6f}")
        tid_lines.append(f"{name} {int(templates[k])} {int(medias[k])}")
        names.append(name)
    for fname, lines in ((f"{p}_face_tid_mid.txt", tid_lines), (f"{p}_name_5pts_score.txt", pts_lines),
                         (f"{p}_template_pair_label.txt", [f"{int(a)} {int(b)} {int(c)}" for a, b, c in pairs])):
        write_text_atomic(os.path.join(root, "meta", fname), "\n".join(lines) + "\n")
    return names
