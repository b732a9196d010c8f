"""Training throughput (images/s) of a multitask model with the fused losses vs the
pure-PyTorch references: one full SGD step (forward, Eq. 1 loss, backward, update)
on random in-memory batches, so data loading is not measured."""
from __future__ import annotations

import torch

from pyface.benchmarks import _harness as H


def add_arguments(p):
    p.add_argument("--preset", default="iresnet50-multi")
    p.add_argument("--batch", type=int, default=None, help="default 128 on cuda, 16 on cpu (--quick: 4)")
    p.add_argument("--classes", type=int, default=None, help="FR classes (default 100000 on cuda, 10000 on cpu)")
    p.add_argument("--amp", choices=["none", "bf16", "fp16"], default=None, help="default bf16 on cuda, none on cpu")
    p.add_argument("--iters", type=int, default=None)


def _step_fn(preset, batch, classes, amp, fused, device):
    from pyface.models import build_model
    from pyface.train.tasks import MultiTaskLoss, TaskContext

    torch.manual_seed(0)
    model = build_model(preset).to(device)
    cfg = model.config
    tasks = {t: {"num_classes": classes} if t == "fr" else {} for t in cfg.tasks}
    loss = MultiTaskLoss(tasks, TaskContext(cfg, fused=fused)).to(device)
    opt = torch.optim.SGD(list(model.parameters()) + list(loss.parameters()), lr=1e-3, momentum=0.9)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == "fp16")
    n = cfg.input_size
    x = torch.randint(0, 256, (batch, 3, n, n), dtype=torch.uint8, device=device)
    b = {"identity": torch.randint(0, classes, (batch,), device=device),
         "landmarks": torch.rand(batch, 68, 2, device=device) * n, "pose": (torch.rand(batch, 3, device=device) - 0.5) * 120}
    dt = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)

    def step():
        with torch.autocast(device.type, dtype=dt, enabled=dt is not None):
            out = model(x)
        total, _ = loss(out, b)
        opt.zero_grad(set_to_none=True)
        scaler.scale(total).backward()
        scaler.step(opt)
        scaler.update()

    return step, model.parameter_counts()["total"]


def run(args) -> dict:
    device = torch.device(args.device or H.default_device())
    cuda = device.type == "cuda"
    batch = args.batch or (4 if args.quick else (128 if cuda else 16))
    classes = args.classes or (100_000 if cuda else 10_000)
    amp = args.amp or ("bf16" if cuda else "none")
    iters = args.iters or (2 if args.quick else (20 if cuda else 3))
    rows = []
    for fused in (True, False):
        step, nparams = _step_fn(args.preset, batch, classes, amp, fused, device)
        r = H.measure(step, device, warmup=2 if cuda else 1, iters=iters)
        rows.append({"ops": "fused" if fused else "reference", "ms": r["ms"], "images_per_s": batch / r["ms"] * 1e3,
                     "peak_extra_mb": r["peak_extra_mb"]})
        del step
    ratio = rows[0]["images_per_s"] / rows[1]["images_per_s"]
    rows[0]["speedup"] = ratio
    title = (f"train step, {args.preset} ({nparams / 1e6:.1f}M params), batch {batch}, {classes} classes, "
             f"amp {amp} on {H.device_name(device)}")
    H.print_table(title, rows, [("ops", "ops"), ("ms", "ms/step"), ("images_per_s", "images/s"),
                                ("speedup", "fused/ref"), ("peak_extra_mb", "peak MB")])
    return {"device_type": device.type, "device": H.device_name(device), "preset": args.preset, "batch": batch,
            "classes": classes, "amp": amp, "rows": rows}
