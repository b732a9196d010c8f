"""Base class of the file-backed datasets: the bad-sample policy and label checks.

``on_error="raise"`` (default): a corrupt/missing image or out-of-range labels raise
:class:`~pyface.data.sample.DataError` naming the dataset, index, file and reason.
``on_error="skip"``: the bad index is replaced by the next good one, the skip is
recorded in ``dataset.skipped`` (``{index: reason}``) and reported with a warning
(``warnings.warn``, so also from DataLoader worker processes, whose ``skipped`` dicts
are their own). Nothing is dropped silently.
"""
from __future__ import annotations

import os
import warnings

import cv2
import numpy as np
import torch

from pyface.data.sample import DataError, label_problem, make_sample
from pyface.io import atomic_write

__all__ = ["FaceDataset", "decode_image", "get_with_policy", "jpeg_problem", "read_image", "write_image"]


# Markers that may follow a scan's entropy-coded data in a valid JPEG: EOI, another
# table or scan (progressive / multi-scan files), restart-interval, DNL, APPn, comment.
_AFTER_SCAN = frozenset([0xD9, 0xC4, 0xCC, 0xDA, 0xDB, 0xDC, 0xDD, 0xFE, *range(0xE0, 0xF0)])


def jpeg_problem(buf: np.ndarray) -> str | None:
    """Why the JPEG bytes ``buf`` are damaged, or None (also for non-JPEG data).

    libjpeg decodes a stream whose header is intact but whose body is garbage or cut
    short into an image -- grey or noise where the data went wrong -- and says so only
    on stderr ("Corrupt JPEG data: ..."), so OpenCV returns it as if it were fine. This
    walks the marker structure instead: the segments must chain, each scan's
    entropy-coded data may hold ``FF`` only as ``FF 00`` (a stuffed byte) or a restart
    marker, the first other marker after it must be one that can follow a scan, and the
    stream must reach its end-of-image marker. Extraneous bytes a camera left before a
    marker (a libjpeg warning on images that decode fine) are not flagged."""
    n = int(buf.size)
    if n < 4 or buf[0] != 0xFF or buf[1] != 0xD8:
        return None
    pos = 2
    while pos < n:
        if buf[pos] != 0xFF:
            return f"no marker where one belongs (byte {pos})"
        while pos + 1 < n and buf[pos + 1] == 0xFF:  # fill bytes
            pos += 1
        if pos + 1 >= n:
            break
        marker = int(buf[pos + 1])
        pos += 2
        if marker == 0xD9:
            return None
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:
            continue
        if pos + 2 > n:
            break
        length = (int(buf[pos]) << 8) | int(buf[pos + 1])
        if length < 2 or pos + length > n:
            return f"a segment (marker 0x{marker:02X}) runs past the end of the file (truncated)"
        pos += length
        if marker == 0xDA:  # entropy-coded data up to the next real marker
            ff = np.flatnonzero(buf[pos:n - 1] == 0xFF) + pos
            nxt = buf[ff + 1]
            real = ff[(nxt != 0x00) & (nxt != 0xFF) & ((nxt < 0xD0) | (nxt > 0xD7))]
            if real.size == 0:
                break
            pos = int(real[0])
            if int(buf[pos + 1]) not in _AFTER_SCAN:
                return f"corrupt image data (invalid marker 0x{int(buf[pos + 1]):02X} in the scan at byte {pos})"
    return "no end-of-image marker (truncated)"


def decode_image(data: bytes | np.ndarray, what: str) -> np.ndarray:
    """Decode encoded image bytes (JPEG/PNG/...) to an HxWx3 RGB uint8 array or raise
    DataError naming ``what`` -- also for a JPEG that decodes but is damaged
    (:func:`jpeg_problem`)."""
    buf = np.frombuffer(data, dtype=np.uint8) if isinstance(data, (bytes, bytearray, memoryview)) else data
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR) if buf.size else None
    if img is None:
        raise DataError(f"{what}: cannot decode image ({buf.size} bytes)")
    problem = jpeg_problem(buf)
    if problem:
        raise DataError(f"{what}: damaged JPEG ({problem})")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_image(path: str) -> np.ndarray:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise DataError(f"{path}: cannot read image ({exc.strerror or exc})") from exc
    return decode_image(data, path)


