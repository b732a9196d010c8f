"""The ``pyface`` command line."""
from __future__ import annotations

import argparse
import sys


def _bench(args) -> int:
    from pyface import benchmarks
    from pyface.benchmarks import _harness as H

    names = args.names or benchmarks.available()
    for name in names:
        mod = benchmarks.load(name)
        sub = argparse.ArgumentParser(prog=f"pyface bench {name}")
        mod.add_arguments(sub)
        bench_args, _ = sub.parse_known_args(args.rest)
        bench_args.quick, bench_args.device = args.quick, args.device
        result = mod.run(bench_args)
        if args.out_dir:
            path = H.write_json(args.out_dir, name + ("-quick" if args.quick else ""), result)
            print(f"results: {path}")
    return 0


def _train(args) -> int:
    """Single process, or one rank of a ``torchrun`` launch (WORLD_SIZE in the
    environment): an exception on any rank exits that rank non-zero, torchrun then stops
    the others, and the error is recorded for torchelastic's summary. The process group
    ends as pyface.distributed.run_job says (after the trainer is gone)."""
    from torch.distributed.elastic.multiprocessing.errors import record

    from pyface.distributed import run_job

    return run_job(record(_train_ranked), args)


def _train_ranked(args) -> int:
    from pyface.train import Trainer, load_config

    over = {}
    if args.out_dir:
        over["out_dir"] = args.out_dir
    if args.device:
        over["device"] = args.device
    if args.reference_ops:
        over["loss"] = {"fused": False}
    cfg = load_config(args.config, over)
    trainer = Trainer(cfg)
    main = trainer.dist.is_main
    counts = trainer.model.parameter_counts()
    if main:
        ws = trainer.dist.world_size
        print(f"recipe {cfg['recipe']}, model {cfg['model']['preset']} tasks {list(trainer.tasks)}: "
              + ", ".join(f"{k} {v / 1e6:.2f}M" for k, v in counts.items())
              + (f"; {ws} ranks ({trainer.dist.backend}), global batch {cfg['data']['batch_size'] * ws}"
                 if ws > 1 else ""))
    resume = args.resume if args.resume not in (None, "") else bool(args.resume == "")
    metrics = trainer.fit(resume=resume)
    if metrics and main:
        print("validation: " + ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if isinstance(v, float)))
    if main:
        print(f"run folder: {trainer.out}")
    return 0


def _demo_hmtl(args) -> int:
    from pyface.train.hmtl_demo import DEMO_EPOCHS, run_hmtl_demo

    m = run_hmtl_demo(args.out, epochs=DEMO_EPOCHS if args.epochs is None else args.epochs, quick=args.quick)
    for name in ("SL", "HMTL"):
        r = m[name]
        print(f"{name:>5}: pose MAE {r['pose_mae_deg']:.3f} deg (yaw {r['yaw_mae_deg']:.3f}, pitch "
              f"{r['pitch_mae_deg']:.3f}, roll {r['roll_mae_deg']:.3f}; mean-pose baseline "
              f"{r['pose_mae_baseline_deg']:.3f})")
    print(f"HMTL - SL: {m['hmtl_minus_sl_deg']:+.3f} deg (a measurement on synthetic faces); same initial weights: "
          f"{m['same_initial_weights']}")
    print(f"wrote {args.out}/metrics.json, hmtl_vs_sl.png, sl/ and hmtl/ run folders ({m['seconds']['total']:.0f} s)")
    return 0 if m["same_initial_weights"] else 1


def _demo(args) -> int:
    if args.recipe == "hmtl":
        return _demo_hmtl(args)
    from pyface.train.demo import DEMO_EPOCHS, run_demo

    epochs = DEMO_EPOCHS if args.epochs is None else args.epochs
    m = run_demo(args.out, fused=not args.reference_ops, epochs=epochs, quick=args.quick, seed=args.seed)
    keys = ("pose_mae_deg", "pose_mae_baseline_deg", "nme", "nme_baseline", "verification_accuracy")
    print("\n".join(f"{k:>24}: {m[k]:.4f}" for k in keys))
    print(f"{'checks':>24}: " + ", ".join(f"{k}={'PASS' if v else 'FAIL'}" for k, v in m["checks"].items()))
    print(f"wrote {args.out}/metrics.json, loss_curves.png, predictions.png ({m['seconds']['total']:.0f} s)")
    return 0 if all(m["checks"].values()) or args.quick else 1


def _doctor(args) -> int:
    from pyface import doctor

    return doctor.main(args.rest + (["--emulate"] if args.emulate else []))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pyface", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("bench", help="microbenchmark kernels against their PyTorch references")
    b.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    b.add_argument("--quick", action="store_true", help="small sizes, a minute or two on a laptop CPU")
    b.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    b.add_argument("--out-dir", default="bench/results", help="where JSON results go ('' to skip)")
    b.set_defaults(func=_bench)
    t = sub.add_parser("train", help="train a multitask model from a YAML config")
    t.add_argument("--config", required=True, help="YAML file (see pyface.train.config)")
    t.add_argument("--resume", nargs="?", const="", default=None,
                   help="continue from out_dir/checkpoints/last.pt, or from the given checkpoint")
    t.add_argument("--out-dir", default=None, help="override out_dir")
    t.add_argument("--device", default=None, help="override device (cpu, cuda, cuda:N)")
    t.add_argument("--reference-ops", action="store_true", help="pure-PyTorch losses instead of the fused ops")
    t.set_defaults(func=_train)
    d = sub.add_parser("demo", help="synthetic data -> train a small MTL model -> metrics (2-core CPU, < 10 min)")
    d.add_argument("--recipe", choices=("mtl", "hmtl"), default="mtl",
                   help="mtl: the multitask demo; hmtl: HopeNet vs HMTL 2x2 puzzling, small-data regime")
    d.add_argument("--out", default="demo_out", help="output folder (metrics.json, PNGs, run logs)")
    d.add_argument("--epochs", type=int, default=None, help="training epochs (default: the demo recipe's)")
    d.add_argument("--quick", action="store_true", help="tiny data and one epoch (a smoke run)")
    d.add_argument("--seed", type=int, default=0, help="training seed (init, batch order, flips); data stay fixed")
    d.add_argument("--reference-ops", action="store_true", help="pure-PyTorch losses instead of the fused ops")
    d.set_defaults(func=_demo)
    c = sub.add_parser("doctor", help="torch/CUDA/device/build info, then every op's CUDA path vs its reference")
    c.add_argument("--emulate", action="store_true", help="no GPU: check the emulated CUDA kernels (tests build)")
    c.set_defaults(func=_doctor)
    from pyface.eval.cli import add_parser as _add_eval

    _add_eval(sub)
    _add_label(sub)
    return p


def _add_label(sub) -> None:
    """``pyface label <command>``: each command is an ``add_parser(subparsers)`` function
    of pyface.label.cli."""
    from pyface import label_demo
    from pyface.label import cli as label_cli

    lab = sub.add_parser("label", help="pseudo-labeling pipeline (Lee et al. 2024, Algorithms 1 and 2)")
    lsub = lab.add_subparsers(dest="label_cmd", required=True)
    for add in label_cli.LABEL_COMMANDS:  # landmarks, fit-index-map (Algorithm 1)
        add(lsub)
    from pyface.label.identities import add_parser as add_identities  # Algorithm 2

    add_identities(lsub)
    label_demo.add_demo_parser(lsub)  # top layer: trains (pyface.train) and labels (pyface.label)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    args.rest = rest
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
