"""``pyface analyze`` and ``pyface compare``."""
from __future__ import annotations

import json
import sys

from pyface.cli.command import Command, _arg_type, command, existing_file, existing_path, positive_float

DETECTOR_HELP = ("face detector: blazeface (PyTorch, needs nothing), mediapipe-short / mediapipe-full (the label "
                 "extra); default: mediapipe-full when installed, else blazeface")


def _analyzer(args):
    from pyface.analyze import FaceAnalyzer

    if args.checkpoint is not None and str(args.checkpoint).lower().endswith(".onnx"):  # pyface export's file
        from pyface.analyze.onnx_backend import OnnxBackend

        return FaceAnalyzer(backend=OnnxBackend(args.checkpoint), detector=args.detector, min_score=args.min_score)
    return FaceAnalyzer(args.checkpoint, detector=args.detector, min_score=args.min_score)


def _similarity(text: str):
    """A cosine similarity in [-1, 1], or ``REPORT.json[:SET]`` (kept as text: read in run)."""
    if text.lower().split(":", 1)[0].endswith(".json"):
        return text
    try:
        v = float(text)
    except ValueError:
        v = float("nan")
    if not -1.0 <= v <= 1.0:
        raise ValueError(f"expected a cosine similarity in [-1, 1] or an eval report.json[:SET], got {text!r}")
    return v


similarity = _arg_type(_similarity)


def threshold_from_report(text: str) -> tuple[float, str]:
    """The cosine threshold ``pyface eval verification`` chose (10-fold mean) on a set of
    its ``report.json``: ``PATH`` (the set, when it evaluated one) or ``PATH:SET``.
    Returns (threshold, what it is) or raises a UsageError naming --threshold."""
    from pyface.errors import UsageError

    path, _, name = text.partition(":")
    try:
        with open(path, encoding="utf-8") as f:
            sets = json.load(f).get("verification") or {}
    except (OSError, ValueError, AttributeError) as exc:
        raise UsageError(f"--threshold: cannot read {path} as a pyface eval report.json ({exc})") from None
    sets = {k: v for k, v in sets.items() if isinstance(v, dict) and "threshold" in v}
    if not sets:
        raise UsageError(f"--threshold: {path} holds no verification threshold (run pyface eval verification)")
    if not name:
        if len(sets) > 1:
            raise UsageError(f"--threshold: {path} has several verification sets; name one: "
                             + ", ".join(f"{path}:{k}" for k in sets))
        name = next(iter(sets))
    if name not in sets:
        raise UsageError(f"--threshold: {path} has no verification set {name!r} (it has {', '.join(sets)})")
    return float(sets[name]["threshold"]), f"{name} in {path}"


