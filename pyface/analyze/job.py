"""``pyface analyze`` and ``pyface compare``: the jobs behind the commands.

:func:`analyze_paths`: every image (and video) behind the paths given, through one
:class:`~pyface.analyze.FaceAnalyzer`. A file that cannot be read or decoded is one line
on stderr naming it (a :class:`pyface.errors.DataError`'s message) and the rest are
processed; a picture without a face is an empty list, not an error. Outputs go through
:mod:`pyface.io` (atomic): one image -> JSON; several or a folder -> a Parquet table (one
row per face: file, face, box, score, landmarks [136], pose [3], embedding) with the
failures in its metadata; ``draw`` -> an annotated copy of each picture.

:func:`compare_files`: the cosine similarity of the best face of two pictures (the
flip-sum embeddings), and "same" when it reaches the threshold.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

from pyface.analyze.images import collect_inputs
from pyface.errors import DataError, UsageError

__all__ = ["analyze_paths", "compare_files", "write_faces_table"]


def analyze_paths(analyzer, paths, *, draw: str | os.PathLike | None = None, video_options: dict | None = None,
                  err=None) -> tuple[list[dict], list[str]]:
    """([{"file", "kind", "faces" or video summary}], [one-line errors]) for ``paths``."""
    err = err if err is not None else sys.stderr
    results, errors = [], []
    for kind, path, name in collect_inputs(paths):
        try:
            if kind == "video":
                from pyface.analyze.video import analyze_video

                opts = dict(video_options or {})
                if draw is not None:
                    opts["out_video"] = Path(draw) / (Path(name).with_suffix("").as_posix() + ".annotated.mp4")
                results.append({"file": path, "kind": "video", **analyze_video(analyzer, path, **opts)})
                continue
            img, faces = analyzer.analyze_file(path)
            if draw is not None:
                _write_drawing(analyzer, img, faces, Path(draw) / (Path(name).with_suffix("").as_posix() + ".png"))
            results.append({"file": path, "kind": "image", "size": list(img.size), "faces": faces})
        except DataError as exc:
            msg = str(exc).splitlines()[0] if str(exc) else f"{path}: unreadable"
            if path not in msg:
                msg = f"{path}: {msg}"
            errors.append(msg)
            print(f"pyface analyze: skipped {msg}", file=err)
    return results, errors


def _write_drawing(analyzer, img, faces, out: Path) -> None:
    import cv2

    from pyface.io import write_bytes_atomic

    s = 1.0 / img.scale
    scaled = []
    for f in faces:  # coordinates are full-size; the drawing is on the decoded copy
        from dataclasses import replace

        scaled.append(replace(f, box=f.box * s, keypoints=None if f.keypoints is None else f.keypoints * s,
                              landmarks=None if f.landmarks is None else f.landmarks * s))
    bgr = cv2.cvtColor(analyzer.draw_on(img.rgb, scaled), cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", bgr)
    if not ok:
        raise DataError(f"{out}: cannot encode the annotated picture")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(out, buf.tobytes())


def write_faces_table(path, results: list[dict], errors: list[str], meta: dict) -> int:
    """The image results as a Parquet table (module docstring); returns its row count."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pyface.io import atomic_path

    rows = {k: [] for k in ("file", "face", "width", "height", "box", "score", "landmarks", "pose", "embedding")}
    for r in results:
        if r["kind"] != "image":
            continue
        for i, f in enumerate(r["faces"]):
            rows["file"].append(r["file"])
            rows["face"].append(i)
            rows["height"].append(r["size"][0])
            rows["width"].append(r["size"][1])
            rows["box"].append(np.asarray(f.box, np.float32).tolist())
            rows["score"].append(float(f.score))
            for k in ("landmarks", "pose", "embedding"):
                v = getattr(f, k)
                rows[k].append(None if v is None else np.asarray(v, np.float32).reshape(-1).tolist())

    def lst(k, n):
        # variable-size lists (widths in the docstring): pyarrow 25 cannot read back a null fixed-size list
        return pa.array(rows[k], pa.list_(pa.float32()))

    table = pa.table({"file": pa.array(rows["file"], pa.string()), "face": pa.array(rows["face"], pa.int32()),
                      "width": pa.array(rows["width"], pa.int32()), "height": pa.array(rows["height"], pa.int32()),
                      "box": lst("box", 4), "score": pa.array(rows["score"], pa.float32()),
                      "landmarks": lst("landmarks", 136), "pose": lst("pose", 3), "embedding": lst("embedding", 0)})
    no_face = [r["file"] for r in results if r["kind"] == "image" and not r["faces"]]
    meta = {**meta, "errors": errors, "files_without_faces": no_face}
    table = table.replace_schema_metadata({b"pyface.analyze": json.dumps(meta, default=str).encode()})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return table.num_rows


def compare_files(analyzer, a, b, threshold: float | None) -> dict:
    """Cosine similarity of the best (highest-score) face of pictures ``a`` and ``b``."""
    if "embedding" not in analyzer.outputs:
        raise UsageError("--checkpoint: the model has no recognition head (no face embedding to compare)")
    emb = []
    for p in (a, b):
        _, faces = analyzer.analyze_file(p)
        faces = [f for f in faces if f.embedding is not None]
        if not faces:
            raise DataError(f"{p}: no face found")
        emb.append(faces[0].embedding)
    sim = float(np.dot(emb[0], emb[1]))
    out = {"a": os.fspath(a), "b": os.fspath(b), "similarity": round(sim, 6)}
    if threshold is not None:
        out["threshold"] = float(threshold)
        out["same"] = bool(sim >= threshold)
    return out
