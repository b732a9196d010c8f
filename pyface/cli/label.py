"""``pyface label landmarks|fit-index-map|identities``: the pseudo-labeling pipeline
(Lee et al. 2024, Algorithms 1 and 2; the jobs: pyface.label)."""
from __future__ import annotations

import argparse
import json

from pyface.cli.command import (
    COMMANDS,
    Command,
    Group,
    command,
    dataset_spec,
    existing_dir,
    existing_file,
    non_negative_int,
    positive_float,
    positive_int,
)
from pyface.errors import UsageError

COMMANDS.register("label", Group("label", help="pseudo-labeling pipeline (Lee et al. 2024, Algorithms 1 and 2)"))


# ----------------------------------------------------------------------------- Algorithm 1
def _add_labeler_args(p, net_required: bool = False):
    from pyface.label.validity import Validity  # numpy only: the defaults for --help

    v = Validity()
    p.add_argument("--net", required=net_required, default=None,
                   help="pyface train checkpoint/model.pt with fld + hpe heads (e.g. the pretrain-fld-hpe recipe); "
                        "omit for MediaPipe-only labeling (no pose)")
    p.add_argument("--views", type=positive_int, default=8, help="views per image (augmentation set A; default 8)")
    p.add_argument("--mediapipe", action=argparse.BooleanOptionalAction, default=True,
                   help="also sample MediaPipe's face mesh (needs pip install 'pyface-mtl[label]'; default on, "
                        "net-only with a warning when missing)")
    p.add_argument("--threshold", type=positive_float, default=0.05, help="t_d: accept when all kept samples are "
                   "within this many face sizes of their mean (default 0.05, the paper's)")
    p.add_argument("--min-samples", type=positive_int, default=1,
                   help="fewest valid samples that may give a label (default 1, the paper's Alg. 1; 2: the stricter "
                        "rule of pyface < 0.2)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda when available)")
    p.add_argument("--net-batch", type=positive_int, default=256, help="views per network forward")
    p.add_argument("--no-amp", action="store_true", help="float32 on CUDA (default: fp16 autocast)")
    g = p.add_argument_group("validity of a sample (fractions of the view side; see pyface.label.Validity)")
    g.add_argument("--min-extent", type=float, default=v.min_extent, help="too small: box below this in both axes")
    g.add_argument("--centre-band", type=float, default=v.centre_band, help="centre cluster: |x - S/2| below this")
    g.add_argument("--centre-frac", type=float, default=v.centre_frac, help="... for at least this fraction of points")
    g.add_argument("--max-outside", type=float, default=v.max_outside, help="outside: more points than this outside")


def _check_labeler_args(args) -> None:
    if args.net is not None:
        existing_file("--net", args.net, "checkpoint")
    if getattr(args, "eye_net", None) is not None:
        existing_file("--eye-net", args.eye_net, "checkpoint")


def _labeler(args, views=None, device=None):
    from pyface.label import Labeler, Validity

    validity = Validity(min_extent=args.min_extent, centre_band=args.centre_band, centre_frac=args.centre_frac,
                        max_outside=args.max_outside)
    return Labeler(args.net, eye_net=getattr(args, "eye_net", None), mediapipe=args.mediapipe,
                   views=views if views is not None else args.views, threshold=args.threshold,
                   device=device if device is not None else args.device, validity=validity,
                   batch_size=args.net_batch, amp=not args.no_amp, cpu_workers=getattr(args, "cpu_workers", 0),
                   min_samples=args.min_samples)


# ----------------------------------------------------------------------------- many processes
_SCALE_HELP = """
Many GPUs and machines: run the same command under torchrun (one process per GPU; the
ranks split the shards, rank 0 writes manifest.parquet and summary.json), or as the parts
of a job array with --part k/N and then `pyface label finalize OUT`. The files are the
same, byte for byte, as one process writes. See the README, "Labeling a large data set".

    torchrun --nproc_per_node 8 -m pyface label landmarks --data D --net N --out OUT --cpu-workers 7
    pyface label landmarks --data D --net N --out OUT --part $((SLURM_ARRAY_TASK_ID + 1))/16
"""


def _add_scale_args(p) -> None:
    p.add_argument("--part", default=None, metavar="K/N",
                   help="job array: do part K of N of the work (1 <= K <= N) and leave the final files to "
                        "`pyface label finalize OUT` (combines with torchrun)")


def _split(args, device_flag):
    """(WorkSplit, device) for this process: torchrun's rank (process group set up here;
    cuda becomes cuda:LOCAL_RANK) and the --part of a job array."""
    from pyface import runtime
    from pyface.distributed import setup
    from pyface.work_split import WorkSplit, parse_part

    part = parse_part(args.part)
    ctx, device = setup(runtime.resolve_device(device_flag, what="--device"))
    return WorkSplit(ctx, part), device


