"""Training steps with the fused losses vs the pure-PyTorch references, timed side by
side (warm-up, then interleaved rounds; median and IQR of each side and of the ratio).

- ``classifier``: the FR classifier step where the fused LPMC loss matters:
  embeddings [B, D] -> LPMCLoss (fused=True / False) forward + backward + an SGD step
  on the class centres [C, D], at C = 93,431 (VGGFace2-size) and 1,000,000.
- ``model``: one full multitask step (backbone forward, Eq. 1 loss, backward,
  update) on random in-memory batches, so data loading is not measured. The backbone
  dominates it: expect a ratio near 1.
"""
from __future__ import annotations

import torch

from pyface.benchmarks import _harness as H

PARTS = ("classifier", "model")


def add_arguments(p):
    p.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    p.add_argument("--repeats", type=int, default=None, help="interleaved rounds per side (default 7; --quick 5)")
    p.add_argument("--steps", type=int, default=None, help="steps timed per round (default 1; --quick model: 2)")
    # classifier step
    p.add_argument("--classes", type=int, nargs="+", default=None,
                   help="classifier: class counts (default 93431 1000000; --quick: 93431)")
    p.add_argument("--cls-batch", type=int, default=128)
    p.add_argument("--dim", type=int, default=512)
    # model step
    p.add_argument("--preset", default=None, help="model: default iresnet50-multi (--quick: iresnet10-multi-64)")
    p.add_argument("--batch", type=int, default=None, help="model: default 128 on cuda, 16 on cpu (--quick: 32)")
    p.add_argument("--model-classes", type=int, default=None, help="model: FR classes (default 100000 cuda, 10000 cpu)")
    p.add_argument("--amp", choices=["none", "bf16", "fp16"], default=None,
                   help="model: default bf16 on cuda, none on cpu")


def _classifier_step(B, D, C, fused, device, weight=None):
    """One step's closure and the class centres it trains; ``weight`` shares the
    centres (and their gradient buffer) of another closure, so a side-by-side run at
    C = 1M holds them once (2 GB each for W and its gradient)."""
    from pyface.nn import LPMCLoss

    g = torch.Generator(device="cpu").manual_seed(0)
    head = LPMCLoss(C, D, fused=fused).to(device)
    if weight is not None:
        head.weight = weight
    opt = torch.optim.SGD(head.parameters(), lr=0.1)
    emb = torch.randn(B, D, generator=g).to(device).requires_grad_(True)
    labels = torch.randint(0, C, (B,), generator=g).to(device)
    pose = ((torch.rand(B, 3, generator=g) - 0.5) * 120).to(device)

    def step():
        opt.zero_grad(set_to_none=False)
        emb.grad = None
        head(emb, labels, pose).backward()
        opt.step()

    return step, head.weight


def _model_step(preset, batch, classes, amp, fused, device):
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
         "landmarks": torch.rand(batch, 68, 2, device=device) * n,
         "pose": (torch.rand(batch, 3, device=device) - 0.5) * 120}
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


def _row(case: dict, res: dict, per_item: int | None = None) -> dict:
    f, r = res["sides"]["fused"], res["sides"]["reference"]
    ratio = res["ratios"].get("reference/fused", {})
    row = {**case,
           "fused_ms": f["ms"], "fused_iqr_ms": f["ms_iqr"], "ref_ms": r["ms"], "ref_iqr_ms": r["ms_iqr"],
           "speedup": ratio.get("median", float("nan")), "speedup_q1": ratio.get("q1", float("nan")),
           "speedup_q3": ratio.get("q3", float("nan")), "rounds": ratio.get("rounds", 0),
           "fused_peak_mb": f["peak_extra_mb"], "ref_peak_mb": r["peak_extra_mb"], "ref_oom": r["oom"]}
    if per_item:
        row["fused_items_per_s"] = per_item / f["ms"] * 1e3
        row["ref_items_per_s"] = per_item / r["ms"] * 1e3
    return row


COLUMNS = [("fused_ms", "fused ms"), ("fused_iqr_ms", "IQR"), ("ref_ms", "ref ms"), ("ref_iqr_ms", "IQR"),
           ("speedup", "ref/fused"), ("speedup_q1", "q1"), ("speedup_q3", "q3"),
           ("fused_peak_mb", "fused peak MB"), ("ref_peak_mb", "ref peak MB")]


def run(args) -> dict:
    device = torch.device(args.device or H.default_device())
    cuda = device.type == "cuda"
    quick = args.quick
    repeats = args.repeats or (5 if quick else (20 if cuda else 7))
    warmup = 3 if cuda else 1
    out = {"device_type": device.type, "device": H.device_name(device), "repeats": repeats, "warmup": warmup}

    if "classifier" in args.parts:
        classes = args.classes or ([93_431] if quick else [93_431, 1_000_000])
        steps = args.steps or 1
        rows = []
        for C in classes:
            fused, w = _classifier_step(args.cls_batch, args.dim, C, True, device)
            ref, _ = _classifier_step(args.cls_batch, args.dim, C, False, device, weight=w)
            res = H.compare({"fused": fused, "reference": ref}, device, warmup=warmup, repeats=repeats, steps=steps)
            del fused, ref, w
            rows.append(_row({"B": args.cls_batch, "D": args.dim, "C": C, "dtype": "fp32"}, res))
            print(f"classifier C={C}: ref/fused {rows[-1]['speedup']:.3g} (IQR {rows[-1]['speedup_q1']:.3g}-"
                  f"{rows[-1]['speedup_q3']:.3g})", flush=True)
        H.print_table(f"classifier step (LPMC fwd + bwd + SGD on the centres), fp32, {repeats} interleaved rounds "
                      f"of {steps} step(s) on {H.device_name(device)}", rows,
                      [("C", "classes"), *COLUMNS])
        out["classifier"] = {"steps_per_round": steps, "rows": rows}

    if "model" in args.parts:
        preset = args.preset or ("iresnet10-multi-64" if quick else "iresnet50-multi")
        batch = args.batch or (32 if quick else (128 if cuda else 16))
        classes = args.model_classes or (100_000 if cuda else 10_000)
        amp = args.amp or ("bf16" if cuda else "none")
        steps = args.steps or (2 if quick else 1)
        f_step, nparams = _model_step(preset, batch, classes, amp, True, device)
        r_step, _ = _model_step(preset, batch, classes, amp, False, device)
        res = H.compare({"fused": f_step, "reference": r_step}, device, warmup=warmup, repeats=repeats, steps=steps)
        del f_step, r_step
        row = _row({"preset": preset, "params_m": nparams / 1e6, "batch": batch, "classes": classes, "amp": amp},
                   res, per_item=batch)
        H.print_table(f"model step, {preset} ({nparams / 1e6:.1f}M params), batch {batch}, {classes} classes, "
                      f"amp {amp}, "
                      f"{repeats} interleaved rounds of {steps} step(s) on {H.device_name(device)}", [row],
                      [("batch", "batch"), *COLUMNS, ("fused_items_per_s", "fused img/s")])
        out["model"] = {"steps_per_round": steps, "rows": [row]}
    return out
