"""``pyface eval verification|ijbc|pose|landmarks|fps|all``."""
from __future__ import annotations

import os

from pyface.cli.command import (
    Command,
    command,
    existing_dir,
    existing_file,
    existing_path,
    non_negative_int,
    positive_int,
)
from pyface.errors import UsageError

# pyface.eval.job.WHAT, spelt out here: importing pyface.eval imports torch
WHAT = ("verification", "ijbc", "pose", "landmarks", "fps", "all")


@command
class Eval(Command):
    name = "eval"
    help = "evaluate a checkpoint on the papers' benchmarks (report.md, report.json, PNGs)"
    description = """Evaluate a checkpoint on the papers' benchmarks.

Examples (real test sets)::

    # lfw.bin, cfp_fp.bin, agedb_30.bin of insightface's faces_emore folder
    pyface eval verification --checkpoint run/model.pt --data-root /data/faces_emore
    pyface eval ijbc --checkpoint run/model.pt --ijbc /data/IJBC                     # meta/ + loose_crop/
    pyface eval pose --checkpoint run/ --aflw2000 /data/AFLW2000 --biwi /data/BIWI_test.npz
    pyface eval landmarks --checkpoint run/ --aflw2000 /data/AFLW2000
    pyface eval fps --checkpoint run/model.pt
    pyface eval fps --onnx model.onnx            # ONNX Runtime beside PyTorch (checkpoint from its metadata)
    pyface eval all --checkpoint run/model.pt --data-root /data/eval --out eval_out  # report.md + report.json + PNGs
    pyface demo eval --checkpoint demo_out/model.pt                                  # synthetic copies of every format

Many GPUs: the same command under torchrun splits the inference (IJB-C's 469k images)
across the ranks by cache shards; rank 0 computes the protocols and writes the report,
the same numbers as one process:

    torchrun --nproc_per_node 8 -m pyface eval ijbc --checkpoint run/model.pt --ijbc /data/IJBC

A job array: --part K/N fills the inference cache with part K's shards; the same command
without --part then finds them all and writes the report.
"""
    elastic_record = True

    def add_arguments(self, e):
        e.add_argument("what", choices=WHAT)
        e.add_argument("--checkpoint", default=None,
                       help="model.pt, checkpoints/last.pt or a pyface train run folder (required unless --onnx names "
                            "an export whose source checkpoint exists)")
        e.add_argument("--onnx", default=None,
                       help="fps/all: also time this `pyface export` ONNX file on ONNX Runtime, interleaved with "
                            "PyTorch (and PyTorch running the same exported graph)")
        e.add_argument("--data-root", default=None, help="folder with *.bin, IJBC/, AFLW2000/, BIWI*.npz")
        e.add_argument("--bin", action="append", default=None, help="a verification .bin (repeatable)")
        e.add_argument("--ijbc", default=None, help="IJB-C root (meta/, loose_crop/)")
        e.add_argument("--aflw2000", default=None, help="AFLW2000-3D folder (.jpg + .mat)")
        e.add_argument("--biwi", default=None, help="BIWI .npz (image, pose)")
        e.add_argument("--out", default=None, help="output folder (default: eval_out)")
        e.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda when available)")
        e.add_argument("--batch-size", type=positive_int, default=64)
        e.add_argument("--workers", type=non_negative_int, default=0, help="DataLoader worker processes")
        e.add_argument("--no-amp", action="store_true", help="fp32 inference on CUDA")
        e.add_argument("--no-faceness", action="store_true", help="IJB-C: do not weight features by the detector score")
        e.add_argument("--limit-deg", type=float, default=99.0, help="pose: keep samples with |angles| <= this")
        e.add_argument("--fps-repeats", type=positive_int, default=10)
        e.add_argument("--fps-batches", default="1,64", help="comma-separated batch sizes for FPS")
        e.add_argument("--no-progress", action="store_true")
        e.add_argument("--cache", default=None,
                       help="inference shard cache, so a killed run resumes (default: <out>/cache; '' to disable)")
        e.add_argument("--shard-size", type=positive_int, default=8192,
                       help="images per inference shard: the unit of the cache and of the split across ranks")
        e.add_argument("--part", default=None, metavar="K/N",
                       help="job array: infer part K of N of the shards into the cache (no report); the run "
                            "without --part then writes the report")

    def run(self, args) -> int:
        onnx = None
        if args.onnx is not None:
            if args.what not in ("fps", "all"):
                raise UsageError(f"--onnx: only with 'fps' or 'all' (it times the exported file), not {args.what!r}")
            existing_file("--onnx", args.onnx, "ONNX file")
            from pyface.analyze.onnx_backend import OnnxBackend

            onnx = OnnxBackend(args.onnx, threads=_torch_threads())
            if args.checkpoint is None:
                args.checkpoint = onnx.info.props.get("source") or None
                if not args.checkpoint or not os.path.exists(args.checkpoint):
                    raise UsageError(f"--checkpoint: {args.onnx} was exported from {args.checkpoint!r}, which is not "
                                     "here; give --checkpoint for the PyTorch figure")
        if args.checkpoint is None:
            raise UsageError("--checkpoint: required (a model.pt, checkpoints/last.pt or run folder)")
        existing_path("--checkpoint", args.checkpoint, "checkpoint")
        if args.data_root is not None:
            existing_dir("--data-root", args.data_root)
        for b in args.bin or []:
            existing_path("--bin", b, "verification .bin")
        for flag in ("ijbc", "aflw2000", "biwi"):
            if getattr(args, flag) is not None:
                existing_path(f"--{flag}", getattr(args, flag))
        fps_batches = _ints(args.fps_batches, "--fps-batches")
        from pyface.distributed import setup
        from pyface.eval import runner, suites
        from pyface.eval.job import evaluate, open_suites, select_suites, summary
        from pyface.eval.report import write_report
        from pyface.work_split import WorkSplit, parse_part

        part = parse_part(args.part)
        ctx, device = setup(runner.device_for(args.device))  # under torchrun: this rank's process group and GPU
        split = WorkSplit(ctx, part)
        model = runner.load_model(args.checkpoint, device)  # fails fast on a bad checkpoint
        ts = suites.find_test_sets(args.data_root, args.bin, args.ijbc, args.aflw2000, args.biwi)
        data = open_suites(ts, select_suites(args.what, model, ts))  # every reader checks its files first
        out = args.out or "eval_out"
        cache = os.path.join(out, "cache") if args.cache is None else (args.cache or None)
        others = None
        if onnx is not None:
            from pyface.export.exporter import onnx_fps_runtimes

            others = onnx_fps_runtimes(model, onnx, device)
        with split.lock(out, "evaluation"):  # the report and the cache are this job's until it ends
            results = evaluate(model, data, args.what, device=device, batch_size=args.batch_size,
                               workers=args.workers, cache_dir=cache, amp=not args.no_amp,
                               faceness=not args.no_faceness, limit_deg=args.limit_deg,
                               fps_repeats=args.fps_repeats, fps_batches=fps_batches, progress=not args.no_progress,
                               shard_size=args.shard_size, split=split, fps_others=others)
            if part is not None and split.leader:
                print(f"part {part}: inference shards written to {cache}; when every part is done, run the same "
                      "command without --part for the report")
            if results is None:  # another rank, or a part
                return 0
            paths = write_report(results, out)
        print(summary(results))
        print("wrote " + ", ".join(str(p) for p in paths.values()))
        return 0


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()  # ONNX Runtime gets as many CPU threads as PyTorch


def _ints(text: str, flag: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"{flag} must be comma-separated integers, got {text!r}") from None
    if not vals or min(vals) < 1:
        raise UsageError(f"{flag} must be positive, got {text!r}")
    return vals
