"""``pyface eval``'s job, one place for each step: which benchmark suites a request
needs (:func:`select_suites`, also for the evaluation demo), opening their readers before
any inference (:func:`open_suites`), running them (:func:`evaluate`) and the summary
lines (:func:`summary`). The command line is pyface/cli/eval.py.
"""
from __future__ import annotations

import time

from pyface.errors import DataError

__all__ = ["WHAT", "evaluate", "open_suites", "select_suites", "summary"]

#: What ``pyface eval`` evaluates: one benchmark family, ``fps`` alone, or ``all``.
WHAT = ("verification", "ijbc", "pose", "landmarks", "fps", "all")


def select_suites(what: str, model, test_sets) -> set[str]:
    """The parts of ``test_sets`` (pyface.eval.suites.TestSets) that ``what`` evaluates
    for ``model``: a named benchmark needs its part (and the model output it measures);
    ``all`` takes whatever is present and usable by the model's heads."""
    from pyface.eval import runner

    if what not in WHAT:
        raise ValueError(f"what must be one of {WHAT}, got {what!r}")
    ts = test_sets
    if what == "all":
        outs = runner.model_outputs(model)
        need = set()
        if "embedding" in outs:
            need |= {p for p, have in (("verification", ts.bins), ("ijbc", ts.ijbc)) if have}
        if outs & {"pose", "landmarks"} and ts.aflw2000:
            need.add("aflw2000")
        if "pose" in outs and ts.biwi:
            need.add("biwi")
        if not need:  # "all" of nothing would report only the speed, as if it had evaluated
            given = [p for p, have in (("*.bin", ts.bins), ("IJB-C", ts.ijbc), ("AFLW2000-3D", ts.aflw2000),
                                       ("BIWI", ts.biwi)) if have]
            raise DataError("eval all: no test set this model can be evaluated on (found: "
                            f"{', '.join(given) or 'none'}; the model gives {sorted(outs)}); give --data-root with "
                            "*.bin, IJBC/, AFLW2000/ or BIWI*.npz (or --bin/--ijbc/--aflw2000/--biwi), or run "
                            "`pyface eval fps` for the speed alone")
        return need
    if what == "pose":
        runner.require_outputs(model, ["pose"], "head pose evaluation")
        return {p for p, have in (("aflw2000", ts.aflw2000), ("biwi", ts.biwi)) if have} or {"aflw2000"}
    if what == "landmarks":
        runner.require_outputs(model, ["landmarks"], "landmark evaluation")
    return {"verification": {"verification"}, "ijbc": {"ijbc"}, "landmarks": {"aflw2000"}, "fps": set()}[what]


def open_suites(test_sets, need: set[str]) -> dict:
    """The readers of the ``need``ed parts; every reader checks its files first, so a
    missing or malformed test set fails here, before any inference, as a DataError
    naming it."""
    try:
        return test_sets.open(need)
    except FileNotFoundError as exc:  # TestSets.open names the flag or path that is missing
        raise DataError(str(exc)) from exc


def evaluate(model, data: dict, what: str, *, device, batch_size=64, workers=0, amp=True, faceness=True,
             limit_deg=99.0, fps_repeats=10, fps_batches=(1, 64), progress=True, cache_dir=None,
             shard_size=8192, split=None, fps_others=None) -> dict | None:
    """Run the opened test sets through the model; results as write_report expects.
    ``fps_others``: runtimes timed beside PyTorch (:func:`pyface.eval.runner.measure_fps`).

    ``split`` (:class:`pyface.work_split.WorkSplit`; default: this process alone): the
    inference is split across the ranks by shards, the
    protocols and the FPS measurement run once on rank 0, which returns the results --
    the same numbers as one process; the other ranks (and job-array parts, which only
    fill the inference cache) return None."""
    from pyface.eval import runner, suites
    from pyface.work_split import WorkSplit

    split = split or WorkSplit()
    kw = {"batch_size": batch_size, "device": device, "amp": amp, "num_workers": workers, "progress": progress,
          "cache_dir": cache_dir, "shard_size": shard_size, "split": split}
    t0 = time.time()
    res: dict = {"checkpoint": getattr(model, "checkpoint_path", "?"), "tasks": list(model.tasks),
                 "device": runner.device_name(device), "params": model.parameter_counts()}
    if "verification" in data:
        res["verification"] = suites.eval_verification(model, data["verification"], **kw)
    if "ijbc" in data:
        res["ijbc"] = suites.eval_ijbc(model, data["ijbc"], faceness=faceness, **kw)
    if "aflw2000" in data:
        r = suites.eval_aflw2000(model, data["aflw2000"], limit_deg=limit_deg, **kw) or {}
        if what == "pose":
            r.pop("nme", None)
        if what == "landmarks":
            r = {k: v for k, v in r.items() if not k.startswith("pose")}
        res["aflw2000"] = r
    if "biwi" in data:
        res["biwi"] = suites.eval_biwi(model, data["biwi"], limit_deg=limit_deg, **kw)
    if not split.writes_final:
        return None
    if what in ("fps", "all"):
        res["fps"] = runner.measure_fps(model, device, batch_sizes=fps_batches, repeats=fps_repeats,
                                        warmup=min(3, fps_repeats), others=fps_others)
    res["seconds"] = time.time() - t0
    return res


def summary(res: dict) -> str:
    lines = []
    for name, r in (res.get("verification") or {}).items():
        lines.append(f"{name:>12}: accuracy {r['mean'] * 100:.2f} +- {r['std'] * 100:.2f} % ({r['pairs']} pairs)")
    if res.get("ijbc"):
        for case, r in res["ijbc"]["cases"].items():
            t = r["tar"] or {}
            lines.append(f"{'IJB-C ' + case:>12}: {r['pairs']:,} pairs, "
                         + ", ".join(f"TAR@{f:g}={v * 100:.2f}" for f, v in t.items()))
    for key in ("aflw2000", "biwi"):
        r = res.get(key) or {}
        if "pose" in r:
            p = r["pose"]
            lines.append(f"{key:>12}: pose MAE {p['mean']:.2f} deg (yaw {p['yaw']:.2f}, pitch {p['pitch']:.2f}, "
                         f"roll {p['roll']:.2f}; {p['kept']} kept, {p['dropped']} dropped)")
        if "nme" in r:
            n = r["nme"]
            lines.append(f"{key:>12}: NME {n['mean'] * 100:.2f} % ("
                         + ", ".join(f"{k} {v * 100:.2f}" for k, v in n["bins"].items()) + ")")
    for r in res.get("fps") or []:
        rt = r.get("runtime", "pytorch")
        lines.append(f"{'fps':>12}: batch {r['batch']:>3} {r['precision']:>8} {rt:>11}: {r['images_per_s']:.1f} img/s "
                     f"(IQR {r['iqr']:.1f}; {r['device']})")
    return "\n".join(lines)

