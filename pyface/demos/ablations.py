"""``pyface demo ablations``: the papers' claimed effects, measured in miniature on the
embedded synthetic faces (no downloads), several seeds per arm, reported in the layout of
the papers' tables (``report.md``, ``ablations.png``, ``metrics.json``).

Parts (each arm trained once per seed; seeds change the initialisation, the batch order
and the augmentation draws, the rendered data stay fixed):

- **Table 9** (Lee et al.): L_FLD with lambda_P = 0, 1 and the dynamic lambda_P, plus the
  dynamic lambda_P in the normalised coordinates of pyface < 0.2 (``units: normalized``).
  The small MTL net of ``pyface demo`` (FR + FLD + HPE, 48 px); NME and pose MAE on
  held-out identities, verification accuracy, and the early-training landmark curve (NME
  of a fixed held-out subset every few steps of the first epoch: "the primary intent ...
  is ... to facilitate the initial learning of the landmarks").
- **Table 4** (Lee et al.): the pose margin m1 + m2 * gamma_P against a constant CosFace
  margin m1 (``m2: 0``), same net and data; verification accuracy with probes split by
  |yaw| into soft (0-30), medium (30-60) and hard (60-90) as in the paper's IJB-C
  protocol (templates: the mean embedding of an identity's soft images).
- **Algorithm 1**: N = 1, 4, 8 views of the labeler (net only; with MediaPipe too when
  the ``label`` extra is installed) on held-out faces whose labels stay hidden:
  acceptance and NME / pose MAE of the accepted pseudo-labels, and NME on the images
  every arm accepted (paired).
- **HMTL** (Pourmirzaei et al., Table 2 / 5 / 6 set-up): SL (HopeNet) vs HMTL with 2x2
  and with 3x3 puzzling at flag 3 (loss x 50, Sec. 4.2) in the small-data regime of
  ``pyface demo hmtl``; held-out pose MAE.

Runs are spread over ``workers`` processes of one thread each. Every number is reported as
it comes out (mean +- std over seeds, and the paired per-seed difference to the arm the
paper compares against); the report's notes say what was checked where an effect does
not appear. Wall time depends on the machine's load: the report gives CPU seconds too.
"""
from __future__ import annotations

import json
import math
import os
import resource
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from pyface.io import write_json_atomic, write_text_atomic

__all__ = ["PARTS", "Sizes", "FULL", "QUICK", "run_ablations", "verification_by_yaw", "summarize"]

PARTS = ("table9", "table4", "alg1", "hmtl")
YAW_CASES = (("soft", 0.0, 30.0), ("medium", 30.0, 60.0), ("hard", 60.0, 90.0))


@dataclass(frozen=True)
class Sizes:
    mtl_ids: int = 1000            # Table 9 / 4 training identities x images each (48 px)
    mtl_per: int = 12
    mtl_epochs: int = 4
    test_ids: int = 150            # held-out identities x images (|yaw| up to MAX_YAW)
    test_per: int = 12
    curve_every: int = 15          # early landmark curve: steps between points (first epoch)
    curve_images: int = 256
    hmtl_ids: int = 4              # HMTL "subjects" x images (64 px), as pyface demo hmtl
    hmtl_per: int = 160
    hmtl_epochs: int = 16
    hmtl_test_ids: int = 40
    hmtl_test_per: int = 6
    fld_ids: int = 300             # Algorithm 1's labeling net (64 px)
    fld_per: int = 10
    fld_epochs: int = 8
    label_ids: int = 60            # faces labeled per seed
    label_per: int = 5


FULL = Sizes()
QUICK = Sizes(mtl_ids=24, mtl_per=4, mtl_epochs=1, test_ids=12, test_per=6, curve_every=1, curve_images=32,
              hmtl_ids=2, hmtl_per=16, hmtl_epochs=1, hmtl_test_ids=4, hmtl_test_per=4, fld_ids=20, fld_per=4,
              fld_epochs=1, label_ids=6, label_per=3)
MAX_YAW = 85.0
MTL_LPMC = {"scale": 32.0, "m1": 0.2, "m2": 0.3}   # pyface demo's LPMC for the small net (DEMO_SCALE, ...)
VIEWS = (1, 4, 8)

# arm -> config overrides of the miniature MTL run; "dynamic" is the paper's method (both tables)
MTL_ARMS = {
    "lambda0": {"tasks": {"fld": {"lambda_p": 0.0}}},
    "lambda1": {"tasks": {"fld": {"lambda_p": 1.0}}},
    "dynamic": {},
    "dynamic_normalized": {"tasks": {"fld": {"units": "normalized"}}},
    "constant_margin": {"tasks": {"fr": {"m2": 0.0}}},
}
PART_ARMS = {"table9": ("lambda0", "lambda1", "dynamic", "dynamic_normalized"),
             "table4": ("dynamic", "constant_margin")}
