"""``pyface label ...`` sub-commands. Each is an ``add_parser(subparsers)`` function that
registers one command on the ``label`` sub-parser (see pyface/cli.py)."""
from __future__ import annotations

import argparse
import json

__all__ = ["add_landmarks_parser", "add_fit_index_map_parser", "LABEL_COMMANDS"]


def _labeler(args, views=None):
    from pyface.label import Labeler, Validity

    validity = Validity(min_extent=args.min_extent, centre_band=args.centre_band, centre_frac=args.centre_frac,
                        max_outside=args.max_outside)
    return Labeler(args.net, eye_net=getattr(args, "eye_net", None), mediapipe=args.mediapipe,
                   views=views if views is not None else args.views, threshold=args.threshold, device=args.device,
                   validity=validity, batch_size=args.net_batch, amp=not args.no_amp)


def _add_labeler_args(p, net_required: bool = False):
    from pyface.label.validity import Validity

    v = Validity()
    p.add_argument("--net", required=net_required, default=None,
                   help="pyface train checkpoint/model.pt with fld + hpe heads (e.g. the pretrain-fld-hpe recipe); "
                        "omit for MediaPipe-only labeling (no pose)")
    p.add_argument("--views", type=int, default=8, help="views per image (augmentation set A; default 8)")
    p.add_argument("--mediapipe", action=argparse.BooleanOptionalAction, default=True,
                   help="also sample MediaPipe's face mesh (needs pip install 'pyface-mtl[label]'; default on, "
                        "net-only with a warning when missing)")
    p.add_argument("--threshold", type=float, default=0.05, help="t_d: accept when all kept samples are within "
                   "this many face sizes of their mean (default 0.05, the paper's)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda when available)")
    p.add_argument("--net-batch", type=int, default=256, help="views per network forward")
    p.add_argument("--no-amp", action="store_true", help="float32 on CUDA (default: fp16 autocast)")
    g = p.add_argument_group("validity of a sample (fractions of the view side; see pyface.label.Validity)")
    g.add_argument("--min-extent", type=float, default=v.min_extent, help="too small: box below this in both axes")
    g.add_argument("--centre-band", type=float, default=v.centre_band, help="centre cluster: |x - S/2| below this")
    g.add_argument("--centre-frac", type=float, default=v.centre_frac, help="... for at least this fraction of points")
    g.add_argument("--max-outside", type=float, default=v.max_outside, help="outside: more points than this outside")


def _landmarks(args) -> int:
    from pyface.data import describe_spec, open_dataset
    from pyface.label.landmarks import label_dataset

    ds = open_dataset(args.data, on_error=args.on_error)  # errors name the spec before any model loads
    labeler = _labeler(args)
    summary = label_dataset(ds, labeler, args.out, resume=args.resume, shard_size=args.shard_size,
                            batch_size=args.batch_size, workers=args.workers, on_error=args.on_error,
                            progress=not args.no_progress, data_spec=describe_spec(args.data), limit=args.limit)
    print(f"labeled {summary['images']} images: {summary['accepted']} accepted "
          f"({100 * summary['acceptance_rate']:.1f}%), {summary['images_per_s']:.1f} images/s on {summary['device']}")
    print("rejections: " + ", ".join(f"{k} {v}" for k, v in summary["rejection_causes"].items()))
    print(f"wrote {summary['manifest']} and {args.out}/summary.json")
    return 0


def add_landmarks_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("landmarks", help="Algorithm 1: landmark + pose pseudo-labels for a dataset (resumable)")
    p.add_argument("--data", required=True, help="dataset: image folder, .parquet manifest (optional 'box' column), "
                   ".rec, 300W-LP root, or '{type: Name, ...}' of pyface.data")
    p.add_argument("--eye-net", default=None, help="eyeblink checkpoint (AdjustUpperEyes); optional")
    _add_labeler_args(p, net_required=False)
    p.add_argument("--out", required=True, help="output folder: shards, manifest.parquet, summary.json")
    p.add_argument("--resume", action="store_true", help="continue a killed run in --out (same configuration)")
    p.add_argument("--shard-size", type=int, default=1024, help="images per Parquet shard (the resume unit)")
    p.add_argument("--batch-size", type=int, default=64, help="images per labeler batch")
    p.add_argument("--workers", type=int, default=2, help="image-decoding DataLoader workers")
    p.add_argument("--on-error", choices=("raise", "skip"), default="raise",
                   help="unreadable image: stop with an error naming the file, or count it and go on")
    p.add_argument("--limit", type=int, default=None, help="label only the first N images")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_landmarks)
    return p


def _fit_index_map(args) -> int:
    from pyface.data import open_dataset
    from pyface.label.index_map import fit_index_map_on

    ds = open_dataset(args.data, on_error="skip")
    args.mediapipe = "require"
    result = fit_index_map_on(ds, _labeler(args, views=args.views), args.out, limit=args.limit)
    print(json.dumps({k: v for k, v in result.items() if k != "index_map"}, indent=1))
    print(f"wrote {args.out}")
    return 0


def add_fit_index_map_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("fit-index-map", help="learn MediaPipe's 468 -> 68 index map against the net (paper Fig. 5)")
    p.add_argument("--data", required=True, help="calibration images (any dataset spec, e.g. 300W-LP)")
    _add_labeler_args(p, net_required=True)
    p.add_argument("--limit", type=int, default=2000, help="calibration images (default 2000)")
    p.add_argument("--out", required=True, help="JSON file for the map (use with Labeler(index_map=...))")
    p.set_defaults(func=_fit_index_map)
    return p


#: The label sub-commands of this module, in help order. ``pyface label identities``
#: (Algorithm 2) plugs in beside these from its own module (see pyface/cli.py).
LABEL_COMMANDS = (add_landmarks_parser, add_fit_index_map_parser)
