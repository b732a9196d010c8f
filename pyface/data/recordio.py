"""insightface / MXNet RecordIO (``train.rec`` + ``train.idx``) without mxnet.

File format (dmlc-core ``recordio``): each part is ``uint32 magic (0xced7230a)``,
``uint32 lrec`` (upper 3 bits: cflag, lower 29: length), the payload, then zero padding
to a multiple of 4 bytes. A record whose payload contains the magic word at a 4-byte
aligned offset is split there into parts with cflag 1 (first), 2 (middle), 3 (last);
the reader joins them re-inserting the magic word. cflag 0 is a whole record.
``train.idx`` is text, one ``key<TAB>byte offset`` per line.

A record's payload is an ``IRHeader`` (``<IfQQ``: flag, label, id, id2; 24 bytes),
then ``flag`` float32 labels when ``flag > 0``, then the encoded image. insightface
datasets start with a header record (key 0, ``flag > 0``) whose labels are
``(first identity-record key, end key)``; keys ``1 .. label[0]-1`` are the images
(label = class id) and the identity records list each class's ``(start, end)`` keys.
"""
from __future__ import annotations

import contextlib
import os
import struct
from typing import Iterable

import numpy as np

from pyface.data.base import FaceDataset, decode_image
from pyface.data.sample import DataError
from pyface.data.spec import register_dataset
from pyface.io import atomic_write

__all__ = ["MAGIC", "IRHeader", "RecordIOReader", "RecordIOWriter", "pack_record",
           "unpack_record", "RecordIOFaces", "write_recordio"]

MAGIC = 0xCED7230A
_MAGIC_BYTES = struct.pack("<I", MAGIC)
_IR_FORMAT = "<IfQQ"
_IR_SIZE = struct.calcsize(_IR_FORMAT)  # 24


class IRHeader(tuple):
    """(flag, label, id, id2); ``label`` is a float or, when flag > 0, a float32 array."""
    __slots__ = ()

    def __new__(cls, flag, label, id, id2):  # noqa: A002 - mxnet's field names
        return super().__new__(cls, (flag, label, id, id2))

    flag = property(lambda self: self[0])
    label = property(lambda self: self[1])
    id = property(lambda self: self[2])
    id2 = property(lambda self: self[3])


def pack_record(label, payload: bytes, id: int = 0, id2: int = 0) -> bytes:  # noqa: A002
    """IRHeader + payload. A scalar ``label`` is stored inline (flag 0); a sequence is
    stored as ``flag = len(label)`` float32 values after the header."""
    if np.ndim(label) == 0:
        return struct.pack(_IR_FORMAT, 0, float(label), id, id2) + payload
    lab = np.asarray(label, dtype=np.float32).reshape(-1)
    return struct.pack(_IR_FORMAT, lab.size, 0.0, id, id2) + lab.tobytes() + payload


def unpack_record(record: bytes) -> tuple[IRHeader, bytes]:
    if len(record) < _IR_SIZE:
        raise DataError(f"record of {len(record)} bytes is shorter than an IRHeader")
    flag, label, id_, id2 = struct.unpack_from(_IR_FORMAT, record, 0)
    off = _IR_SIZE
    if flag > 0:
        if len(record) < off + 4 * flag:
            raise DataError(f"record of {len(record)} bytes too short for {flag} labels")
        label = np.frombuffer(record, dtype="<f4", count=flag, offset=off).copy()
        off += 4 * flag
    return IRHeader(flag, label, id_, id2), record[off:]


class RecordIOWriter:
    """Writes ``path.rec`` and (if ``idx_path``) the ``.idx`` index, byte-compatible with
    mxnet's ``MXIndexedRecordIO``. Both are written under temporary names
    (:func:`pyface.io.atomic_write`) and committed by :meth:`close` (or the end of a
    ``with`` block without an error): an existing file is replaced only by a complete
    one; an error inside the ``with`` block leaves it as it was."""

    def __init__(self, rec_path: str, idx_path: str | None = None):
        os.makedirs(os.path.dirname(os.path.abspath(rec_path)), exist_ok=True)
        self._files = contextlib.ExitStack()
        try:
            self._f = self._files.enter_context(atomic_write(rec_path, "wb"))
            self._idx = self._files.enter_context(atomic_write(idx_path, "w")) if idx_path else None
        except BaseException:
            self._files.close()
            raise

    def write(self, record: bytes, key: int | None = None) -> None:
        if len(record) >= 1 << 29:
            raise ValueError(f"record of {len(record)} bytes exceeds RecordIO's 2^29 limit")
        if self._idx is not None:
            if key is None:
                raise ValueError("key is required when writing an index")
            self._idx.write(f"{int(key)}\t{self._f.tell()}\n")
        n = len(record)
        start = 0
        for i in range(0, (n >> 2) << 2, 4):
            if record[i:i + 4] == _MAGIC_BYTES:
                self._part(1 if start == 0 else 2, record[start:i])
                start = i + 4
        self._part(3 if start else 0, record[start:])

    def _part(self, cflag: int, data: bytes) -> None:
        self._f.write(_MAGIC_BYTES + struct.pack("<I", (cflag << 29) | len(data)) + data)
        self._f.write(b"\0" * (-len(data) % 4))

    def close(self) -> None:
        """Commit the files, the index then the .rec (two renames: a kill between them,
        microseconds apart, pairs the new index with the previous .rec)."""
        self._files.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            self.close()
        else:  # discard the temporary files; the exception propagates
            self._files.__exit__(*exc)


