"""Algorithm 1 end to end (``pyface bench label``): images/s of :class:`pyface.label.Labeler`
with N views for the single-view net, the net with N = 8, with the eye-blink net, and
with MediaPipe (when the ``label`` extra is installed), all on the same batch in one
run, and where the time goes (warp, net, eyes, MediaPipe, fitting).

Random-weight nets (the cost does not depend on the weights; the heads are randomised
so that the fit sees spread-out samples). Default: the paper's labeling net
(``resnet50-fld-hpe``, 128 x 128) and ResNet18 eye net; ``--quick``: ResNet18 width 16
at 64 x 64. Algorithm 2 is benchmarked by its own module (``pyface bench dups`` times
its duplicate-search kernel).

``--ranks 1 2 --cpu-workers 0 1``: whole labeling jobs per (ranks, CPU workers)
configuration instead (:mod:`pyface.benchmarks._label_scaling`): images/s side by side,
the MediaPipe share, and a projection to 8 GPUs x 8 cores (a calculation)."""
from __future__ import annotations

import torch

from pyface.benchmarks import _harness as H

STAGES = ("warp", "net", "eyes", "mediapipe", "fit")


def add_arguments(p):
    p.add_argument("--images", type=int, default=None, help="images per batch (default 32; --quick: 8)")
    p.add_argument("--views", type=int, default=8)
    p.add_argument("--iters", type=int, default=None)
    p.add_argument("--preset", default=None, help="landmark net preset (default resnet50-fld-hpe; --quick and the "
                   "job configurations: resnet18-fld-hpe)")
    p.add_argument("--ranks", type=int, nargs="+", default=None,
                   help="whole labeling jobs instead: processes (gloo ranks, as torchrun) per configuration, e.g. 1 2")
    p.add_argument("--cpu-workers", type=int, nargs="+", default=None,
                   help="... and CPU worker processes per rank, e.g. 0 1 (every ranks x workers pair is measured)")
    p.add_argument("--repeats", type=int, default=None, help="interleaved rounds of the job configurations "
                   "(default 3; --quick 1)")


def _net(preset):
    from pyface.models import build_model

    torch.manual_seed(0)
    net = build_model(preset)
    with torch.no_grad():
        for h in net.heads.values():
            h.head.fc.weight.normal_(0, 0.2)
    return net.eval()


def run(args) -> dict:
    from pyface.data import SyntheticFaces
    from pyface.label import Labeler
    from pyface.label import mediapipe as M
    from pyface.label.views import View
    from pyface.models import build_model

    device = torch.device(args.device or H.default_device())
    if args.ranks or args.cpu_workers:
        from pyface.benchmarks import _label_scaling as J

        args.ranks = J.check(args.ranks or [1], "--ranks", 1)
        args.cpu_workers = J.check(args.cpu_workers or [0], "--cpu-workers", 0)
        return J.run(args, device)
    quick = args.quick
    B = args.images or (8 if quick else 32)
    iters = args.iters or (3 if quick else 5)
    preset = args.preset or ("resnet18-fld-hpe" if quick else "resnet50-fld-hpe")
    net = _net(preset)
    eye = build_model("resnet18-eyeblink").eval()
    size = net.config.input_size
    ds = SyntheticFaces(B, 1, image_size=max(size, 112), seed=0)
    images = [ds[i]["image"].permute(1, 2, 0).numpy().copy() for i in range(B)]
    cases = [("net, 1 view", dict(views=(View(),), min_samples=1)), (f"net, N={args.views}", dict(views=args.views)),
             (f"net + eye net, N={args.views}", dict(views=args.views, eye_net=eye))]
    if M.available():
        cases.append((f"net + eye net + MediaPipe, N={args.views}", dict(views=args.views, eye_net=eye,
                                                                          mediapipe=True)))
    else:
        print(f"MediaPipe rows skipped: {M.why_unavailable()}")
    labelers = [(name, Labeler(net, device=device, **{"mediapipe": False, **kw})) for name, kw in cases]
    rows = []
    for _, lab in labelers:  # one pass each after a shared warm-up, then interleaved repeats
        lab.label_arrays(images)
    times = {name: [] for name, _ in labelers}
    for _, lab in labelers:
        for k in lab.timings:
            lab.timings[k] = 0.0
    for _ in range(iters):
        for name, lab in labelers:
            r = H.measure(lambda lab=lab: lab.label_arrays(images), device, warmup=0, iters=1)
            times[name].append(r["ms"])
    import statistics

    base = None
    for name, lab in labelers:
        t = sorted(times[name])
        med = statistics.median(t)
        q1, q3 = (t[len(t) // 4], t[(3 * len(t)) // 4]) if len(t) > 1 else (med, med)
        total = sum(lab.timings.values()) or 1.0
        row = {"case": name, "images": B, "ms": med, "iqr_ms": q3 - q1, "images_per_s": 1e3 * B / med}
        base = base or row["images_per_s"]
        row["x_single_view"] = row["images_per_s"] / base
        row.update({f"{s}_%": 100 * lab.timings[s] / total for s in STAGES})
        rows.append(row)
    cols = [("case", "case"), ("images_per_s", "images/s"), ("ms", "ms/batch"), ("iqr_ms", "IQR ms"),
            ("x_single_view", "vs 1 view")] + [(f"{s}_%", f"{s} %") for s in STAGES]
    H.print_table(f"Algorithm 1, {preset} ({size}x{size}), batch {B} on {H.device_name(device)}", rows, cols)
    return {"bench": "label", "device": H.device_name(device), "device_type": device.type, "quick": quick,
            "preset": preset, "rows": rows}
