"""``pyface checkpoint reshard``."""
from __future__ import annotations

from pyface.cli.command import COMMANDS, Command, Group, command, existing_file, positive_int

COMMANDS.register("checkpoint", Group("checkpoint", help="training checkpoints (reshard)"))


@command
class Reshard(Command):
    name = "checkpoint reshard"
    help = ("re-shard a distributed training checkpoint to another number of processes, or reassemble it "
            "into one (--world-size 1)")

    def add_arguments(self, p):
        p.add_argument("checkpoint", help="RUN/checkpoints/last.pt of a distributed run")
        p.add_argument("--world-size", type=positive_int, required=True, help="processes of the new layout")
        p.add_argument("--out", required=True, help="new checkpoints folder (last.pt + shards/)")

    def run(self, args) -> int:
        existing_file("checkpoint", args.checkpoint, "checkpoint")
        from pyface.train.checkpoint import reshard

        print(f"wrote {reshard(args.checkpoint, args.world_size, args.out)}")
        return 0
