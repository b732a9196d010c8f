"""SyntheticFaces throughput: images per second on one CPU core (process CPU time and
wall time), per image size, plus the data transforms' cost. Target: > 500 images/s at
112 x 112 on one core (printed as a ratio, never asserted)."""
from __future__ import annotations

import time

import cv2
import torch

from pyface.benchmarks import _harness as H
from pyface.data import SyntheticFaces
from pyface.data import transforms as T

TARGET_IMAGES_PER_S = 500.0


def add_arguments(p):
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 112])
    p.add_argument("--images", type=int, default=None, help="images per measurement (default 2000; --quick 300)")
    p.add_argument("--per-identity", type=int, default=20)


def _rate(ds, n):
    c0, t0 = time.process_time(), time.perf_counter()
    for i in range(n):
        ds[i % len(ds)]
    return n / (time.process_time() - c0), n / (time.perf_counter() - t0)


def run(args) -> dict:
    n = args.images or (300 if args.quick else 2000)
    threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    rows = []
    try:
        aug = T.Compose([T.RandomFaceCrop(1.2, 2.5, 112), T.RandomHorizontalFlip(0.5),
                         T.ColorJitter(0.3, 0.3, 0.3, 0.02)])
        cases = [(f"{s}x{s}", SyntheticFaces(max(1, n // args.per_identity), args.per_identity, image_size=s))
                 for s in args.sizes]
        cases.append(("112x112 + crop/flip/jitter",
                      SyntheticFaces(max(1, n // args.per_identity), args.per_identity, image_size=112, transform=aug)))
        for name, ds in cases:
            cpu, wall = _rate(ds, n)
            rows.append({"case": name, "images": n, "img_per_s_cpu": cpu, "img_per_s_wall": wall,
                         "vs_target": cpu / TARGET_IMAGES_PER_S})
    finally:
        torch.set_num_threads(threads[0])
        cv2.setNumThreads(threads[1])
    H.print_table(f"SyntheticFaces, one core ({H.device_name('cpu')}); target {TARGET_IMAGES_PER_S:.0f} img/s",
                  rows, [("case", "case"), ("images", "images"), ("img_per_s_cpu", "img/s (cpu time)"),
                         ("img_per_s_wall", "img/s (wall)"), ("vs_target", "x target")])
    return {"device_type": "cpu", "device": H.device_name("cpu"), "rows": rows}
