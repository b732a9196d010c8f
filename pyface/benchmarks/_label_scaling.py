"""``pyface bench label --ranks 1 2 --cpu-workers 0 1``: images/s of the whole labeling
job (:func:`pyface.label.landmarks.label_dataset`) per (ranks, CPU workers) configuration,
measured side by side.

Each configuration runs as a real job: ``R`` processes in a gloo process group (as under
torchrun), each with ``K`` CPU worker processes, labeling the same in-memory images
(rendered before the clock starts) into a fresh folder. The clock runs from a barrier
after every rank has built its labeler and warmed it up (workers spawned, MediaPipe
loaded) to the end of the job (every shard written, rank 0's manifest and summary);
process start-up is not timed. Configurations are interleaved (A B C D, D C B A, ...)
for ``--repeats`` rounds; per configuration the median images/s and its spread (min,
max over rounds). Where the time goes comes from the job's own ``seconds_by_stage``
(process-seconds per stage, workers included), so the MediaPipe share is measured in the
same runs.
"""
from __future__ import annotations

import json
import os
import socket
import statistics
import tempfile
import time
from pathlib import Path

import torch

STAGES = ("warp", "net", "eyes", "mediapipe", "fit", "cpu_wait")


class _Images(torch.utils.data.Dataset):
    """Pre-rendered face crops: reading costs nothing measurable (decoding is the
    DataLoader's --workers' job, not what this benchmark measures)."""

    source = "bench"

    def __init__(self, n: int, size: int, seed: int = 0):
        from pyface.data import SyntheticFaces

        ds = SyntheticFaces(n, 1, image_size=size, seed=seed)
        self.items = [ds[i] for i in range(n)]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        s = self.items[i]
        return {"image": s["image"], "identity": s["identity"], "source": "bench"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank: int, world: int, port: int, cfg: dict, out: str, result: str) -> None:
    if world > 1:
        os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                          MASTER_PORT=str(port))
    import cv2

    torch.set_num_threads(1)  # one core per rank for its own work; the workers are the other cores
    cv2.setNumThreads(1)
    from pyface.benchmarks.label import _net
    from pyface.distributed import run_job, setup
    from pyface.label import Labeler
    from pyface.label.landmarks import label_dataset
    from pyface.work_split import WorkSplit

    def job():
        ctx, device = setup(torch.device(cfg["device"]))
        split = WorkSplit(ctx)
        ds = _Images(cfg["images"], cfg["image_size"])
        with Labeler(_net(cfg["preset"]), mediapipe=cfg["mediapipe"], views=cfg["views"], device=device,
                     cpu_workers=cfg["cpu_workers"]) as lab:
            warm = [ds[i]["image"].permute(1, 2, 0).numpy().copy() for i in range(2)]
            lab.label_arrays(warm)  # workers spawned, MediaPipe graph built
            for k in lab.timings:
                lab.timings[k] = 0.0
            split.barrier()
            t0 = time.perf_counter()
            summary = label_dataset(ds, lab, out, shard_size=cfg["shard_size"], batch_size=cfg["batch_size"],
                                    progress=False, split=split)
            wall = time.perf_counter() - t0
        if summary is not None:
            Path(result).write_text(json.dumps({"wall_s": wall, "summary": summary}))

    run_job(job)