def _part_done(split, out: str, what: str) -> None:
    if split.leader:
        print(f"part {split.part}: {what} in {out}; when every part is done: pyface label finalize {out}")


@command
class Landmarks(Command):
    name = "label landmarks"
    help = "Algorithm 1: landmark + pose pseudo-labels for a dataset (resumable; torchrun / job arrays)"
    description = "Algorithm 1: landmark + pose pseudo-labels for a dataset (resumable).\n" + _SCALE_HELP
    elastic_record = True

    def add_arguments(self, p):
        p.add_argument("--data", required=True, help="dataset: image folder, .parquet manifest (optional 'box' "
                       "column), .rec, 300W-LP root, or '{type: Name, ...}' of pyface.data")
        p.add_argument("--eye-net", default=None, help="eyeblink checkpoint (AdjustUpperEyes); optional")
        _add_labeler_args(p, net_required=False)
        p.add_argument("--out", required=True, help="output folder: shards, manifest.parquet, summary.json")
        p.add_argument("--resume", action="store_true", help="continue a killed run in --out (same configuration)")
        p.add_argument("--shard-size", type=positive_int, default=1024, help="images per Parquet shard (the resume "
                       "unit)")
        p.add_argument("--batch-size", type=positive_int, default=64, help="images per labeler batch")
        p.add_argument("--workers", type=non_negative_int, default=2, help="image-decoding DataLoader workers")
        p.add_argument("--on-error", choices=("raise", "skip"), default="raise",
                       help="unreadable image: stop with an error naming the file, or count it and go on")
        p.add_argument("--limit", type=positive_int, default=None, help="label only the first N images")
        p.add_argument("--cpu-workers", type=non_negative_int, default=0,
                       help="processes (per rank) for the views' warps, MediaPipe and its validity checks, so the "
                            "GPU is fed while K cores run the face mesh (default 0: in the labeling process; the "
                            "labels are the same for every K)")
        _add_scale_args(p)
        p.add_argument("--no-progress", action="store_true")

    def run(self, args) -> int:
        dataset_spec("--data", args.data)
        _check_labeler_args(args)
        from pyface.data import describe_spec, open_dataset
        from pyface.label.landmarks import label_dataset

        split, device = _split(args, args.device)
        ds = open_dataset(args.data, on_error=args.on_error)  # errors name the spec before any model loads
        with _labeler(args, device=device) as labeler:
            summary = label_dataset(ds, labeler, args.out, resume=args.resume, shard_size=args.shard_size,
                                    batch_size=args.batch_size, workers=args.workers, on_error=args.on_error,
                                    progress=not args.no_progress, data_spec=describe_spec(args.data),
                                    limit=args.limit, split=split)
        if split.part is not None:
            _part_done(split, args.out, "shards written")
        if summary is None:
            return 0
        print(f"labeled {summary['images']} images: {summary['accepted']} accepted "
              f"({100 * summary['acceptance_rate']:.1f}%), {summary['images_per_s']:.1f} images/s on "
              f"{summary['device']}")
        print("rejections: " + ", ".join(f"{k} {v}" for k, v in summary["rejection_causes"].items()))
        print(f"wrote {summary['manifest']} and {args.out}/summary.json")
        return 0


@command
class Finalize(Command):
    name = "label finalize"
    help = "job arrays: check that every part of a label run is done and write its final files"
    description = """After the parts of a job array (--part K/N) of `pyface label landmarks` or `pyface label
identities` are done: check that every shard / embedding unit is there (an error lists the
missing ones) and write what one process would have written at the end -- the same files.

    pyface label finalize OUT
"""

    def add_arguments(self, p):
        p.add_argument("out", help="the --out folder of the parts")
        p.add_argument("--no-progress", action="store_true")

    def run(self, args) -> int:
        existing_dir("OUT", args.out, "label output folder")
        import os

        job = os.path.join(args.out, IDENTITIES_JOB)
        if os.path.exists(job):
            return _finalize_identities(args.out, job, progress=not args.no_progress)
        from pyface.label.landmarks import finalize_landmarks

        summary = finalize_landmarks(args.out)
        print(f"{summary['shards']} shards, {summary['images']} images: {summary['accepted']} accepted "
              f"({100 * summary['acceptance_rate']:.1f}%)")
        print(f"wrote {summary['manifest']} and {args.out}/summary.json")
        return 0


