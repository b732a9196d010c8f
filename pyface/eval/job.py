"""``pyface eval verification|ijbc|pose|landmarks|fps|all|demo``.

Examples (real test sets)::

    # lfw.bin, cfp_fp.bin, agedb_30.bin of insightface's faces_emore folder
    pyface eval verification --checkpoint run/model.pt --data-root /data/faces_emore
    pyface eval ijbc --checkpoint run/model.pt --ijbc /data/IJBC                     # meta/ + loose_crop/
    pyface eval pose --checkpoint run/ --aflw2000 /data/AFLW2000 --biwi /data/BIWI_test.npz
    pyface eval landmarks --checkpoint run/ --aflw2000 /data/AFLW2000
    pyface eval fps --checkpoint run/model.pt
    pyface eval all --checkpoint run/model.pt --data-root /data/eval --out eval_out  # report.md + report.json + PNGs
    pyface eval demo --checkpoint demo_out/model.pt                                  # synthetic copies of every format
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

COMMANDS = ("verification", "ijbc", "pose", "landmarks", "fps", "all", "demo")


def add_parser(sub) -> None:
    e = sub.add_parser("eval", help="evaluate a checkpoint on the papers' benchmarks (report.md, report.json, PNGs)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    e.add_argument("what", choices=COMMANDS)
    e.add_argument("--checkpoint", required=True, help="model.pt, checkpoints/last.pt or a pyface train run folder")
    e.add_argument("--data-root", default=None, help="folder with *.bin, IJBC/, AFLW2000/, BIWI*.npz")
    e.add_argument("--bin", action="append", default=None, help="a verification .bin (repeatable)")
    e.add_argument("--ijbc", default=None, help="IJB-C root (meta/, loose_crop/)")
    e.add_argument("--aflw2000", default=None, help="AFLW2000-3D folder (.jpg + .mat)")
    e.add_argument("--biwi", default=None, help="BIWI .npz (image, pose)")
    e.add_argument("--out", default=None, help="output folder (default: eval_out, demo: <checkpoint dir>/eval_demo)")
    e.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda when available)")
    e.add_argument("--batch-size", type=int, default=64)
    e.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    e.add_argument("--no-amp", action="store_true", help="fp32 inference on CUDA")
    e.add_argument("--no-faceness", action="store_true", help="IJB-C: do not weight features by the detector score")
    e.add_argument("--limit-deg", type=float, default=99.0, help="pose: keep samples with |angles| <= this")
    e.add_argument("--fps-repeats", type=int, default=10)
    e.add_argument("--fps-batches", default="1,64", help="comma-separated batch sizes for FPS")
    e.add_argument("--no-progress", action="store_true")
    e.add_argument("--cache", default=None,
                   help="inference shard cache, so a killed run resumes (default: <out>/cache; '' to disable)")
    e.set_defaults(func=run)


def run(args) -> int:
    from pyface.eval import runner, suites
    from pyface.eval.report import write_report

    if args.what == "demo":
        from pyface.eval.demo import run_demo

        out = args.out or str(Path(runner.find_checkpoint(args.checkpoint)).parent / "eval_demo")
        res = run_demo(args.checkpoint, out, device=args.device, progress=not args.no_progress)
        print(f"wrote {out}/report.md, report.json, PNGs ({res['seconds']:.0f} s)")
        return 0
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    device = runner.device_for(args.device)
    model = runner.load_model(args.checkpoint, device)  # fails fast on a bad checkpoint
    ts = suites.find_test_sets(args.data_root, args.bin, args.ijbc, args.aflw2000, args.biwi)
    need = {"verification": {"verification"}, "ijbc": {"ijbc"}, "pose": {"aflw2000", "biwi"},
            "landmarks": {"aflw2000"}, "fps": set()}.get(args.what)
    if args.what == "all":  # whatever is present and usable by this model's heads
        outs = runner.model_outputs(model)
        need = set()
        if "embedding" in outs:
            need |= {p for p, have in (("verification", ts.bins), ("ijbc", ts.ijbc)) if have}
        if outs & {"pose", "landmarks"} and ts.aflw2000:
            need.add("aflw2000")
        if "pose" in outs and ts.biwi:
            need.add("biwi")
    elif args.what == "pose":
        need = {p for p, have in (("aflw2000", ts.aflw2000), ("biwi", ts.biwi)) if have} or {"aflw2000"}
        runner.require_outputs(model, ["pose"], "head pose evaluation")
    elif args.what == "landmarks":
        runner.require_outputs(model, ["landmarks"], "landmark evaluation")
    data = ts.open(need)  # every reader checks its files before any inference
    out = args.out or "eval_out"
    cache = os.path.join(out, "cache") if args.cache is None else (args.cache or None)
    results = evaluate(model, data, args.what, device=device, batch_size=args.batch_size, workers=args.workers,
                       cache_dir=cache,
                       amp=not args.no_amp, faceness=not args.no_faceness, limit_deg=args.limit_deg,
                       fps_repeats=args.fps_repeats, fps_batches=_ints(args.fps_batches, "--fps-batches"),
                       progress=not args.no_progress)
    paths = write_report(results, out)
    print(summary(results))
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def _ints(text: str, name: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"{name} must be comma-separated integers, got {text!r}") from None
    if not vals or min(vals) < 1:
        raise ValueError(f"{name} must be positive, got {text!r}")
    return vals


def evaluate(model, data: dict, what: str, *, device, batch_size=64, workers=0, amp=True, faceness=True,
             limit_deg=99.0, fps_repeats=10, fps_batches=(1, 64), progress=True, cache_dir=None) -> dict:
    """Run the opened test sets through the model; results as write_report expects."""
    from pyface.eval import runner, suites

    kw = {"batch_size": batch_size, "device": device, "amp": amp, "num_workers": workers, "progress": progress,
          "cache_dir": cache_dir}
    t0 = time.time()
    res: dict = {"checkpoint": getattr(model, "checkpoint_path", "?"), "tasks": list(model.tasks),
                 "device": runner.device_name(device), "params": model.parameter_counts()}
    if "verification" in data:
        res["verification"] = suites.eval_verification(model, data["verification"], **kw)
    if "ijbc" in data:
        res["ijbc"] = suites.eval_ijbc(model, data["ijbc"], faceness=faceness, **kw)
    if "aflw2000" in data:
        r = suites.eval_aflw2000(model, data["aflw2000"], limit_deg=limit_deg, **kw)
        if what == "pose":
            r.pop("nme", None)
        if what == "landmarks":
            r = {k: v for k, v in r.items() if not k.startswith("pose")}
        res["aflw2000"] = r
    if "biwi" in data:
        res["biwi"] = suites.eval_biwi(model, data["biwi"], limit_deg=limit_deg, **kw)
    if what in ("fps", "all"):
        res["fps"] = runner.measure_fps(model, device, batch_sizes=fps_batches, repeats=fps_repeats,
                                        warmup=min(3, fps_repeats))
    res["seconds"] = time.time() - t0
    return res


def summary(res: dict) -> str:
    lines = []
    for name, r in (res.get("verification") or {}).items():
        lines.append(f"{name:>12}: accuracy {r['mean'] * 100:.2f} +- {r['std'] * 100:.2f} % ({r['pairs']} pairs)")
    if res.get("ijbc"):
        for case, r in res["ijbc"]["cases"].items():
            t = r["tar"] or {}
            lines.append(f"{'IJB-C ' + case:>12}: {r['pairs']:,} pairs, "
                         + ", ".join(f"TAR@{f:g}={v * 100:.2f}" for f, v in t.items()))
    for key in ("aflw2000", "biwi"):
        r = res.get(key) or {}
        if "pose" in r:
            p = r["pose"]
            lines.append(f"{key:>12}: pose MAE {p['mean']:.2f} deg (yaw {p['yaw']:.2f}, pitch {p['pitch']:.2f}, "
                         f"roll {p['roll']:.2f}; {p['kept']} kept, {p['dropped']} dropped)")
        if "nme" in r:
            n = r["nme"]
            lines.append(f"{key:>12}: NME {n['mean'] * 100:.2f} % ("
                         + ", ".join(f"{k} {v * 100:.2f}" for k, v in n["bins"].items()) + ")")
    for r in res.get("fps") or []:
        lines.append(f"{'fps':>12}: batch {r['batch']:>3} {r['precision']:>8}: {r['images_per_s']:.1f} img/s "
                     f"(IQR {r['iqr']:.1f})")
    return "\n".join(lines)