def run_config(cfg: dict, ranks: int, workers: int) -> dict:
    """One timed job with ``ranks`` processes and ``workers`` CPU workers each."""
    import torch.multiprocessing as mp

    cfg = {**cfg, "cpu_workers": workers}
    with tempfile.TemporaryDirectory() as tmp:
        result = os.path.join(tmp, "result.json")
        port = _free_port()
        ctx = mp.get_context("spawn")
        procs = [ctx.Process(target=_rank, args=(r, ranks, port, cfg, os.path.join(tmp, "out"), result))
                 for r in range(ranks)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        if any(p.exitcode != 0 for p in procs):
            raise RuntimeError(f"bench label: a rank of the ({ranks} ranks, {workers} workers) job failed: "
                               f"exit codes {[p.exitcode for p in procs]}")
        return json.loads(Path(result).read_text())


def run(args, device: torch.device) -> dict:
    from pyface.benchmarks import _harness as H
    from pyface.label import mediapipe as M

    quick = args.quick
    mp_on = M.available()
    if not mp_on:
        print(f"MediaPipe unavailable ({M.why_unavailable()}): net-only jobs, no MediaPipe share")
    cfg = {"device": str(device), "preset": args.preset or "resnet18-fld-hpe", "views": args.views,
           "images": args.images or (24 if quick else 96), "image_size": 112, "shard_size": 16, "batch_size": 8,
           "mediapipe": mp_on}
    configs = [(r, k) for r in args.ranks for k in args.cpu_workers]
    repeats = args.repeats or (1 if quick else 3)
    runs = {c: [] for c in configs}
    for rnd in range(repeats):
        for c in (configs if rnd % 2 == 0 else configs[::-1]):
            runs[c].append(run_config(cfg, *c))
            print(f"  round {rnd + 1}/{repeats}: {c[0]} rank(s), {c[1]} CPU worker(s): "
                  f"{cfg['images'] / runs[c][-1]['wall_s']:.2f} images/s", flush=True)
    rows = []
    for (r, k), rs in runs.items():
        ips = [cfg["images"] / x["wall_s"] for x in rs]
        stages = {s: statistics.median(x["summary"]["seconds_by_stage"].get(s, 0.0) for x in rs) for s in STAGES}
        busy = sum(v for s, v in stages.items() if s != "cpu_wait") or float("nan")
        rows.append({"ranks": r, "cpu_workers": k, "images_per_s": statistics.median(ips), "min": min(ips),
                     "max": max(ips), "rounds": len(ips),
                     **{f"{s}_ms_per_image": 1e3 * stages[s] / cfg["images"] for s in STAGES},
                     "mediapipe_share": stages["mediapipe"] / busy})
    base = rows[0]["images_per_s"]
    for row in rows:
        row["x_first"] = row["images_per_s"] / base
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    cols = [("ranks", "ranks"), ("cpu_workers", "CPU workers"), ("images_per_s", "images/s (median)"),
            ("min", "min"), ("max", "max"), ("x_first", f"x ({rows[0]['ranks']}, {rows[0]['cpu_workers']})"),
            ("mediapipe_share", "MediaPipe share"), ("mediapipe_ms_per_image", "MP ms/img"),
            ("warp_ms_per_image", "warp ms/img"), ("net_ms_per_image", "net ms/img"),
            ("fit_ms_per_image", "fit ms/img")]
    H.print_table(f"label landmarks job, {cfg['preset']}, {cfg['views']} views, MediaPipe {'on' if mp_on else 'off'}, "
                  f"{cfg['images']} images, {repeats} interleaved rounds, on {H.device_name(device)}, "
                  f"{os.cpu_count()} cores, load {load:.1f} at the end", rows, cols)
    per = _per_image(rows, cfg)
    return {"bench": "label", "mode": "scaling", "result_name": "label-scaling", "device": H.device_name(device),
            "device_type": device.type, "quick": quick, "config": cfg, "cores": os.cpu_count(),
            "load_avg_end": load, "rows": rows, "per_image_s": per, "projection": project(per)}


def _per_image(rows: list[dict], cfg: dict) -> dict:
    """Per-image cost of each stage (process-seconds) from the single-rank, no-worker
    row: what the projection scales."""
    r = next((x for x in rows if x["ranks"] == 1 and x["cpu_workers"] == 0), rows[0])
    per = {s: r[f"{s}_ms_per_image"] / 1e3 for s in STAGES if s != "cpu_wait"}
    per["total_wall"] = 1.0 / r["images_per_s"]
    per["other"] = max(0.0, per["total_wall"] - sum(per[s] for s in ("warp", "net", "eyes", "mediapipe", "fit")))
    return per


def project(per: dict, gpus: int = 8, cores_per_gpu: int = 8, net_gpu_s: float = 0.0) -> dict:
    """A calculation, not a measurement: images/s of ``gpus`` ranks with
    ``cores_per_gpu - 1`` CPU workers each, from the measured per-image stage costs.
    A rank's main process does the nets (on the GPU: ``net_gpu_s`` per image -- not
    measured here, 0 by default, so the result is the bound the CPU side sets), the fit
    and the rest; its workers do the warps and MediaPipe in parallel. Per rank, the
    slower of the two sides sets the pace; the ranks are independent (no shared state
    but the file system)."""
    k = cores_per_gpu - 1
    net = net_gpu_s
    main = net + per["fit"] + per["other"]
    workers = (per["warp"] + per["mediapipe"]) / max(k, 1)
    per_rank = 1.0 / max(main, workers)
    return {"gpus": gpus, "cpu_workers_per_rank": k, "main_s_per_image": main, "workers_s_per_image": workers,
            "bound_by": "cpu workers (MediaPipe)" if workers >= main else "rank main process",
            "images_per_s": gpus * per_rank, "hours_for_8.3M_images": 8.3e6 / (gpus * per_rank) / 3600,
            "assumption": f"nets on the GPU at {net_gpu_s * 1e3:g} ms per image (not measured: no GPU here); "
                          "workers scale linearly with cores (no memory-bandwidth or turbo effects)"}


def check(values: list[int], flag: str, lo: int) -> list[int]:
    if not values or min(values) < lo:
        raise ValueError(f"{flag} needs integers >= {lo}, got {values}")
    return list(dict.fromkeys(int(v) for v in values))