@command
class Analyze(Command):
    name = "analyze"
    help = "faces of photos, folders or videos: boxes, landmarks, pose, embeddings"
    description = """Detect and analyse the faces of pictures (and videos).

Without --checkpoint: the detector's boxes and key points, plus MediaPipe's landmarks and
the pose fitted to them when the label extra is installed. With a pyface train checkpoint:
the net's landmarks, pose and face embedding (what it has heads for). One picture -> JSON
(stdout, or --out FILE); several or a folder -> a Parquet table (--out, required), one row
per face. A file that cannot be read is one line on stderr and the others are processed.

Examples::

    pyface analyze photo.jpg
    pyface analyze photos/ --checkpoint run/model.pt --out faces.parquet --draw annotated/
    pyface analyze clip.mp4 --checkpoint run/model.pt --draw annotated/ --out clip.parquet
"""

    def add_arguments(self, p):
        p.add_argument("paths", nargs="+", metavar="PATH", help="image or video files, or folders of them")
        p.add_argument("--checkpoint", default=None,
                       help="model.pt, a pyface train run folder or a pyface export .onnx file (default: none)")
        p.add_argument("--out", default=None, help="JSON (one picture) or Parquet table (several / a folder / a video)")
        p.add_argument("--draw", default=None, metavar="DIR", help="write annotated pictures (PNG) / videos (MP4) here")
        p.add_argument("--detector", default=None, help=DETECTOR_HELP)
        p.add_argument("--min-score", type=positive_float, default=0.5, help="detector threshold (default 0.5)")
        p.add_argument("--no-embedding", action="store_true", help="leave embeddings out of the JSON")
        p.add_argument("--min-cutoff", type=positive_float, default=1.0, help="video: One-Euro min cut-off, Hz")
        p.add_argument("--beta", type=float, default=0.05, help="video: One-Euro speed coefficient (0: none)")
        p.add_argument("--no-smoothing", action="store_true", help="video: raw per-frame values")

    def run(self, args) -> int:
        from pyface.errors import UsageError

        for pth in args.paths:
            existing_path("PATH", pth)
        if args.checkpoint is not None:
            existing_path("--checkpoint", args.checkpoint, "checkpoint")
        from pyface.analyze.images import collect_inputs

        inputs = collect_inputs(args.paths)
        if not inputs:
            raise UsageError(f"PATH: no image or video file in {', '.join(args.paths)}")
        single_image = len(inputs) == 1 and inputs[0][0] == "image" and len(args.paths) == 1 \
            and not __import__("os").path.isdir(args.paths[0])
        if not single_image and args.out is None:
            raise UsageError("--out: several pictures, a folder or a video need a Parquet file to write to")
        if args.beta < 0:
            raise UsageError(f"--beta must be >= 0, got {args.beta}")
        from pyface.analyze.job import analyze_paths, write_faces_table
        from pyface.analyze.video import SmoothingParams

        analyzer = _analyzer(args)
        if analyzer.mesh is None and "landmarks" not in analyzer.outputs:  # say it once, not per face
            print("pyface analyze: no landmark model (no --checkpoint, and MediaPipe's face mesh needs the label "
                  "extra: pip install 'pyface-mtl[label]'): boxes and detector key points only", file=sys.stderr)
        video_opts = {"smoothing": SmoothingParams(args.min_cutoff, args.beta, enabled=not args.no_smoothing)}
        single_video = len(inputs) == 1 and inputs[0][0] == "video"
        if single_video:
            video_opts["out_table"] = args.out
        results, errors = analyze_paths(analyzer, args.paths, draw=args.draw, video_options=video_opts)
        if single_image:
            if not results:
                return 1
            r = results[0]
            doc = {"file": r["file"], "size": r["size"], "analyzer": analyzer.describe(),
                   "faces": [f.to_dict(embedding=not args.no_embedding) for f in r["faces"]]}
            if args.out is None:
                json.dump(doc, sys.stdout, indent=1)
                print()
            else:
                from pyface.io import write_json_atomic

                write_json_atomic(args.out, doc)
                print(f"wrote {args.out}: {len(r['faces'])} face(s)")
        elif single_video:
            if results:
                r = results[0]
                print(f"wrote {args.out}: {r['frames']} frames, {r['faces']} faces, {r['tracks']} tracks "
                      f"({r['frames_per_s']:.1f} frames/s)")
        else:
            n = write_faces_table(args.out, results, errors, {"analyzer": analyzer.describe()})
            for r in results:
                if r["kind"] == "video":
                    print(f"{r['file']}: {r['frames']} frames, {r['faces']} faces (annotated: {r['annotated']})")
            print(f"wrote {args.out}: {n} face(s) from {sum(r['kind'] == 'image' for r in results)} picture(s); "
                  f"{len(errors)} skipped")
        return 1 if errors and not results else 0


@command
class Compare(Command):
    name = "compare"
    help = "are the faces of two pictures the same person? (cosine similarity of their embeddings)"
    description = """Compare the best face of two pictures with a recognition checkpoint.

Prints the cosine similarity of the two flip-sum embeddings and "same" / "different" at
--threshold: a cosine similarity, or the report.json of `pyface eval verification` run
with the same checkpoint (`--threshold eval_out/report.json:lfw`): the threshold it chose
on that set (10-fold mean, best accuracy). The checkpoint file itself is never modified,
so the threshold lives in the evaluation's report.
"""

    def add_arguments(self, p):
        p.add_argument("a", metavar="A", help="first picture")
        p.add_argument("b", metavar="B", help="second picture")
        p.add_argument("--checkpoint", required=True, help="model.pt, a run folder or an .onnx file with an fr head")
        p.add_argument("--threshold", type=similarity, required=True, metavar="T|REPORT.json[:SET]",
                       help="cosine similarity at or above which the faces are the same person ([-1, 1]), or "
                            "an eval report.json whose verification threshold to use")
        p.add_argument("--detector", default=None, help=DETECTOR_HELP)
        p.add_argument("--min-score", type=positive_float, default=0.5, help="detector threshold (default 0.5)")
        p.add_argument("--json", action="store_true", help="print the result as JSON")

    def run(self, args) -> int:
        existing_file("A", args.a, "picture")
        existing_file("B", args.b, "picture")
        existing_path("--checkpoint", args.checkpoint, "checkpoint")
        from pyface.analyze.job import compare_files

        threshold = args.threshold
        if isinstance(threshold, str):
            threshold, source = threshold_from_report(threshold)
            print(f"threshold {threshold:.4f} from {source}", file=sys.stderr)
        r = compare_files(_analyzer(args), args.a, args.b, threshold)
        if args.json:
            print(json.dumps(r))
        else:
            print(f"similarity {r['similarity']:.4f} -> {'same' if r['same'] else 'different'} "
                  f"(threshold {r['threshold']:g})")
        return 0