@command
class FitIndexMap(Command):
    name = "label fit-index-map"
    help = "learn MediaPipe's 468 -> 68 index map against the net (paper Fig. 5)"

    def add_arguments(self, p):
        p.add_argument("--data", required=True, help="calibration images (any dataset spec, e.g. 300W-LP)")
        _add_labeler_args(p, net_required=True)
        p.add_argument("--limit", type=positive_int, default=2000, help="calibration images (default 2000)")
        p.add_argument("--out", required=True, help="JSON file for the map (use with Labeler(index_map=...))")

    def run(self, args) -> int:
        dataset_spec("--data", args.data)
        _check_labeler_args(args)
        from pyface.data import open_dataset
        from pyface.label.index_map import fit_index_map_on

        ds = open_dataset(args.data, on_error="skip")
        args.mediapipe = "require"
        result = fit_index_map_on(ds, _labeler(args, views=args.views), args.out, limit=args.limit)
        print(json.dumps({k: v for k, v in result.items() if k != "index_map"}, indent=1))
        print(f"wrote {args.out}")
        return 0


# ----------------------------------------------------------------------------- Algorithm 2
#: ``pyface label identities``'s flags for the fields of pyface.label.identities.IdentitiesConfig:
#: the command builds the configuration from them, and the job's errors name them.
IDENTITIES_FLAGS = {
    "datasets": "--dataset", "net_a": "--net-a", "net_b": "--net-b", "out": "--out",
    "threshold_a": "--threshold-a", "threshold_b": "--threshold-b", "calibrate": "--calibrate",
    "semi_identify": "--semi-identify", "landmarks": "--landmarks", "semi_labels": "--semi-labels",
    "keep_rejected": "--keep-rejected", "duplicate_scope": "--duplicate-scope", "resume": "--resume",
    "batch_size": "--batch-size",
    "chunk_size": "--chunk-size", "face_crop_area": "--face-crop-area", "workers": "--workers",
    "device": "--device", "amp": "--no-amp", "progress": "--no-progress",
}


def identities_flag(field: str, key: str | None = None) -> str:
    """The flag of a configuration field (``--dataset vgg`` for one dataset), the
    ``name_of`` of run_identities; a field with no flag keeps its name."""
    flag = IDENTITIES_FLAGS.get(field, field)
    return flag if key is None else f"{flag} {key}"


def parse_dataset_args(items: list[str]) -> dict:
    """``--dataset NAME=SPEC`` (repeated) -> ``{NAME: SPEC}`` in the given order."""
    out = {}
    for it in items:
        if "=" not in it:
            raise UsageError(f"--dataset {it!r}: expected NAME=SPEC (e.g. vggface2=/data/vggface2/train)")
        name, spec = it.split("=", 1)
        if name in out:
            raise UsageError(f"--dataset name {name!r} given twice")
        out[name] = spec
    for name, spec in out.items():
        dataset_spec(f"--dataset {name}", spec)
    return out


#: The arguments of a job-array run of ``label identities``, for ``pyface label finalize``.
IDENTITIES_JOB = "identities-job.json"


def _finalize_identities(out: str, job: str, progress: bool = True) -> int:
    """``pyface label finalize`` of a job array of ``label identities``: the recorded
    arguments, every embedding unit required on disk, then the merge and the manifest."""
    import argparse
    import json

    with open(job) as f:
        recorded = json.load(f)
    args = argparse.Namespace(**{**recorded, "resume": True, "part": None, "no_progress": not progress})
    return Identities().run(args, complete=True)


