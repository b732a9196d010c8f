"""``report.md`` in the papers' table layouts with the published numbers beside ours,
``report.json`` (everything measured) and the PNGs (ROC per IJB-C case, NME per yaw
bin, pose error histograms). Written atomically (tmp + rename)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from pyface.eval import published as P
from pyface.eval.figures import pyplot, save_png
from pyface.eval.ijbc import PAPER_PAIR_COUNTS
from pyface.eval.metrics import YAW_BINS
from pyface.io import write_text_atomic

__all__ = ["write_report", "render_markdown"]

VERIF_COLUMNS = (("lfw", "LFW"), ("cfp_fp", "CFP-FP"), ("agedb_30", "AgeDB"))


def _f(v, scale=1.0, nd=2) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "-"
    return f"{v * scale:.{nd}f}"


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _bold(cells) -> list[str]:
    return [f"**{c}**" for c in cells]


def _fps(results: dict, batch: int = 1, precision: str = "fp32"):
    for r in results.get("fps", []):
        if r["batch"] == batch and r["precision"] == precision and r.get("runtime", "pytorch") == "pytorch":
            return r["images_per_s"]
    return None


def render_markdown(results: dict, ours: str = "pyface (this checkpoint)") -> str:
    fps1 = _fps(results)
    out = ["# pyface evaluation report", "",
           f"Checkpoint: `{results.get('checkpoint', '?')}`; heads {results.get('tasks', [])}; "
           f"device {results.get('device', '?')}.", "",
           "Published numbers are copied from the papers (Lee et al. 2024 = paper 000, "
           "Pourmirzaei et al. = paper 004); ours are measured by `pyface eval` with the "
           "protocols of `pyface.eval` (docstrings name the reference scripts). FPS: ours at "
           "batch 1, fp32, on the device above; the papers' on their GPU.", ""]
    v, ij = results.get("verification"), results.get("ijbc")
    if v or ij:
        out += ["## Face recognition (paper 000, Table 3)", "",
                "Accuracy (%) on LFW / CFP-FP / AgeDB-30 (insightface 10-fold protocol), "
                "IJB-C TAR (%) at FAR = 1e-4.", ""]
        rows = [[m, d, _f(a), _f(b), _f(c), _f(i), _f(f, nd=1)] for m, d, a, b, c, i, f in P.TABLE3]
        tar4 = None
        if ij and ij["cases"]["all"]["tar"]:
            tar4 = ij["cases"]["all"]["tar"].get(1e-4)
        mine = [ours, "-"] + [_f(v.get(k, {}).get("mean"), 100) if v else "-" for k, _ in VERIF_COLUMNS]
        rows.append(_bold(mine + [_f(tar4, 100), _f(fps1, nd=1)]))
        out += [_table(["Method", "Train set", "LFW", "CFP-FP", "AgeDB", "IJB-C", "FPS"], rows), ""]
        if v:
            extra = [[k, r["pairs"], _f(r["mean"], 100), _f(r["std"], 100), _f(r["threshold"], nd=3)]
                     for k, r in v.items()]
            out += ["All verification sets (mean ± population std over 10 folds, cosine threshold):", "",
                    _table(["Set", "Pairs", "Accuracy (%)", "Std (%)", "Threshold"], extra), ""]
    if ij:
        fars = P.TABLE4_FARS
        head = ["Model", "Case", "Pairs"] + [f"{f:.0e}" for f in fars]
        rows = []
        for model, cases in P.TABLE4.items():
            for case, vals in cases.items():
                rows.append([model, case, f"{PAPER_PAIR_COUNTS[case]:,}"]
                            + [_f(x) for x in vals])
        for case, r in ij["cases"].items():
            tars = r["tar"] or {}
            rows.append(_bold([ours, case, f"{r['pairs']:,}"] + [_f(tars.get(f), 100) for f in fars]))
        out += ["## IJB-C by probe pose (paper 000, Table 4)", "",
                "TAR (%) at each FAR. Gallery templates use all images; probe templates only the images whose "
                "|yaw| (predicted by the model's own pose head) is in [0, 30) soft, [30, 60) medium, "
                "[60, 90] hard. Paper pair counts: 15,658,489 all / 15,070,066 soft / 11,410,991 medium / "
                f"5,926,383 hard. Faceness weighting: {ij.get('faceness')}."
                + ("" if ij.get("pose_cases") else " This checkpoint has no pose head: only the all-cases row."), "",
                _table(head, rows), "", "![IJB-C ROC](ijbc_roc.png)", ""]
    af, bw = results.get("aflw2000"), results.get("biwi")
    if (af and "pose" in af) or bw:
        out += ["## Head pose (paper 000, Tables 5 and 6)", "",
                "MAE (degrees) over the samples with yaw, pitch and roll within ±99° (HopeNet's filtered lists).", ""]
        hdr = ["Method", "Yaw", "Pitch", "Roll", "MAE", "FPS"]
        for name, key, table in (("AFLW2000-3D (Table 5)", af, P.TABLE5), ("BIWI (Table 6)", bw, P.TABLE6)):
            if not key or "pose" not in key:
                continue
            r = key["pose"]
            rows = [[m, _f(a), _f(b), _f(c), _f(d), _f(f, nd=1)] for m, a, b, c, d, f in table]
            rows.append([f"**{x}**" for x in [ours, _f(r["yaw"]), _f(r["pitch"]), _f(r["roll"]), _f(r["mean"]),
                                              _f(fps1, nd=1)]])
            out += [f"### {name}", "", f"{r['kept']} samples kept, {r['dropped']} dropped.", "",
                    _table(hdr, rows), ""]
        out += ["## Head pose (paper 004, Tables 2 and 3)", ""]
        if af and "pose" in af:
            rows = [[m + ("*" if red else ""), _f(a, nd=3), _f(b, nd=3), _f(c, nd=3), _f(d, nd=3)]
                    for m, red, a, b, c, d in P.P004_TABLE2]
            for red, r in ((False, af["pose_full"]), (True, af["pose"])):
                cells = [_f(r[k], nd=3) for k in ("yaw", "pitch", "roll", "mean")]
                rows.append(_bold([ours + ("*" if red else "")] + cells))
            out += ["AFLW2000 (* = reduced set without the samples beyond ±99°):", "",
                    _table(["Method", "Yaw", "Pitch", "Roll", "Average"], rows), ""]
        if bw:
            rows = [[m, _f(a, nd=3), _f(b, nd=3), _f(c, nd=3), _f(d, nd=3)] for m, a, b, c, d in P.P004_TABLE3]
            r = bw["pose"]
            rows.append(_bold([ours] + [_f(r[k], nd=3) for k in ("yaw", "pitch", "roll", "mean")]))
            out += ["BIWI:", "", _table(["Method", "Yaw", "Pitch", "Roll", "Avg"], rows), ""]
        out += ["![pose errors](pose_errors.png)", ""]
    if af and "nme" in af:
        n = af["nme"]
        rows = [[m, _f(a), _f(b), _f(c), _f(d), _f(f, nd=1)] for m, a, b, c, d, f in P.TABLE7]
        rows.append(_bold([ours] + [_f(n["bins"][k], 100) for k in YAW_BINS] + [_f(n["mean"], 100), _f(fps1, nd=1)]))
        out += ["## Facial landmarks (paper 000, Table 7)", "",
                "NME (%) on AFLW2000-3D, normalised by sqrt(w·h) of the ground-truth landmark box, per |yaw| bin "
                "and the mean of the three bins (3DDFA protocol). Images per bin: "
                + ", ".join(f"{k} {n['counts'][k]}" for k in YAW_BINS) + ".", "",
                _table(["Method", "0-30°", "30-60°", "60-90°", "Mean", "FPS"], rows), "",
                "![NME by yaw](nme_by_yaw.png)", ""]
    if results.get("fps"):
        rows = [[r["batch"], r["precision"], r.get("runtime", "pytorch"), _f(r["images_per_s"], nd=1),
                 _f(r["iqr"], nd=1), r["repeats"], r["device"]] for r in results["fps"]]
        out += ["## Throughput", "", "Forward pass only, random input; median and IQR over repeats after warm-up "
                "(other runtimes' calls interleaved with PyTorch's).", "",
                _table(["Batch", "Precision", "Runtime", "Images/s", "IQR", "Repeats", "Device"], rows), ""]
    return "\n".join(out)


def _plots(results: dict, out: Path) -> list[str]:
    plt = pyplot()

    from pyface.eval.ijbc import plot_roc

    made = []
    ij = results.get("ijbc")
    if ij:
        plot_roc(ij["cases"], out / "ijbc_roc.png")
        made.append("ijbc_roc.png")
    af = results.get("aflw2000")
    if af and "nme" in af:
        fig, ax = plt.subplots(figsize=(4.5, 3.2))
        vals = [af["nme"]["bins"][k] * 100 for k in YAW_BINS]
        ax.bar(range(3), np.nan_to_num(vals), color=["C0", "C1", "C3"])
        ax.set_xticks(range(3), [f"{k}\n(n={af['nme']['counts'][k]})" for k in YAW_BINS])
        ax.set_ylabel("NME (%)")
        ax.set_title("AFLW2000-3D NME by |yaw|")
        fig.tight_layout()
        save_png(fig, out / "nme_by_yaw.png", dpi=120)
        made.append("nme_by_yaw.png")
    sets = [(n, r["pose_errors"]) for n, r in (("AFLW2000-3D", af), ("BIWI", results.get("biwi")))
            if r and r.get("pose_errors")]
    if sets:
        fig, axes = plt.subplots(1, len(sets), figsize=(4.5 * len(sets), 3.2), squeeze=False)
        for ax, (name, err) in zip(axes[0], sets):
            e = np.asarray(err)
            hi = max(1.0, float(np.percentile(e, 99)))
            for k, lab in enumerate(("yaw", "pitch", "roll")):
                ax.hist(e[:, k], bins=40, range=(0, hi), histtype="step", label=lab)
            ax.set_xlabel("absolute error (deg)")
            ax.set_title(name)
            ax.legend()
        fig.tight_layout()
        save_png(fig, out / "pose_errors.png", dpi=120)
        made.append("pose_errors.png")
    return made


def _jsonable(o):
    if isinstance(o, dict):
        return {(f"{k:g}" if isinstance(k, float) else str(k)): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, float) and not np.isfinite(o):
        return None
    return o


def write_report(results: dict, out_dir: str | os.PathLike) -> dict[str, Path]:
    """report.md, report.json and the PNGs under out_dir; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pngs = _plots(results, out)
    slim = {k: v for k, v in results.items()}
    for key in ("aflw2000", "biwi"):  # per-sample errors go to the histogram, not the JSON
        if slim.get(key):
            slim[key] = {k: v for k, v in slim[key].items() if k != "pose_errors"}
    write_text_atomic(out / "report.json", json.dumps(_jsonable(slim), indent=2))
    write_text_atomic(out / "report.md", render_markdown(results))
    return {"report.md": out / "report.md", "report.json": out / "report.json", **{p: out / p for p in pngs}}
