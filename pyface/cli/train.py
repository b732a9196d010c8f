"""``pyface train``."""
from __future__ import annotations

import os
import sys

from pyface.cli.command import Command, command, existing_file
from pyface.errors import UsageError


@command
class Train(Command):
    """Single process, or one rank of a ``torchrun`` launch (WORLD_SIZE in the
    environment): an exception on any rank exits that rank non-zero, torchrun then stops
    the others, and the error is recorded for torchelastic's summary. The process group
    ends as pyface.distributed.run_job says (after the trainer is gone; pyface.cli.main)."""

    name = "train"
    help = "train a multitask model from a YAML config (one process, or each rank under torchrun)"
    elastic_record = True

    def add_arguments(self, p):
        p.add_argument("--config", required=True, help="YAML file (see pyface.train.config)")
        p.add_argument("--resume", nargs="?", const="", default=None,
                       help="continue from out_dir/checkpoints/last.pt, or from the given checkpoint")
        p.add_argument("--out-dir", default=None, help="override out_dir")
        p.add_argument("--device", default=None, help="override device (cpu, cuda, cuda:N)")
        p.add_argument("--reference-ops", action="store_true", help="pure-PyTorch losses instead of the fused ops")

    def run(self, args) -> int:
        existing_file("--config", args.config, "config file")
        if args.resume and not os.path.exists(args.resume):
            raise UsageError(f"--resume: checkpoint not found: {args.resume}")
        from pyface.train import Trainer, load_config

        over = {}
        if args.out_dir:
            over["out_dir"] = args.out_dir
        if args.device:
            over["device"] = args.device
        if args.reference_ops:
            over["loss"] = {"fused": False}
        cfg = load_config(args.config, over)
        if args.resume is None:  # at once, not after the datasets and the model are built (fit checks again)
            from pyface.train.trainer import refuse_existing_run

            refuse_existing_run(cfg["out_dir"], "pass --resume to continue it, or choose another out_dir (--out-dir)")
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
        if resume is True and main and not trainer.checkpoint_path.exists():
            print(f"pyface train: note: --resume: no checkpoint in {trainer.out} yet; starting at step 0",
                  file=sys.stderr)
        metrics = trainer.fit(resume=resume)
        if metrics and main:
            print("validation: " + ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if isinstance(v, float)))
        if main:
            print(f"run folder: {trainer.out}")
        return 0
