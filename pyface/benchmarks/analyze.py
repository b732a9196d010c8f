"""``pyface analyze`` throughput and detector recall on SyntheticFaces (CPU by default):
images/s of the analyzer on 100 synthetic pictures (detector alone; detector + a
randomly initialised ``iresnet-tiny-multi`` net -- the cost of the crops, the two
landmark passes and the flip-sum embedding, not of a trained net of useful size), the
share of those faces the detector finds and its box centre's distance from the
landmarks' face box centre (in face-box sides), and frames/s of ``analyze_video`` on a
synthetic MP4 (one face drifting; tracking, smoothing, drawing and encoding included)."""
from __future__ import annotations

import os
import tempfile
import time

import cv2
import numpy as np
import torch

from pyface.benchmarks import _harness as H


def add_arguments(p):
    p.add_argument("--images", type=int, default=100, help="synthetic pictures (default 100)")
    p.add_argument("--image-size", type=int, default=256, help="picture side in pixels (default 256)")
    p.add_argument("--frames", type=int, default=100, help="video frames (default 100)")


def _rate(fa, images, rounds=3):
    best, found = 0.0, None
    for _ in range(rounds):
        t0 = time.perf_counter()
        found = [fa.get(im) for im in images]
        best = max(best, len(images) / (time.perf_counter() - t0))
    return best, found


def run(args) -> dict:
    from pyface import runtime
    from pyface.analyze import FaceAnalyzer
    from pyface.analyze.video import analyze_video
    from pyface.data import SyntheticFaces
    from pyface.models import build_model

    n = 30 if args.quick else args.images
    ds = SyntheticFaces(-(-n // 4), 4, image_size=args.image_size, seed=11)
    samples = [ds[i] for i in range(n)]
    images = [np.asarray(s["image"]) for s in samples]
    if images[0].shape[0] == 3:  # CHW tensors -> HWC
        images = [np.ascontiguousarray(im.transpose(1, 2, 0)) for im in images]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        ck = runtime.save_model(build_model("iresnet-tiny-multi").eval(), os.path.join(tmp, "tiny.pt"))
        plain = FaceAnalyzer(detector="blazeface", mesh=False, device="cpu")
        net = FaceAnalyzer(ck, detector="blazeface", mesh=False, device="cpu")
        for name, fa in (("blazeface only", plain), ("blazeface + iresnet-tiny-multi (random)", net)):
            rate, found = _rate(fa, images, 1 if args.quick else 2)
            rows.append({"case": name, "images": n, "img_per_s": rate})
        hits, offs = 0, []
        for s, faces in zip(samples, found):
            lm = np.asarray(s["landmarks"], np.float64)
            lo, hi = lm.min(0), lm.max(0)
            side = max(hi - lo)
            if faces:
                hits += 1
                c = (faces[0].box[:2] + faces[0].box[2:]) / 2
                offs.append(float(np.linalg.norm(c - (lo + hi) / 2) / side))
        # video: one synthetic face drifting over a bigger canvas
        frames = 20 if args.quick else args.frames
        S = args.image_size
        base = cv2.copyMakeBorder(cv2.cvtColor(images[0], cv2.COLOR_RGB2BGR), S // 2, S // 2, S // 2, S // 2,
                                  cv2.BORDER_REFLECT)
        src = os.path.join(tmp, "clip.mp4")
        w = cv2.VideoWriter(src, cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (2 * S, 2 * S))
        for i in range(frames):
            M = np.float32([[1, 0, 0.5 * i], [0, 1, 0.25 * i]])
            w.write(cv2.warpAffine(base, M, (2 * S, 2 * S), borderMode=cv2.BORDER_REFLECT))
        w.release()
        vid = {}
        for name, fa in (("video: blazeface only", plain), ("video: blazeface + iresnet-tiny-multi (random)", net)):
            r = analyze_video(fa, src, out_video=os.path.join(tmp, "out.mp4"), out_table=os.path.join(tmp, "t.parquet"))
            rows.append({"case": name, "images": r["frames"], "img_per_s": r["frames_per_s"]})
            vid[name] = {"frames": r["frames"], "faces": r["faces"], "tracks": r["tracks"]}
    load = os.getloadavg()
    H.print_table(f"pyface analyze on {H.device_name('cpu')}, torch threads {torch.get_num_threads()}, "
                  f"load average {load[0]:.1f}", rows, [("case", "case"), ("images", "pictures/frames"),
                                                        ("img_per_s", "per s (wall)")])
    recall = hits / n
    print(f"detector recall on {n} SyntheticFaces ({S} px): {recall:.3f}; box centre offset from the landmark face "
          f"box centre: median {np.median(offs):.3f}, p95 {np.percentile(offs, 95):.3f} face-box sides")
    return {"device_type": "cpu", "device": H.device_name("cpu"), "rows": rows,
            "torch_threads": torch.get_num_threads(),
            "load_average": [round(v, 2) for v in load], "note": "under contention (shared machine); wall clock",
            "detector_recall": recall, "centre_offset_median": float(np.median(offs)),
            "centre_offset_p95": float(np.percentile(offs, 95)), "video": vid}
