"""``pyface data mean-shape``: data products the recipes read (the jobs: pyface.geometry)."""
from __future__ import annotations

import os

from pyface.cli.command import COMMANDS, Command, Group, command, existing_dir, positive_float, positive_int

COMMANDS.register("data", Group("data", help="data products the recipes read (the paper's mean 3D face)"))


@command
class MeanShape(Command):
    name = "data mean-shape"
    help = "the mean 3D face of Lee et al. Eq. 6 from a 300W-LP folder (for tasks.fld.mean_shape)"

    def add_arguments(self, p):
        p.add_argument("--data", required=True, help="300W-LP folder (AFW/, HELEN/, ... with <image>.mat; "
                       "landmarks/ for the projected 3D points)")
        p.add_argument("--out", required=True, help="JSON file to write (tasks: {fld: {mean_shape: FILE}})")
        p.add_argument("--max-angle", type=positive_float, default=20.0,
                       help="near-frontal window: |yaw|, |pitch|, |roll| below this many degrees (default 20: the "
                            "depth of the face needs some pose spread; the paper says 'close to zero')")
        p.add_argument("--max-samples", type=positive_int, default=None, help="use at most this many samples")
        p.add_argument("--flips", action="store_true", help="also use the _Flip folders")

    def run(self, args) -> int:
        existing_dir("--data", args.data)
        from pyface import geometry

        try:
            shape, n = geometry.mean_shape_from_300wlp(args.data, max_angle_deg=args.max_angle,
                                                       max_samples=args.max_samples, flips=args.flips,
                                                       return_samples=True)
        except ValueError as exc:  # too few near-frontal samples: a problem of the input
            from pyface.errors import DataError

            raise DataError(f"--data {args.data}: {exc}") from exc
        geometry.save_mean_shape(args.out, shape.numpy(), source=os.path.abspath(args.data),
                                 max_angle_deg=args.max_angle, samples=n, flips=bool(args.flips),
                                 method="pyface.geometry.mean_shape_from_300wlp (least squares over known poses)")
        print(f"wrote {args.out} ({n} near-frontal samples)")
        return 0
