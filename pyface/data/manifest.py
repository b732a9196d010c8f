"""The pseudo-labeled training set manifest (PLTD): one Parquet file, one row per image.

Columns (:data:`MANIFEST_SCHEMA`; open with pyarrow, pandas, polars, DuckDB, ...):

- ``image``: string. A file path, relative to the manifest's directory unless absolute,
  or a RecordIO reference ``<path/to/train.rec>#<key>`` (path relative likewise).
- ``identity``: int64, the (merged) identity label; -1 when unknown.
- ``landmarks``: fixed_size_list<float32>[136], the 68 (x, y) pixel points of that
  image flattened as x0, y0, x1, y1, ... (iBUG order, see pyface.data.sample); NaN unknown.
- ``pose``: fixed_size_list<float32>[3], (yaw, pitch, roll) degrees; NaN unknown.
- ``source``: string, the dataset the image came from (e.g. "vggface2", "ms1mv3", "300w_lp").

The schema metadata key ``pyface.manifest`` holds a JSON object with the format version
and these conventions. The labeler writes manifests with :func:`write_manifest`.
"""
from __future__ import annotations

import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pyface.data.base import FaceDataset, read_image
from pyface.data.sample import DataError
from pyface.data.spec import register_dataset
from pyface.io import atomic_path

__all__ = ["MANIFEST_SCHEMA", "MANIFEST_VERSION", "write_manifest", "write_manifest_dataset", "read_manifest",
           "ManifestDataset"]

MANIFEST_VERSION = 1
_META = {
    "version": MANIFEST_VERSION,
    "landmarks": "iBUG-68 (x, y) pixels of the referenced image, flattened x0,y0,x1,y1,...; NaN unknown",
    "pose": "(yaw, pitch, roll) degrees; NaN unknown",
    "identity": "int64, -1 unknown",
    "image": "path relative to the manifest directory (or absolute), or <file.rec>#<key>",
}

MANIFEST_SCHEMA = pa.schema(
    [
        pa.field("image", pa.string(), nullable=False),
        pa.field("identity", pa.int64(), nullable=False),
        pa.field("landmarks", pa.list_(pa.float32(), 136), nullable=False),
        pa.field("pose", pa.list_(pa.float32(), 3), nullable=False),
        pa.field("source", pa.string(), nullable=False),
    ],
    metadata={"pyface.manifest": json.dumps(_META)},
)


def write_manifest(path: str, image, identity, landmarks, pose, source) -> pa.Table:
    """Write a manifest. ``image``: N strings; ``identity``: N ints; ``landmarks``:
    [N, 68, 2]; ``pose``: [N, 3] (yaw, pitch, roll) degrees; ``source``: a str or N strs.
    Returns the written table."""
    image = [str(p) for p in image]
    n = len(image)
    ident = np.asarray(identity, dtype=np.int64).reshape(-1)
    lm = np.asarray(landmarks, dtype=np.float32)
    ps = np.asarray(pose, dtype=np.float32)
    src = [source] * n if isinstance(source, str) else [str(s) for s in source]
    if ident.shape != (n,):
        raise ValueError(f"identity must have {n} entries, got {ident.shape}")
    if lm.shape != (n, 68, 2):
        raise ValueError(f"landmarks must be [{n}, 68, 2], got {lm.shape}")
    if ps.shape != (n, 3):
        raise ValueError(f"pose must be [{n}, 3], got {ps.shape}")
    if len(src) != n:
        raise ValueError(f"source must have {n} entries, got {len(src)}")
    if (ident < -1).any():
        raise ValueError("identity must be >= -1")
    table = pa.Table.from_arrays(
        [
            pa.array(image, pa.string()),
            pa.array(ident, pa.int64()),
            pa.FixedSizeListArray.from_arrays(pa.array(lm.reshape(-1)), 136),
            pa.FixedSizeListArray.from_arrays(pa.array(ps.reshape(-1)), 3),
            pa.array(src, pa.string()),
        ],
        schema=MANIFEST_SCHEMA,
    )
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return table


def write_manifest_dataset(root: str, samples, name: str = "manifest.parquet", source: str | None = None) -> str:
    """Write contract samples as JPEGs under ``root/images/<identity>/`` plus a manifest
    ``root/<name>`` referencing them (relative paths). Returns the manifest path."""
    import torch

    from pyface.data.folder import write_image_folder

    samples = list(samples)
    rel = write_image_folder(os.path.join(root, "images"), samples)
    path = os.path.join(root, name)
    write_manifest(path, [os.path.join("images", r) for r in rel], [int(s["identity"]) for s in samples],
                   torch.stack([s["landmarks"] for s in samples]).numpy(),
                   torch.stack([s["pose"] for s in samples]).numpy(),
                   [source or s["source"] for s in samples])
    return path