@command
class Identities(Command):
    name = "label identities"
    help = "Algorithm 2: deduplicate identities across FR datasets with two FR nets and write the PLTD manifest"
    description = ("Algorithm 2: deduplicate identities across FR datasets with two FR nets and write the PLTD "
                   "manifest.\n" + _SCALE_HELP.replace("label landmarks --data D --net N",
                                                        "label identities --dataset ... --net-a A --net-b B"))
    elastic_record = True

    def add_arguments(self, p):
        p.add_argument("--dataset", action="append", required=True, metavar="NAME=SPEC",
                       help="a face-recognition dataset (image folder per identity, .rec, .parquet manifest, or a "
                            "YAML spec); repeat for each; the order numbers the new identities")
        p.add_argument("--net-a", required=True, help="pyface train checkpoint with an FR head (e.g. trained on "
                       "VGGFace2)")
        p.add_argument("--net-b", required=True, help="second FR checkpoint (e.g. trained on MS1MV3)")
        p.add_argument("--threshold-a", type=float, default=None, help="cosine threshold of net A")
        p.add_argument("--threshold-b", type=float, default=None, help="cosine threshold of net B")
        p.add_argument("--calibrate", default=None, metavar="PAIRS.bin",
                       help="calibrate both thresholds as the best-accuracy threshold on this verification .bin")
        p.add_argument("--semi-identify", default=None, metavar="300W-LP-SPEC",
                       help="300W-LP: one identity per source 300W face, then merged into the FR identities")
        p.add_argument("--landmarks", nargs="+", default=None, metavar="DIR",
                       help="Algorithm-1 output folders (pyface label landmarks --out DIR, one per dataset) to join "
                            "into OUT/manifest.parquet")
        p.add_argument("--semi-labels", choices=("dataset", "landmarks"), default="dataset",
                       help="labels of the --semi-identify rows in the manifest: the dataset's own (300W-LP ground "
                            "truth, default) or Algorithm 1's from --landmarks")
        p.add_argument("--keep-rejected", action="store_true",
                       help="keep images Algorithm 1 rejected (NaN landmarks/pose) instead of leaving them out")
        p.add_argument("--duplicate-scope", choices=("all", "cross"), default="all",
                       help="duplicate search over every identity pair, inside each dataset too (all: the paper's "
                            "Algorithm 2, default) or only across datasets (cross)")
        p.add_argument("--out", required=True, help="output folder")
        p.add_argument("--resume", action="store_true", help="continue a killed run in OUT (same settings)")
        p.add_argument("--batch-size", type=positive_int, default=64)
        # the job's defaults (IdentitiesConfig; importing it here would import torch; a test keeps them equal)
        p.add_argument("--chunk-size", type=positive_int, default=8192, help="images per resumable unit")
        p.add_argument("--face-crop-area", type=positive_float, default=2.0,
                       help="crop of images with known landmarks (300W-LP), as a multiple of the landmark box area")
        p.add_argument("--workers", type=non_negative_int, default=4, help="DataLoader worker processes")
        p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda when available)")
        p.add_argument("--no-amp", action="store_true", help="fp32 on CUDA (default: fp16 autocast)")
        _add_scale_args(p)
        p.add_argument("--no-progress", action="store_true")

    def run(self, args, complete: bool = False) -> int:
        datasets = parse_dataset_args(args.dataset)
        existing_file("--net-a", args.net_a, "checkpoint")
        existing_file("--net-b", args.net_b, "checkpoint")
        if args.calibrate is not None:
            existing_file("--calibrate", args.calibrate, "verification .bin")
        if args.semi_identify is not None:
            dataset_spec("--semi-identify", args.semi_identify)
        for d in args.landmarks or []:
            existing_dir("--landmarks", d)
        from pyface.label.identities import IdentitiesConfig, run_identities

        split, device = _split(args, args.device)
        config = IdentitiesConfig(
            datasets=datasets, net_a=args.net_a, net_b=args.net_b, out=args.out, threshold_a=args.threshold_a,
            threshold_b=args.threshold_b, calibrate=args.calibrate, semi_identify=args.semi_identify,
            landmarks=args.landmarks, keep_rejected=args.keep_rejected, semi_labels=args.semi_labels,
            duplicate_scope=args.duplicate_scope,
            batch_size=args.batch_size, chunk_size=args.chunk_size, face_crop_area=args.face_crop_area,
            device=device, amp=not args.no_amp, workers=args.workers, resume=args.resume,
            progress=not args.no_progress, complete=complete)
        if split.part is not None and split.leader:  # what finalize runs again (every part records the same)
            import os

            from pyface.io import write_json_atomic

            os.makedirs(args.out, exist_ok=True)
            write_json_atomic(os.path.join(args.out, IDENTITIES_JOB),
                              {k: v for k, v in vars(args).items() if k not in ("part", "resume", "rest")})
        summary = run_identities(config, name_of=identities_flag, split=split)
        if split.part is not None:
            _part_done(split, args.out, "embedding units written")
        if summary is None:
            return 0
        th = summary["thresholds"]
        print(f"thresholds: a={th['a']:.4f} b={th['b']:.4f}" + (" (calibrated)" if th["calibration"] else ""))
        print(f"identities: {summary['identities_before']} before, {summary['identities_after']} after "
              f"({summary['merges']} merges: {summary['merges_per_dataset_pair']})")
        if summary["manifest"]:
            m = summary["manifest"]
            print(f"manifest: {m['rows_out']} rows of {m['rows_in']} ({m['rejected_dropped']} rejected, "
                  f"{m['unmatched_dropped']} unmatched, {m['no_identity_dropped']} without identity dropped)")
        print(f"wrote {args.out}/summary.json, identity_map.csv, merges.csv"
              + (", manifest.parquet" if summary["manifest"] else ""))
        return 0
