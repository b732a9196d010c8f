"""``pyface demo [mtl|hmtl|label|eval|ablations]`` (the jobs: pyface.demos)."""
from __future__ import annotations

from pathlib import Path

from pyface.cli.command import COMMANDS, Command, Group, command, existing_path, positive_int

COMMANDS.register("demo", Group("demo", help="embedded end-to-end demos on synthetic faces (default: mtl)",
                                default="mtl"))


@command
class DemoMTL(Command):
    name = "demo mtl"
    help = "synthetic data -> train a small MTL model -> metrics (2-core CPU, < 10 min); `pyface demo` runs it"

    def add_arguments(self, d):
        d.add_argument("--out", default="demo_out", help="output folder (metrics.json, PNGs, run logs)")
        d.add_argument("--epochs", type=positive_int, default=None, help="training epochs (default: the demo recipe's)")
        d.add_argument("--quick", action="store_true", help="tiny data and one epoch (a smoke run)")
        d.add_argument("--seed", type=int, default=0, help="training seed (init, batch order, flips); data stay fixed")
        d.add_argument("--reference-ops", action="store_true", help="pure-PyTorch losses instead of the fused ops")

    def run(self, args) -> int:
        from pyface.demos.mtl import DEMO_EPOCHS, run_demo

        epochs = DEMO_EPOCHS if args.epochs is None else args.epochs
        m = run_demo(args.out, fused=not args.reference_ops, epochs=epochs, quick=args.quick, seed=args.seed)
        keys = ("pose_mae_deg", "pose_mae_baseline_deg", "nme", "nme_baseline", "verification_accuracy")
        print("\n".join(f"{k:>24}: {m[k]:.4f}" for k in keys))
        print(f"{'checks':>24}: " + ", ".join(f"{k}={'PASS' if v else 'FAIL'}" for k, v in m["checks"].items()))
        print(f"wrote {args.out}/metrics.json, loss_curves.png, predictions.png ({m['seconds']['total']:.0f} s)")
        return 0 if all(m["checks"].values()) or args.quick else 1


@command
class DemoHMTL(Command):
    name = "demo hmtl"
    help = "SL HopeNet vs HMTL 2x2 puzzling, same initial weights, small data (Pourmirzaei et al. Sec. 5.2)"

    def add_arguments(self, d):
        d.add_argument("--out", default="hmtl_demo_out",
                       help="output folder (metrics.json, hmtl_vs_sl.png, sl/, hmtl/)")
        d.add_argument("--epochs", type=positive_int, default=None, help="training epochs (default: the demo recipe's)")
        d.add_argument("--quick", action="store_true", help="tiny data and a few steps (a smoke run)")

    def run(self, args) -> int:
        from pyface.demos.hmtl import DEMO_EPOCHS, run_hmtl_demo

        m = run_hmtl_demo(args.out, epochs=DEMO_EPOCHS if args.epochs is None else args.epochs, quick=args.quick)
        for name in ("SL", "HMTL"):
            r = m[name]
            print(f"{name:>5}: pose MAE {r['pose_mae_deg']:.3f} deg (yaw {r['yaw_mae_deg']:.3f}, pitch "
                  f"{r['pitch_mae_deg']:.3f}, roll {r['roll_mae_deg']:.3f}; mean-pose baseline "
                  f"{r['pose_mae_baseline_deg']:.3f})")
        print(f"HMTL - SL: {m['hmtl_minus_sl_deg']:+.3f} deg (a measurement on synthetic faces); same initial "
              f"weights: {m['same_initial_weights']}")
        print(f"wrote {args.out}/metrics.json, hmtl_vs_sl.png, sl/ and hmtl/ run folders "
              f"({m['seconds']['total']:.0f} s)")
        return 0 if m["same_initial_weights"] else 1


@command
class DemoLabel(Command):
    name = "demo label"
    help = "pseudo-labeling: Algorithm 1 on SyntheticFaces with hidden labels, then Algorithm 2 (2-core CPU, < 10 min)"

    def add_arguments(self, p):
        p.add_argument("--out", default="label_demo_out", help="output folder (nets/, metrics.json, labeled.png)")
        p.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
        p.add_argument("--seeds", type=positive_int, default=2, help="held-out sets labeled (differently seeded)")

    def run(self, args) -> int:
        from pyface.demos.label import run_label_demo

        m = run_label_demo(args.out, quick=args.quick, seeds=args.seeds)
        for k, v in m["report"].items():
            print(f"{k:>34}: {v['mean']:.4f}  (min {v['min']:.4f}, max {v['max']:.4f} over {len(m['runs'])} sets)")
        print(f"{'algorithm 2':>34}: {m['algorithm2']}")
        print(f"{'checks':>34}: " + ", ".join(f"{k}={'PASS' if v else 'FAIL'}" for k, v in m["checks"].items()))
        print(f"wrote {args.out}/metrics.json, {args.out}/labeled.png ({m['seconds']['total']:.0f} s)")
        return 0 if all(m["checks"].values()) or args.quick else 1


@command
class DemoEval(Command):
    name = "demo eval"
    help = "synthetic copies of every evaluation format, evaluated through `pyface eval all` (report.md)"

    def add_arguments(self, p):
        p.add_argument("--checkpoint", required=True, help="model.pt, checkpoints/last.pt or a pyface train run folder "
                       "(e.g. demo_out/model.pt)")
        p.add_argument("--out", default=None, help="output folder (default: <checkpoint dir>/eval_demo)")
        p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda when available)")
        p.add_argument("--no-progress", action="store_true")

    def run(self, args) -> int:
        existing_path("--checkpoint", args.checkpoint, "checkpoint")
        from pyface.demos.eval import run_demo
        from pyface.eval import runner

        out = args.out or str(Path(runner.find_checkpoint(args.checkpoint)).parent / "eval_demo")
        res = run_demo(args.checkpoint, out, device=args.device, progress=not args.no_progress)
        print(f"wrote {out}/report.md, report.json, PNGs ({res['seconds']:.0f} s)")
        return 0


@command
class DemoAblations(Command):
    name = "demo ablations"
    help = ("the papers' claimed effects measured in miniature: Table 9 (lambda_P), Table 4 (pose margin), "
            "Algorithm 1 (views), HMTL; seeds, mean +- std, paired differences (2-core CPU: ~40 min)")

    def add_arguments(self, p):
        p.add_argument("--out", default="ablations_out", help="output folder (report.md, ablations.png, metrics.json)")
        p.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run; the numbers mean nothing)")
        p.add_argument("--seeds", type=positive_int, default=3, help="seeds per arm (default 3)")
        p.add_argument("--workers", type=positive_int, default=None,
                       help="processes, one thread each (default: min(2, CPUs))")
        p.add_argument("--parts", nargs="+", default=None, metavar="PART",
                       help="some of table9 table4 alg1 hmtl (default: all)")

    def run(self, args) -> int:
        from pyface.demos.ablations import PARTS, run_ablations
        from pyface.errors import UsageError

        parts = tuple(args.parts or PARTS)
        bad = [x for x in parts if x not in PARTS]
        if bad:
            raise UsageError(f"--parts: unknown part(s) {bad}; choose from {list(PARTS)}")
        m = run_ablations(args.out, quick=args.quick, seeds=args.seeds, workers=args.workers, parts=parts)
        t = m["timing"]
        print(f"wrote {args.out}/report.md, ablations.png, metrics.json ({t['wall_s'] / 60:.1f} min wall, "
              f"{t['cpu_s'] / 60:.1f} min CPU)")
        return 0
