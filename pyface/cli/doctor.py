"""``pyface doctor``."""
from __future__ import annotations

from pyface.cli.command import Command, command


@command
class Doctor(Command):
    name = "doctor"
    help = "torch/CUDA/device/build info, then every op's CUDA path vs its reference"

    def add_arguments(self, p):
        p.add_argument("--emulate", action="store_true",
                       help="no GPU: check the emulated CUDA kernels (pyface._C_emu, tools/emu_build.sh)")
        p.add_argument("--traceback", action="store_true", help="print the traceback of a check that raised")

    def run(self, args) -> int:
        from pyface import doctor

        return doctor.main(["--emulate"] * args.emulate + ["--traceback"] * args.traceback)