HMTL_ARMS = {"SL": None, "HMTL 2x2": 2, "HMTL 3x3": 3}


# ------------------------------------------------------------------------------ protocols
def verification_by_yaw(emb, identity, yaw, *, seed: int = 0, cases=YAW_CASES) -> dict:
    """Lee et al.'s pose protocol on images: per identity a template (the mean of the
    L2-normalised embeddings of its soft images, |yaw| < 30; a soft probe is left out of its
    own template); each probe image is paired with its identity's template (genuine) and
    with a random other identity's (impostor); 10-fold verification accuracy
    (:func:`pyface.eval.verification_accuracy`) per |yaw| case and over all probes."""
    from pyface.eval import verification_accuracy

    e = np.asarray(emb, np.float64)
    e = e / np.linalg.norm(e, axis=1, keepdims=True).clip(1e-12)
    ident, ay = np.asarray(identity), np.abs(np.asarray(yaw, np.float64))
    soft = ay < cases[0][2]
    ids = np.unique(ident)
    sums = {i: e[(ident == i) & soft].sum(0) for i in ids}
    counts = {i: int(((ident == i) & soft).sum()) for i in ids}
    rng = np.random.default_rng(seed)
    t1, t2, same, case_of = [], [], [], []
    for k in range(len(e)):
        i = ident[k]
        own_n = counts[i] - int(soft[k])
        if own_n < 1:
            continue
        own = (sums[i] - (e[k] if soft[k] else 0.0)) / own_n
        others = [j for j in ids if j != i and counts[j] > 0]
        if not others:
            continue
        j = others[int(rng.integers(len(others)))]
        name = next((c for c, lo, hi in cases if lo <= ay[k] < hi), None)
        for tmpl, s in ((own, True), (sums[j] / counts[j], False)):
            t1.append(tmpl)
            t2.append(e[k])
            same.append(s)
            case_of.append(name)
    t1, t2, same, case_of = np.array(t1), np.array(t2), np.array(same), np.array(case_of, dtype=object)
    out = {}
    for name in ["all"] + [c for c, _, _ in cases]:
        m = np.ones(len(same), bool) if name == "all" else case_of == name
        if m.sum() >= 20 and same[m].any() and (~same[m]).any():
            r = verification_accuracy(t1[m], t2[m], same[m])
            out[name] = {"accuracy": r["accuracy"], "std": r["std"], "pairs": int(m.sum())}
    return out


def summarize(values) -> dict:
    """mean, sample std (ddof 1; 0 for one value), n, and the values."""
    v = [float(x) for x in values if x is not None and math.isfinite(float(x))]
    if not v:
        return {"mean": float("nan"), "std": float("nan"), "n": 0, "values": []}
    return {"mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, "n": len(v),
            "values": v}


def paired(a, b) -> dict:
    """Per-seed differences a - b (same seeds in the same order) and their summary."""
    d = [x - y for x, y in zip(a, b)]
    return {**summarize(d), "per_seed": d}


