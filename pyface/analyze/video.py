"""Video: frames streamed through the analyzer, faces tracked across frames, their
landmarks and pose smoothed, an annotated MP4 and a per-frame table.

- Frames are read one at a time with OpenCV (``cv2.VideoCapture``), so memory holds one
  frame whatever the video's length.
- :class:`FaceTracker`: detections of consecutive frames are matched greedily by box
  IoU (best pairs first, IoU >= ``iou``); an unmatched detection starts a new track, a
  track unseen for more than ``max_missed`` frames ends. Track ids are stable integers.
- :class:`OneEuroFilter` (Casiez et al., CHI 2012): a low-pass filter whose cut-off
  rises with the signal's speed -- steady heads lose their jitter, fast turns do not
  lag. ``min_cutoff`` (Hz; lower: smoother at rest), ``beta`` (speed coefficient;
  higher: less lag when moving), ``d_cutoff`` (Hz, for the speed estimate). Each track
  filters its box, landmarks and pose (angles in degrees) with its own filter state,
  in the video's time (frame index / fps).
"""
from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from pyface.errors import DataError

__all__ = ["FaceTracker", "OneEuroFilter", "SmoothingParams", "Track", "analyze_video"]


@dataclass(frozen=True)
class SmoothingParams:
    """One-Euro parameters (see the module docstring); ``enabled=False`` keeps raw values."""

    min_cutoff: float = 1.0
    beta: float = 0.05
    d_cutoff: float = 1.0
    enabled: bool = True

    def __post_init__(self):
        for name in ("min_cutoff", "d_cutoff"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a positive number of Hz, got {v!r}")
        if not (math.isfinite(self.beta) and self.beta >= 0):
            raise ValueError(f"beta must be >= 0, got {self.beta!r}")


def _alpha(cutoff, dt: float):
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """One-Euro filter of an array signal (any shape, filtered element-wise)."""

    def __init__(self, params: SmoothingParams = SmoothingParams()):
        self.params = params
        self.x = self.dx = self.t = None

    def __call__(self, x, t: float) -> np.ndarray:
        x = np.asarray(x, np.float64)
        p = self.params
        if not p.enabled:
            return x
        if self.x is None or not np.isfinite(self.x).all() or x.shape != self.x.shape:
            self.x, self.dx, self.t = x.copy(), np.zeros_like(x), float(t)
            return x
        dt = float(t) - self.t
        if dt <= 0:
            return self.x.copy()
        dx = (x - self.x) / dt
        a_d = _alpha(p.d_cutoff, dt)
        self.dx = a_d * dx + (1 - a_d) * self.dx
        cutoff = p.min_cutoff + p.beta * np.abs(self.dx)
        a = _alpha(cutoff, dt)
        self.x = a * x + (1 - a) * self.x
        self.t = float(t)
        return self.x.copy()


def _iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = lambda z: np.clip(z[:, 2] - z[:, 0], 0, None) * np.clip(z[:, 3] - z[:, 1], 0, None)  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


@dataclass
class Track:
    id: int
    box: np.ndarray
    last_frame: int
    filters: dict = field(default_factory=dict)


class FaceTracker:
    """IoU tracker (module docstring): ``update(boxes, frame)`` -> a track id per box."""

    def __init__(self, iou: float = 0.3, max_missed: int = 10, smoothing: SmoothingParams = SmoothingParams()):
        if not 0 < iou <= 1:
            raise ValueError(f"iou must be in (0, 1], got {iou!r}")
        if int(max_missed) < 0:
            raise ValueError(f"max_missed must be >= 0, got {max_missed!r}")
        self.iou, self.max_missed, self.smoothing = float(iou), int(max_missed), smoothing
        self.tracks: list[Track] = []
        self.next_id = 0

    def update(self, boxes: np.ndarray, frame: int) -> list[Track]:
        self.tracks = [t for t in self.tracks if frame - t.last_frame <= self.max_missed + 1]
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        m = _iou_matrix(np.array([t.box for t in self.tracks]).reshape(-1, 4), boxes)
        out: list[Track | None] = [None] * len(boxes)
        used_t, used_b = set(), set()
        for flat in np.argsort(-m, axis=None):
            ti, bi = np.unravel_index(flat, m.shape)
            if m[ti, bi] < self.iou:
                break
            if ti in used_t or bi in used_b:
                continue
            used_t.add(ti)
            used_b.add(bi)
            out[bi] = self.tracks[ti]
        for bi in range(len(boxes)):
            if out[bi] is None:
                out[bi] = Track(self.next_id, boxes[bi], frame)
                self.next_id += 1
                self.tracks.append(out[bi])
            out[bi].box, out[bi].last_frame = boxes[bi], frame
        return out

    def smooth(self, track: Track, key: str, value, t: float) -> np.ndarray:
        f = track.filters.setdefault(key, OneEuroFilter(self.smoothing))
        return f(value, t)


def _video_frames(cap, limit):
    n = 0
    while limit is None or n < limit:
        ok, bgr = cap.read()
        if not ok:
            return
        yield n, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        n += 1


def analyze_video(analyzer, path, *, out_video: str | os.PathLike | None = None,
                  out_table: str | os.PathLike | None = None, smoothing: SmoothingParams = SmoothingParams(),
                  iou: float = 0.3, max_missed: int = 10, max_frames: int | None = None, embeddings: bool = False,
                  progress: bool = False) -> dict:
    """Stream a video through ``analyzer`` (a :class:`pyface.analyze.FaceAnalyzer`):
    track, smooth, and write the annotated MP4 (``out_video``) and the per-frame table
    (``out_table``, Parquet: one row per face and frame: frame, time_s, track, box,
    score, landmarks and pose smoothed, pose_raw, embedding with ``embeddings``). Both
    files are committed atomically when the video is done (an interrupted run leaves
    neither). Returns a summary with frames/s. A video OpenCV cannot open or decode is a
    :class:`DataError` naming it."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such video file")
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        raise DataError(f"{path}: cannot open video (not a video OpenCV can decode)")
    fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
    fps = fps if math.isfinite(fps) and fps > 0 else 25.0
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    tracker = FaceTracker(iou, max_missed, smoothing)
    rows = {c: [] for c in ("frame", "time_s", "track", "box", "score", "landmarks", "pose", "pose_raw", "embedding")}
    with contextlib.ExitStack() as commit:  # the MP4 is committed when the block ends without an error
        writer = None
        if out_video is not None:
            from pyface.io import atomic_path

            out_video = Path(out_video)
            out_video.parent.mkdir(parents=True, exist_ok=True)
            tmp_video = commit.enter_context(atomic_path(out_video, keep_suffix=True))  # cv2 reads the container off it
            writer = cv2.VideoWriter(str(tmp_video), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
            if not writer.isOpened():
                raise DataError(f"{out_video}: OpenCV cannot write an MP4 video here (no encoder)")
        bar = None
        if progress:
            from tqdm import tqdm

            total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
            bar = tqdm(total=min(total, max_frames) if total and max_frames else total, unit="frame",
                       desc=os.path.basename(path), dynamic_ncols=True)
        frames = faces_total = 0
        t0 = time.perf_counter()
        try:
            for n, frame in _video_frames(cap, max_frames):
                t = n / fps
                faces = analyzer.get(frame)
                tracks = tracker.update(np.array([f.box for f in faces]).reshape(-1, 4), n)
                for f, tr in zip(faces, tracks):
                    raw_pose = f.pose
                    f.box = tracker.smooth(tr, "box", f.box, t)
                    if f.landmarks is not None:
                        f.landmarks = tracker.smooth(tr, "landmarks", f.landmarks, t).astype(np.float32)
                    if f.pose is not None:
                        f.pose = tracker.smooth(tr, "pose", f.pose, t).astype(np.float32)
                    rows["frame"].append(n)
                    rows["time_s"].append(t)
                    rows["track"].append(tr.id)
                    rows["box"].append(np.asarray(f.box, np.float32))
                    rows["score"].append(float(f.score))
                    rows["landmarks"].append(None if f.landmarks is None else f.landmarks.reshape(-1))
                    rows["pose"].append(f.pose)
                    rows["pose_raw"].append(raw_pose)
                    rows["embedding"].append(f.embedding if embeddings else None)
                faces_total += len(faces)
                if writer is not None:
                    from pyface.analyze.draw import draw_faces

                    img = draw_faces(frame, faces)
                    cv2.putText(img, f"{n}", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
                    writer.write(cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
                frames += 1
                if bar is not None:
                    bar.update(1)
            seconds = time.perf_counter() - t0
            if frames == 0:
                raise DataError(f"{path}: no frame could be decoded")
            if writer is not None:
                writer.release()
                writer = None
            if out_table is not None:
                _write_table(out_table, rows, {"video": path, "fps": fps, "width": w, "height": h})
        finally:
            cap.release()
            if writer is not None:
                writer.release()
            if bar is not None:
                bar.close()
    return {"video": path, "frames": frames, "faces": faces_total, "tracks": tracker.next_id, "video_fps": fps,
            "seconds": seconds, "frames_per_s": frames / seconds if seconds > 0 else float("nan"),
            "annotated": None if out_video is None else str(out_video),
            "table": None if out_table is None else str(out_table)}


def _write_table(path, rows: dict, meta: dict) -> None:
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from pyface.io import atomic_path

    def col(values, width):
        f32 = pa.float32()
        return pa.array([None if v is None else np.asarray(v, np.float32).reshape(-1).tolist() for v in values],
                        type=pa.list_(f32))  # variable-size: pyarrow 25 cannot read back null fixed-size lists

    table = pa.table({"frame": pa.array(rows["frame"], pa.int64()), "time_s": pa.array(rows["time_s"], pa.float64()),
                      "track": pa.array(rows["track"], pa.int64()), "box": col(rows["box"], 4),
                      "score": pa.array(rows["score"], pa.float32()), "landmarks": col(rows["landmarks"], 136),
                      "pose": col(rows["pose"], 3), "pose_raw": col(rows["pose_raw"], 3),
                      "embedding": col(rows["embedding"], 0)})
    table = table.replace_schema_metadata({b"pyface.video": json.dumps(meta).encode()})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