def read_manifest(path: str) -> pa.Table:
    """Read and validate a manifest: every column present with a compatible type
    (DataError naming the file and the column)."""
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"{path}: not a readable Parquet manifest ({exc})") from exc
    for field in MANIFEST_SCHEMA:
        if field.name not in table.column_names:
            raise DataError(f"{path}: manifest is missing column {field.name!r}")
        t = table.schema.field(field.name).type
        if field.name in ("landmarks", "pose"):
            ok = (pa.types.is_list(t) or pa.types.is_fixed_size_list(t) or pa.types.is_large_list(t)) \
                and pa.types.is_floating(t.value_type)
        elif field.name == "identity":
            ok = pa.types.is_integer(t)
        else:
            ok = pa.types.is_string(t) or pa.types.is_large_string(t)
        if not ok:
            raise DataError(f"{path}: manifest column {field.name!r} has type {t}, expected {field.type}")
    return table


def null_rows(table: pa.Table, name: str) -> np.ndarray:
    """Row indices where column ``name`` is null (the schema declares every column
    non-null, but a file written by other tools may hold nulls)."""
    col = table.column(name).combine_chunks()
    if not col.null_count:
        return np.zeros(0, np.int64)
    return np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))


def _nulls(path: str, name: str, rows: np.ndarray) -> str:
    return (f"{path}: manifest column {name!r} is null in {len(rows)} row(s) (first: row {int(rows[0])}); the "
            "manifest format declares it non-null")


def _list_column(table: pa.Table, name: str, width: int, path: str) -> np.ndarray:
    col = table.column(name).combine_chunks()
    if col.null_count:
        raise DataError(_nulls(path, name, null_rows(table, name)))
    values = col.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
    if values.size != width * len(table):
        raise DataError(f"{path}: manifest column {name!r} rows must hold {width} values each")
    return values.reshape(len(table), width)


@register_dataset
class ManifestDataset(FaceDataset):
    """A dataset over a manifest. ``root``: base directory for relative image references
    (default: the manifest's directory). ``source`` of each sample is the row's source."""

    def __init__(self, path: str, root: str | None = None, transform=None, on_error: str = "raise", **kw):
        super().__init__(transform=transform, on_error=on_error, **kw)
        self.path = str(path)
        self.root = str(root) if root is not None else os.path.dirname(os.path.abspath(self.path))
        table = read_manifest(self.path)
        for col in ("identity", "source"):
            bad = null_rows(table, col)
            if len(bad):
                raise DataError(_nulls(self.path, col, bad))
        bad = null_rows(table, "image")
        if len(bad) and on_error == "raise":  # under "skip" those rows are bad samples (_load)
            raise DataError(_nulls(self.path, "image", bad) + "; on_error: skip leaves those rows out")
        self.images = table.column("image").to_pylist()
        self.identity = table.column("identity").to_numpy().astype(np.int64)
        self.landmarks = _list_column(table, "landmarks", 136, self.path).reshape(-1, 68, 2)
        self.pose = _list_column(table, "pose", 3, self.path)
        self.sources = table.column("source").to_pylist()
        # Identities are 0-based class indices (-1: unknown), so the classifier needs
        # max + 1 classes; the trainer reads this.
        self.num_identities = int(self.identity.max()) + 1 if len(self.identity) else 0
        self._readers: dict[str, object] = {}

    def __len__(self) -> int:
        return len(self.images)

    def _resolve(self, ref: str) -> str:
        return ref if os.path.isabs(ref) else os.path.join(self.root, ref)

    def describe(self, i: int) -> str:
        ref = self.images[i]
        return self._resolve(ref) if ref is not None else f"{self.path}#row{i}"

    def _load(self, i: int):
        ref = self.images[i]
        if ref is None:
            raise DataError(f"{self.path}: row {i} has no image path (null)")
        if "#" in ref and ref.split("#", 1)[0].endswith(".rec"):
            from pyface.data.base import decode_image
            from pyface.data.recordio import RecordIOReader, unpack_record

            rec, key = ref.rsplit("#", 1)
            rec = self._resolve(rec)
            reader = self._readers.get(rec)
            if reader is None:
                reader = self._readers[rec] = RecordIOReader(rec)
            try:
                _, payload = unpack_record(reader.read_idx(int(key)))
            except ValueError as exc:
                raise DataError(f"{ref}: {exc}") from exc
            image = decode_image(payload, ref)
        else:
            image = read_image(self._resolve(ref))
        return image, self.landmarks[i], self.pose[i], int(self.identity[i])

    def _source(self, i: int) -> str:
        return self.sources[i]