# ------------------------------------------------------------------------------ jobs
def _threads():
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def _mtl_job(job: dict) -> dict:
    from pyface.demos.rendered import TensorFaces
    from pyface.eval import metrics as M
    from pyface.eval.runner import infer
    from pyface.train import Trainer, resolve_config
    from pyface.train.config import merge

    _threads()
    sz = Sizes(**job["sizes"])
    data = torch.load(job["data"], weights_only=True)
    train, test = data["mtl_train"], data["mtl_test"]
    curve = {k: v[:sz.curve_images] for k, v in test.items()}
    base = {"recipe": "mtl", "out_dir": job["out"], "seed": job["seed"], "device": "cpu", "amp": "none",
            "model": {"preset": "iresnet10-multi-48"}, "tasks": {"fr": dict(MTL_LPMC)},
            "data": {"train": "<SyntheticFaces rendered in memory>", "batch_size": 64, "val_batch_size": 256},
            "optim": {"lr": 0.1, "schedule": "cosine", "warmup_steps": 50, "min_lr_ratio": 0.01,
                      "epochs": sz.mtl_epochs},
            "checkpoint_every": 100_000, "log_every": 5, "val_every_epochs": 10_000, "tensorboard": False,
            "progress": False}
    cfg = resolve_config(merge(base, MTL_ARMS[job["arm"]]))
    tr = Trainer(cfg, TensorFaces(train, flip=True, num_identities=sz.mtl_ids), None)
    points = []

    def early_curve(t):
        if t.step <= t.steps_per_epoch and t.step % sz.curve_every == 0:
            p = t.predict(TensorFaces(curve))
            points.append((t.step, M.nme(p["landmarks"], p["landmarks_gt"])))

    c0 = time.process_time()
    tr.fit(callback=early_curve)
    m = tr.evaluate(TensorFaces(test))
    out = infer(tr.model, TensorFaces(test), flip=True, amp=False, progress=False, batch_size=256)
    ver = verification_by_yaw(out["embedding"], test["identity"].numpy(), test["pose"][:, 0].numpy(), seed=0)
    h = tr.history
    share = [r["fld_lambda_mse"] / r["fld"] for r in h if r.get("fld")]
    return {"part": "mtl", "arm": job["arm"], "seed": job["seed"], "nme": m["nme"], "nme_baseline": m["nme_baseline"],
            "pose_mae_deg": m["pose_mae_deg"], "pose_mae_baseline_deg": m["pose_mae_baseline_deg"],
            "verification": ver, "curve": points, "steps": tr.step,
            "lambda_mse_share": {"first_epoch": float(np.mean(share[:max(1, len(share) // sz.mtl_epochs)])),
                                 "last_epoch": float(np.mean(share[-max(1, len(share) // sz.mtl_epochs):]))},
            "lambda_p_mean": float(np.mean([r["fld_lambda_p"] for r in h])), "cpu_s": time.process_time() - c0}


def _hmtl_job(job: dict) -> dict:
    from pyface.data.transforms import hmtl_augmentation
    from pyface.demos.hmtl import Augmented, demo_config
    from pyface.demos.rendered import TensorFaces
    from pyface.train import Trainer, resolve_config
    from pyface.train.config import merge

    _threads()
    sz = Sizes(**job["sizes"])
    data = torch.load(job["data"], weights_only=True)
    k = HMTL_ARMS[job["arm"]]
    cfg = demo_config(job["out"], k is not None, epochs=sz.hmtl_epochs, quick=False)
    over = {"seed": job["seed"], "progress": False, "val_every_epochs": 10_000, "log_every": 5}
    if k is not None:
        over["tasks"] = {"ssl_puzzle": {"k": k, "flag": 3, "weight": 50}}
    tr = Trainer(resolve_config(merge(cfg, over)), Augmented(TensorFaces(data["hmtl_train"]), hmtl_augmentation(2)),
                 None)
    c0 = time.process_time()
    tr.fit()
    m = tr.evaluate(TensorFaces(data["hmtl_test"]))
    r = {"part": "hmtl", "arm": job["arm"], "seed": job["seed"], "steps": tr.step, "cpu_s": time.process_time() - c0,
         **{a: m[a] for a in ("pose_mae_deg", "yaw_mae_deg", "pitch_mae_deg", "roll_mae_deg", "pose_mae_baseline_deg")}}
    if k is not None:  # the SSL head learned: its loss (summed over k*k regions) vs chance k*k*ln(k*k)
        last = [h["ssl_puzzle"] for h in tr.history[-max(1, len(tr.history) // 10):]]
        r["ssl_loss_final"], r["ssl_loss_chance"] = float(np.mean(last)), k * k * math.log(k * k)
    return r


def _alg1_job(job: dict) -> dict:
    from pyface.data import SyntheticFaces
    from pyface.demos.label import IMAGE_SIZE, _net_config, _nme, _RandomViews
    from pyface.demos.rendered import render
    from pyface.eval.metrics import pose_mae
    from pyface.label import Labeler
    from pyface.label import mediapipe as MP
    from pyface.train import Trainer

    _threads()
    sz, seed = Sizes(**job["sizes"]), job["seed"]
    c0 = time.process_time()
    train = render(SyntheticFaces(sz.fld_ids, sz.fld_per, image_size=IMAGE_SIZE, seed=0), 0)
    cfg = _net_config(Path(job["out"]), "pretrain-fld-hpe", seed, sz.fld_epochs,
                      {"preset": "resnet18-fld-hpe", "width": 8, "layers": [1, 1, 1, 1]}, progress=False)
    tr = Trainer(cfg, _RandomViews(train), None)
    tr.fit()
    ds = SyntheticFaces(sz.label_ids, sz.label_per, image_size=IMAGE_SIZE, seed=100 + seed, identity_offset=1_000_000)
    truth = [ds[i] for i in range(len(ds))]
    images = [s["image"].permute(1, 2, 0).numpy().copy() for s in truth]
    gt_lm = torch.stack([s["landmarks"] for s in truth]).numpy()
    gt_pose = torch.stack([s["pose"] for s in truth]).numpy()
    arms = [(f"N={n}", n, False) for n in VIEWS]
    if MP.available():
        arms.append((f"N={VIEWS[-1]} + MediaPipe", VIEWS[-1], True))
    res = {}
    for name, n, mp in arms:
        lab = Labeler(tr.model, mediapipe="require" if mp else False, views=n, device="cpu")
        r = lab.label_arrays(images)
        acc = r["accepted"]
        res[name] = {"acceptance": float(acc.mean()), "accepted": acc.tolist(),
                     "nme_per_image": np.where(acc, _nme(np.nan_to_num(r["landmarks"]), gt_lm), np.nan).tolist(),
                     "nme_accepted": float(_nme(r["landmarks"][acc], gt_lm[acc]).mean()) if acc.any() else float("nan"),
                     "pose_mae_accepted": pose_mae(r["pose"][acc], gt_pose[acc])["mae"] if acc.any() else float("nan"),
                     "sample_causes": r["sample_causes"]}
    return {"part": "alg1", "seed": seed, "arms": res, "images": len(images), "cpu_s": time.process_time() - c0,
            "mediapipe": MP.available()}


_JOBS = {"mtl": _mtl_job, "hmtl": _hmtl_job, "alg1": _alg1_job}


def _run(job: dict) -> dict:
    t0 = time.perf_counter()
    r = _JOBS[job["kind"]](job)
    r["wall_s"] = time.perf_counter() - t0
    return r


# ------------------------------------------------------------------------------ the run
def _render_data(path: Path, sz: Sizes, workers: int, log) -> None:
    from pyface.data import SyntheticFaces
    from pyface.demos.hmtl import IMAGE_SIZE as HMTL_SIZE
    from pyface.demos.rendered import render

    t0 = time.perf_counter()
    data = {
        "mtl_train": render(SyntheticFaces(sz.mtl_ids, sz.mtl_per, image_size=48, seed=0, max_yaw=MAX_YAW), workers),
        "mtl_test": render(SyntheticFaces(sz.test_ids, sz.test_per, image_size=48, seed=0, identity_offset=sz.mtl_ids,
                                          max_yaw=MAX_YAW), workers),
        "hmtl_train": render(SyntheticFaces(sz.hmtl_ids, sz.hmtl_per, image_size=HMTL_SIZE, seed=0), workers),
        "hmtl_test": render(SyntheticFaces(sz.hmtl_test_ids, sz.hmtl_test_per, image_size=HMTL_SIZE, seed=0,
                                           identity_offset=sz.hmtl_ids), workers),
    }
    from pyface.io import atomic_path

    with atomic_path(path) as tmp:
        torch.save(data, tmp)
    log(f"rendered the synthetic data in {time.perf_counter() - t0:.1f} s")


def _jobs(parts, seeds, out: Path, data: Path, sz: Sizes) -> list[dict]:
    jobs, common = [], {"data": str(data), "sizes": asdict(sz)}
    arms = sorted({a for p in ("table9", "table4") if p in parts for a in PART_ARMS[p]}, key=list(MTL_ARMS).index)
    for seed in seeds:
        if "alg1" in parts:
            jobs.append({"kind": "alg1", "seed": seed, "out": str(out / "runs" / f"alg1-s{seed}"), **common})
        for arm in arms:
            jobs.append({"kind": "mtl", "arm": arm, "seed": seed, "out": str(out / "runs" / f"{arm}-s{seed}"),
                         **common})
        if "hmtl" in parts:
            for arm in HMTL_ARMS:
                jobs.append({"kind": "hmtl", "arm": arm, "seed": seed,
                             "out": str(out / "runs" / f"{arm.replace(' ', '-')}-s{seed}"), **common})
    return jobs


def run_ablations(out_dir, *, quick: bool = False, seeds: int = 3, workers: int | None = None, parts=PARTS,
                  log=print) -> dict:
    """Run the ablations (module docstring); returns the metrics written to
    ``out_dir/metrics.json`` beside ``report.md`` and ``ablations.png``."""
    parts = tuple(parts)
    bad = [p for p in parts if p not in PARTS]
    if bad or not parts:
        raise ValueError(f"parts must be some of {list(PARTS)}, got {list(parts)}")
    if int(seeds) < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    workers = max(1, int(workers or min(2, os.cpu_count() or 1)))
    sz = QUICK if quick else FULL
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0, load0 = time.perf_counter(), os.getloadavg()
    ru0 = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    data = out / "data.pt"
    _render_data(data, sz, workers, log)
    jobs = _jobs(parts, list(range(int(seeds))), out, data, sz)
    jobs.sort(key=lambda j: {"alg1": 0, "mtl": 1, "hmtl": 2}[j["kind"]])  # the longest first
    log(f"{len(jobs)} runs on {workers} worker process(es), one thread each")
    results = []
    if workers == 1:
        for j in jobs:
            results.append(_run(j))
            log(_line(results[-1]))
    else:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(workers, maxtasksperchild=1) as pool:
            for r in pool.imap_unordered(_run, jobs):
                results.append(r)
                log(_line(r))
    ru1 = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    cpu = sum(b.ru_utime + b.ru_stime - a.ru_utime - a.ru_stime for a, b in zip(ru0, ru1))
    wall = time.perf_counter() - t0
    metrics = _aggregate(results, parts, int(seeds))
    metrics["timing"] = {"wall_s": wall, "cpu_s": cpu, "workers": workers, "loadavg_start": list(load0),
                         "loadavg_end": list(os.getloadavg()), "cpu_count": os.cpu_count(),
                         "idle_estimate_s": cpu / workers,
                         "runs": {f"{r['part']}:{r.get('arm', '')}:{r['seed']}": {"wall_s": r["wall_s"],
                                                                                  "cpu_s": r["cpu_s"]}
                                  for r in results}}
    metrics["settings"] = {"quick": quick, "seeds": int(seeds), "parts": list(parts), "sizes": asdict(sz),
                           "mtl_lpmc": MTL_LPMC, "max_yaw": MAX_YAW, "views": list(VIEWS),
                           "torch": torch.__version__}
    write_json_atomic(out / "metrics.json", metrics, indent=1, sort_keys=False)
    _plot(metrics, out / "ablations.png")
    write_text_atomic(out / "report.md", report_markdown(metrics, png="ablations.png"))
    data.unlink(missing_ok=True)
    return metrics


def _line(r: dict) -> str:
    what = f"{r['part']} {r.get('arm', '')} seed {r['seed']}".replace("  ", " ")
    if r["part"] == "mtl":
        v = r["verification"].get("all", {}).get("accuracy", float("nan"))
        return (f"{what}: NME {r['nme']:.4f}, pose MAE {r['pose_mae_deg']:.2f}, verification {v:.4f} "
                f"({r['wall_s']:.0f} s)")
    if r["part"] == "hmtl":
        return f"{what}: pose MAE {r['pose_mae_deg']:.2f} deg ({r['wall_s']:.0f} s)"
    return f"{what}: " + ", ".join(f"{k} accept {a['acceptance']:.2f} NME {a['nme_accepted']:.4f}"
                                   for k, a in r["arms"].items()) + f" ({r['wall_s']:.0f} s)"


# ------------------------------------------------------------------------------ aggregation
def _aggregate(results: list[dict], parts, seeds: int) -> dict:
    by = {}
    for r in results:
        by.setdefault((r["part"], r.get("arm")), {})[r["seed"]] = r
    order = list(range(seeds))
    out: dict = {}
    mtl = {arm: [by[("mtl", arm)][s] for s in order] for (p, arm) in by if p == "mtl"}
    if "table9" in parts:
        t = {}
        for arm in PART_ARMS["table9"]:
            rs = mtl[arm]
            t[arm] = {"nme": summarize(r["nme"] for r in rs), "pose_mae_deg": summarize(r["pose_mae_deg"] for r in rs),
                      "verification": summarize(r["verification"]["all"]["accuracy"] for r in rs),
                      "early_nme": _curve_summary(rs), "lambda_mse_share": {
                          k: summarize(r["lambda_mse_share"][k] for r in rs) for k in ("first_epoch", "last_epoch")},
                      "lambda_p_mean": summarize(r["lambda_p_mean"] for r in rs)}
        ref = mtl["dynamic"]
        for arm in PART_ARMS["table9"]:
            if arm != "dynamic":
                t[arm]["minus_dynamic"] = {
                    "nme": paired([r["nme"] for r in mtl[arm]], [r["nme"] for r in ref]),
                    "pose_mae_deg": paired([r["pose_mae_deg"] for r in mtl[arm]], [r["pose_mae_deg"] for r in ref]),
                    "verification": paired([r["verification"]["all"]["accuracy"] for r in mtl[arm]],
                                           [r["verification"]["all"]["accuracy"] for r in ref]),
                    "early_nme": paired([_area(r) for r in mtl[arm]], [_area(r) for r in ref])}
        t["baselines"] = {"nme": summarize(r["nme_baseline"] for r in ref),
                          "pose_mae_deg": summarize(r["pose_mae_baseline_deg"] for r in ref)}
        out["table9"] = t
    if "table4" in parts:
        t = {}
        cases = ["all"] + [c for c, _, _ in YAW_CASES]
        for arm in PART_ARMS["table4"]:
            t[arm] = {c: summarize(r["verification"].get(c, {}).get("accuracy") for r in mtl[arm]) for c in cases}
            t[arm]["pairs"] = {c: mtl[arm][0]["verification"].get(c, {}).get("pairs", 0) for c in cases}
        t["pose_minus_constant"] = {c: paired([r["verification"].get(c, {}).get("accuracy", float("nan"))
                                               for r in mtl["dynamic"]],
                                              [r["verification"].get(c, {}).get("accuracy", float("nan"))
                                               for r in mtl["constant_margin"]]) for c in cases}
        out["table4"] = t
    if "alg1" in parts:
        rs = [by[("alg1", None)][s] for s in order]
        arms = list(rs[0]["arms"])
        t = {"arms": {}, "mediapipe_installed": rs[0]["mediapipe"]}
        for a in arms:
            common = []
            for r in rs:
                acc = np.array([r["arms"][b]["accepted"] for b in arms]).all(0)
                nme = np.array(r["arms"][a]["nme_per_image"], np.float64)
                common.append(float(nme[acc].mean()) if acc.any() else float("nan"))
            t["arms"][a] = {"acceptance": summarize(r["arms"][a]["acceptance"] for r in rs),
                            "nme_accepted": summarize(r["arms"][a]["nme_accepted"] for r in rs),
                            "pose_mae_accepted": summarize(r["arms"][a]["pose_mae_accepted"] for r in rs),
                            "nme_common": summarize(common), "_common": common}
        ref = arms[0]
        for a in arms[1:]:
            t["arms"][a]["minus_" + ref.replace("=", "")] = {
                "nme_common": paired(t["arms"][a]["_common"], t["arms"][ref]["_common"]),
                "acceptance": paired([r["arms"][a]["acceptance"] for r in rs],
                                     [r["arms"][ref]["acceptance"] for r in rs])}
        t["images_per_seed"] = rs[0]["images"]
        out["alg1"] = t
    if "hmtl" in parts:
        t = {}
        rs = {arm: [by[("hmtl", arm)][s] for s in order] for arm in HMTL_ARMS}
        for arm, lst in rs.items():
            t[arm] = {k: summarize(r[k] for r in lst) for k in ("yaw_mae_deg", "pitch_mae_deg", "roll_mae_deg",
                                                                  "pose_mae_deg")}
            if arm != "SL":
                t[arm]["minus_SL"] = paired([r["pose_mae_deg"] for r in lst], [r["pose_mae_deg"] for r in rs["SL"]])
                t[arm]["ssl_loss_final"] = summarize(r["ssl_loss_final"] for r in lst)
                t[arm]["ssl_loss_chance"] = lst[0]["ssl_loss_chance"]
        t["baseline"] = summarize(r["pose_mae_baseline_deg"] for r in rs["SL"])
        t["steps"] = rs["SL"][0]["steps"]
        out["hmtl"] = t
    out["runs"] = results
    return out


def _area(r: dict) -> float:
    """Mean NME over the early-training curve (lower = landmarks learned sooner)."""
    return float(np.mean([v for _, v in r["curve"]])) if r["curve"] else float("nan")


def _curve_summary(rs) -> dict:
    steps = [s for s, _ in rs[0]["curve"]]
    vals = np.array([[v for _, v in r["curve"]] for r in rs]) if steps else np.zeros((len(rs), 0))
    return {"steps": steps, "mean": vals.mean(0).tolist(), "std": (vals.std(0, ddof=1) if len(rs) > 1
                                                                   else np.zeros(len(steps))).tolist(),
            "area": summarize(_area(r) for r in rs)}


# ------------------------------------------------------------------------------ report
def _ms(s: dict, scale: float = 1.0, digits: int = 2) -> str:
    if not s or not s.get("n"):
        return "–"
    return f"{s['mean'] * scale:.{digits}f} ± {s['std'] * scale:.{digits}f}"


def _pd(p: dict, scale: float = 1.0, digits: int = 2) -> str:
    if not p or not p.get("n"):
        return "–"
    seeds = ", ".join(f"{x * scale:+.{digits}f}" for x in p["per_seed"])
    return f"{p['mean'] * scale:+.{digits}f} ± {p['std'] * scale:.{digits}f} ({seeds})"


def report_markdown(m: dict, png: str | None = None) -> str:
    """The measured tables (module docstring) as markdown."""
    s, tm = m["settings"], m["timing"]
    sz = s["sizes"]
    L = ["# The papers' claims, measured in miniature (`pyface demo ablations`)", ""]
    L += [f"{s['seeds']} seeds per arm, mean ± std over seeds (sample std); Δ = the paired per-seed difference "
          "to the arm the paper compares against (each seed's value in brackets). Embedded synthetic faces; "
          "these are measurements on synthetic data, not claims about the papers' data sets."
          + (" **Quick mode (smoke sizes): the numbers mean nothing.**" if s["quick"] else ""), ""]
    if png:
        L += [f"![ablations]({png})", ""]
    if "table9" in m:
        t = m["table9"]
        L += ["## Table 9: the regularisation term λ_P", "",
              f"Small MTL net (`iresnet10-multi-48`: FR + FLD + HPE), {sz['mtl_ids']} identities × {sz['mtl_per']} "
              f"images (|yaw| ≤ {s['max_yaw']:.0f}°), {sz['mtl_epochs']} epochs, LPMC s {s['mtl_lpmc']['scale']:g}, "
              f"m1 {s['mtl_lpmc']['m1']}, m2 {s['mtl_lpmc']['m2']} (as `pyface demo`); tested on {sz['test_ids']} "
              f"held-out identities × {sz['test_per']} images. Early NME: the mean NME of {sz['curve_images']} "
              f"held-out faces over the first epoch (every {sz['curve_every']} steps). Mean-prediction baselines: "
              f"NME {_ms(t['baselines']['nme'], 100)} %, pose MAE {_ms(t['baselines']['pose_mae_deg'])}°.", "",
              "| Method | Verification (%) | NME (%) | Pose MAE (°) | Early NME (%) "
              "| λ_P·L_MSE / L_FLD (1st, last epoch) |",
              "|---|---|---|---|---|---|"]
        names = {"lambda0": "L_FLD (λ_P = 0)", "lambda1": "L_FLD (λ_P = 1)", "dynamic": "L_FLD (λ_P = α, dynamic)",
                 "dynamic_normalized": "λ_P = α, normalised units (pyface < 0.2)"}
        for arm in PART_ARMS["table9"]:
            a = t[arm]
            sh = a["lambda_mse_share"]
            L.append(f"| {names[arm]} | {_ms(a['verification'], 100)} | {_ms(a['nme'], 100, 3)} | "
                     f"{_ms(a['pose_mae_deg'])} | {_ms(a['early_nme']['area'], 100, 2)} | "
                     f"{_ms(sh['first_epoch'], 100, 2)} %, {_ms(sh['last_epoch'], 100, 2)} % |")
        L += ["", "| Δ to λ_P = α (per seed) | Verification (pp) | NME (pp) | Pose MAE (°) | Early NME (pp) |",
              "|---|---|---|---|---|"]
        for arm in PART_ARMS["table9"]:
            if arm == "dynamic":
                continue
            d = t[arm]["minus_dynamic"]
            L.append(f"| {names[arm]} | {_pd(d['verification'], 100)} | {_pd(d['nme'], 100, 3)} | "
                     f"{_pd(d['pose_mae_deg'])} | {_pd(d['early_nme'], 100)} |")
        L.append("")
    if "table4" in m:
        t = m["table4"]
        cases = ["all", "soft", "medium", "hard"]
        L += ["## Table 4: the pose margin vs a constant margin", "",
              "Same runs as Table 9's λ_P = α (pose margin m1 + m2·γ_P) against m2 = 0 (CosFace margin m1). "
              "Verification accuracy (10-fold) of probe images split by |yaw| against identity templates "
              "(mean embedding of each identity's |yaw| < 30° images); pairs per case: "
              + ", ".join(f"{c} {t['dynamic']['pairs'][c]}" for c in cases) + ".", "",
              "| Method | All (%) | Soft 0–30° (%) | Medium 30–60° (%) | Hard 60–90° (%) |", "|---|---|---|---|---|"]
        for arm, name in (("dynamic", "pose margin m1 + m2·γ_P"), ("constant_margin", "constant margin m1 (CosFace)")):
            L.append(f"| {name} | " + " | ".join(_ms(t[arm][c], 100) for c in cases) + " |")
        L.append("| Δ pose − constant (per seed, pp) | " + " | ".join(_pd(t["pose_minus_constant"][c], 100)
                                                                   for c in cases) + " |")
        L.append("")
    if "alg1" in m:
        t = m["alg1"]
        L += ["## Algorithm 1: views per image", "",
              f"Labeling net (`pretrain-fld-hpe` recipe, ResNet with one block per stage, width 8, 64 px) trained "
              f"on {sz['fld_ids']} × {sz['fld_per']} faces for {sz['fld_epochs']} epochs, one net per seed; "
              f"{t['images_per_seed']} held-out faces per seed labeled with hidden labels; net only"
              + ("" if t["mediapipe_installed"] else " (MediaPipe: the `label` extra is not installed, so no "
                 "MediaPipe arm)") + ". NME (common) is over the images every arm accepted.", "",
              "| Views | Acceptance (%) | NME accepted (%) | NME common (%) | Pose MAE accepted (°) |",
              "|---|---|---|---|---|"]
        for a, v in t["arms"].items():
            L.append(f"| {a} | {_ms(v['acceptance'], 100, 1)} | {_ms(v['nme_accepted'], 100, 3)} | "
                     f"{_ms(v['nme_common'], 100, 3)} | {_ms(v['pose_mae_accepted'])} |")
        first = list(t["arms"])[0]
        for a, v in t["arms"].items():
            key = "minus_" + first.replace("=", "")
            if key in v:
                L.append(f"| Δ {a} − {first} (per seed) | {_pd(v[key]['acceptance'], 100, 1)} | | "
                         f"{_pd(v[key]['nme_common'], 100, 3)} | |")
        L.append("")
    if "hmtl" in m:
        t = m["hmtl"]
        L += ["## HMTL: SL vs HMTL puzzling (Pourmirzaei et al., Tables 2, 5, 6 set-up)", "",
              f"`pyface demo hmtl`'s set-up: {sz['hmtl_ids']} identities × {sz['hmtl_per']} images (64 px, "
              f"augmentation level 2), HopeNet head, {t['steps']} steps; SSL at flag 3, loss × 50; held-out "
              f"{sz['hmtl_test_ids']} identities × {sz['hmtl_test_per']} images. Mean-pose baseline "
              f"{_ms(t['baseline'])}°.", "",
              "| Method | Yaw (°) | Pitch (°) | Roll (°) | Avg (°) | Δ Avg to SL (per seed) | SSL loss end / chance |",
              "|---|---|---|---|---|---|---|"]
        for arm in HMTL_ARMS:
            a = t[arm]
            ssl = (f"{a['ssl_loss_final']['mean']:.2f} / {a['ssl_loss_chance']:.2f}" if "ssl_loss_final" in a else "–")
            L.append(f"| {arm} | {_ms(a['yaw_mae_deg'])} | {_ms(a['pitch_mae_deg'])} | {_ms(a['roll_mae_deg'])} | "
                     f"{_ms(a['pose_mae_deg'])} | {_pd(a.get('minus_SL'))} | {ssl} |")
        L.append("")
    L += ["## Time", "",
          f"{tm['wall_s'] / 60:.1f} min wall, {tm['cpu_s'] / 60:.1f} min CPU on {tm['workers']} worker process(es) "
          f"({tm['cpu_count']} CPUs; load average {tm['loadavg_start'][0]:.1f} at the start, "
          f"{tm['loadavg_end'][0]:.1f} at the end). On an idle machine with {tm['workers']} cores the CPU time "
          f"bounds the wall time from below at ≈ {tm['idle_estimate_s'] / 60:.1f} min.", ""]
    return "\n".join(L)


def _plot(m: dict, path: Path) -> None:
    from pyface.eval.figures import pyplot, save_png

    plt = pyplot()
    panels = [p for p in ("table9", "table4", "alg1", "hmtl") if p in m]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.8), squeeze=False)
    for ax, p in zip(axes[0], panels):
        if p == "table9":
            for i, arm in enumerate(PART_ARMS["table9"]):
                c = m["table9"][arm]["early_nme"]
                if c["steps"]:
                    mu, sd = np.array(c["mean"]) * 100, np.array(c["std"]) * 100
                    ax.plot(c["steps"], mu, color=f"C{i}", label=arm.replace("lambda", "λ_P=").replace(
                        "dynamic_normalized", "α, normalised").replace("dynamic", "α"))
                    ax.fill_between(c["steps"], mu - sd, mu + sd, color=f"C{i}", alpha=0.2)
            ax.set(xlabel="step (first epoch)", ylabel="held-out NME (%)", title="Table 9: early landmark curve")
            ax.legend(fontsize=8)
        elif p == "table4":
            cases = ["all", "soft", "medium", "hard"]
            x = np.arange(len(cases))
            for i, (arm, lab) in enumerate((("dynamic", "pose margin"), ("constant_margin", "constant m1"))):
                mu = [m["table4"][arm][c]["mean"] * 100 for c in cases]
                sd = [m["table4"][arm][c]["std"] * 100 for c in cases]
                ax.bar(x + (i - 0.5) * 0.38, mu, 0.38, yerr=sd, label=lab, color=f"C{i}", capsize=3)
            lo = min(m["table4"][a][c]["mean"] for a in ("dynamic", "constant_margin") for c in cases) * 100
            ax.set(xticks=x, xticklabels=cases, ylabel="verification accuracy (%)", ylim=(max(0, lo - 8), 100),
                   title="Table 4: probes by |yaw|")
            ax.legend(fontsize=8)
        elif p == "alg1":
            arms = list(m["alg1"]["arms"])
            x = np.arange(len(arms))
            acc = [m["alg1"]["arms"][a]["acceptance"]["mean"] * 100 for a in arms]
            nme = [m["alg1"]["arms"][a]["nme_common"] for a in arms]
            ax.bar(x, acc, 0.5, color="C7", label="acceptance (%)")
            ax.set(xticks=x, xticklabels=arms, ylabel="acceptance (%)", title="Algorithm 1: views")
            ax2 = ax.twinx()
            ax2.errorbar(x, [n["mean"] * 100 for n in nme], yerr=[n["std"] * 100 for n in nme], color="C3", marker="o",
                         label="NME, images all arms accept (%)")
            ax2.set_ylabel("NME (%)")
            ax2.legend(fontsize=8, loc="lower right")
        elif p == "hmtl":
            arms = list(HMTL_ARMS)
            for i, a in enumerate(arms):
                v = m["hmtl"][a]["pose_mae_deg"]
                ax.bar(i, v["mean"], 0.6, yerr=v["std"], color=f"C{i}", capsize=3)
                ax.scatter([i] * len(v["values"]), v["values"], color="k", s=10, zorder=3)
            ax.set(xticks=range(len(arms)), xticklabels=arms, ylabel="held-out pose MAE (°)", title="HMTL vs SL")
    fig.tight_layout()
    save_png(fig, path, dpi=100)


def load_metrics(path) -> dict:
    return json.loads(Path(path).read_text())