def write_image(path: str | os.PathLike, rgb: np.ndarray, quality: int | None = 95) -> None:
    """Encode an HxWx3 RGB uint8 image by ``path``'s extension (JPEG at ``quality``; None:
    OpenCV's default) and commit it atomically. Not fsynced: the writers that call this
    write thousands of images, and the rename alone keeps a killed writer's file out."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1]
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if quality is not None and ext.lower() in (".jpg", ".jpeg") \
        else []
    ok, buf = cv2.imencode(ext, cv2.cvtColor(np.asarray(rgb), cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise OSError(f"cannot encode {path} ({ext or 'no extension'})")
    with atomic_write(path, "wb", fsync=False) as f:
        f.write(buf.tobytes())


class FaceDataset(torch.utils.data.Dataset):
    """Subclasses implement ``__len__``, ``describe(i)`` (the sample's file, for messages
    and manifests) and ``_load(i) -> (image HxWx3 RGB uint8, landmarks [68,2] or None,
    pose (yaw,pitch,roll) deg or None, identity int)``, raising DataError for unusable
    samples. Public: ``dataset[i]`` (with the ``on_error`` policy), :meth:`sample` (one
    index, no policy), :meth:`describe`, ``skipped``."""

    source = "faces"

    def __init__(self, transform=None, on_error: str = "raise", check_labels: bool = True,
                 landmark_margin: float = 0.5, max_angle: float = 180.0):
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.transform = transform
        self.on_error = on_error
        self.check_labels = check_labels
        self.landmark_margin = landmark_margin
        self.max_angle = max_angle
        self.skipped: dict[int, str] = {}

    def describe(self, i: int) -> str:
        """Where sample ``i`` comes from: its file path (``<file>#<key>`` inside a
        container file); ``#<i>`` for a dataset without files."""
        return f"#{i}"

    def _load(self, i: int):
        raise NotImplementedError

    def _source(self, i: int) -> str:
        return self.source

    def sample(self, i: int, *, check_labels: bool | None = None) -> dict:
        """Sample ``i`` as ``dataset[i]`` gives it, but without the ``on_error`` policy: a
        bad sample raises :class:`DataError`. ``check_labels`` overrides the dataset's
        setting for this call (e.g. the labeler, which replaces the labels, reads images
        whose labels are out of range) without changing the dataset."""
        try:
            image, landmarks, pose, identity = self._load(i)
        except DataError as exc:
            raise DataError(f"{self._source(i)}[{i}] {exc}") from exc
        if self.check_labels if check_labels is None else check_labels:
            h, w = image.shape[:2]
            why = label_problem(np.full((68, 2), np.nan) if landmarks is None else landmarks,
                                np.full(3, np.nan) if pose is None else pose, identity, w, h,
                                self.landmark_margin, self.max_angle)
            if why is not None:
                raise DataError(f"{self._source(i)}[{i}] {self.describe(i)}: {why}")
        sample = make_sample(image, landmarks, pose, identity, self._source(i))
        return self.transform(sample) if self.transform is not None else sample

    def __getitem__(self, index: int) -> dict:
        return get_with_policy(self, index, self.sample)


def get_with_policy(dataset, index: int, get) -> dict:
    """``get(i)`` for ``dataset[index]`` under the module docstring's bad-sample policy:
    ``dataset.on_error`` "raise" or "skip" (the next good index; recorded in
    ``dataset.skipped`` and warned about), ``dataset.source`` naming it. The one
    implementation of the policy for every dataset that has one."""
    n = len(dataset)
    if not -n <= index < n:
        raise IndexError(f"index {index} out of range for {dataset.source} of length {n}")
    index %= n
    if dataset.on_error == "raise":
        return get(index)
    for k in range(n):
        i = (index + k) % n
        if i in dataset.skipped:
            continue
        try:
            return get(i)
        except DataError as exc:
            dataset.skipped[i] = str(exc)
            warnings.warn(f"skipping bad sample ({len(dataset.skipped)} skipped so far): {exc}",
                          RuntimeWarning, stacklevel=3)
    raise DataError(f"{dataset.source}: all {n} samples are bad (first: {next(iter(dataset.skipped.values()))})")