class RecordIOReader:
    """Random access to an indexed ``.rec`` file by key. Safe to use from DataLoader
    workers: the file is (re)opened lazily in each process."""

    def __init__(self, rec_path: str, idx_path: str | None = None):
        self.rec_path = str(rec_path)
        self.idx_path = str(idx_path) if idx_path else os.path.splitext(self.rec_path)[0] + ".idx"
        if not os.path.exists(self.rec_path):
            raise FileNotFoundError(f"RecordIO file not found: {self.rec_path}")
        if not os.path.exists(self.idx_path):
            raise FileNotFoundError(f"RecordIO index not found: {self.idx_path} (needed for random access)")
        self.offsets: dict[int, int] = {}
        with open(self.idx_path) as f:
            for lineno, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                parts = line.split("\t")
                if len(parts) != 2:
                    raise ValueError(f"{self.idx_path}:{lineno}: expected 'key<TAB>offset', got {line!r}")
                self.offsets[int(parts[0])] = int(parts[1])
        self.keys = list(self.offsets)
        self._fh = None
        self._pid = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_fh"] = state["_pid"] = None
        return state

    def _file(self):
        if self._fh is None or self._pid != os.getpid():
            self._fh = open(self.rec_path, "rb")
            self._pid = os.getpid()
        return self._fh

    def read_idx(self, key: int) -> bytes:
        """The full record stored under ``key`` (continuation parts joined)."""
        if key not in self.offsets:
            raise DataError(f"{self.rec_path}: no record with key {key}")
        f = self._file()
        f.seek(self.offsets[key])
        out = []
        while True:
            head = f.read(8)
            if len(head) < 8:
                raise DataError(f"{self.rec_path}: truncated record at key {key}")
            magic, lrec = struct.unpack("<II", head)
            if magic != MAGIC:
                raise DataError(f"{self.rec_path}: bad magic 0x{magic:08x} in record {key} (corrupt file "
                                f"or stale .idx)")
            cflag, length = lrec >> 29, lrec & ((1 << 29) - 1)
            data = f.read(length + (-length % 4))
            if len(data) < length:
                raise DataError(f"{self.rec_path}: truncated record at key {key}")
            out.append(data[:length])
            if cflag in (0, 3):
                break
            if cflag not in (1, 2):
                raise DataError(f"{self.rec_path}: bad continuation flag {cflag} in record {key}")
            out.append(_MAGIC_BYTES)
        return b"".join(out)

    def close(self):
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __del__(self):
        if getattr(self, "_fh", None) is not None:
            self.close()


@register_dataset
class RecordIOFaces(FaceDataset):
    """An insightface face-recognition RecordIO dataset (e.g. MS1MV3 ``train.rec``).

    Identity = the record's class label; landmarks and pose are unknown (NaN).
    ``rec_path``: the ``.rec`` file; ``idx_path`` defaults to the same name with ``.idx``.
    Without a header record (key 0 with flag > 0), every indexed record is an image.
    """

    source = "recordio"

    def __init__(self, rec_path: str, idx_path: str | None = None, transform=None,
                 on_error: str = "raise", source: str | None = None, **kw):
        super().__init__(transform=transform, on_error=on_error, **kw)
        self.reader = RecordIOReader(rec_path, idx_path)
        if source is not None:
            self.source = source
        self.num_identities = None
        keys = self.reader.keys
        if 0 in self.reader.offsets:
            header, _ = unpack_record(self.reader.read_idx(0))
            if header.flag > 0:
                first_id_key = int(header.label[0])
                self.image_keys = list(range(1, first_id_key))
                self.num_identities = int(header.label[1]) - first_id_key
                return
        self.image_keys = list(keys)

    def __len__(self) -> int:
        return len(self.image_keys)

    def describe(self, i: int) -> str:
        return f"{self.reader.rec_path}#{self.image_keys[i]}"

    def _load(self, i: int):
        key = self.image_keys[i]
        header, payload = unpack_record(self.reader.read_idx(key))
        label = header.label[0] if header.flag > 0 else header.label
        image = decode_image(payload, self.describe(i))
        return image, None, None, int(label)


def write_recordio(rec_path: str, samples: Iterable[dict], idx_path: str | None = None,
                   quality: int = 95) -> int:
    """Write contract samples as an insightface ``train.rec``/``train.idx`` pair (header
    record, images labelled with their identity, identity records). Samples must have
    identity >= 0 (any order: images are grouped by identity). Returns the image count."""
    import cv2

    idx_path = idx_path or os.path.splitext(str(rec_path))[0] + ".idx"
    images: list[tuple[int, bytes]] = []
    for s in samples:
        rgb = s["image"].permute(1, 2, 0).numpy()
        ok, enc = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise ValueError("JPEG encoding failed")
        ident = int(s["identity"])
        if ident < 0:
            raise ValueError("write_recordio needs known identities (>= 0)")
        images.append((ident, enc.tobytes()))
    images.sort(key=lambda t: t[0])
    ids = sorted({i for i, _ in images})
    n = len(images)
    first_id_key = n + 1
    with RecordIOWriter(str(rec_path), idx_path) as w:
        w.write(pack_record([first_id_key, first_id_key + len(ids)], b""), key=0)
        ranges: dict[int, list[int]] = {}
        for k, (ident, data) in enumerate(images, start=1):
            w.write(pack_record(float(ident), data, id=k), key=k)
            ranges.setdefault(ident, [k, k + 1])[1] = k + 1
        for j, ident in enumerate(ids):
            w.write(pack_record(ranges[ident], b""), key=first_id_key + j)
    return n
