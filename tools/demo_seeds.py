"""Runs ``pyface demo`` for several seeds on each CPU instruction-set path and
collects the metrics, wall time and CPU time into one JSON (bench/results/).

A path is emulated end to end: PYFACE_CPU_ISA for pyface's kernels and the matching
caps for torch's own kernels (ATen, oneDNN, MKL), so ``avx2`` on an AVX-512 machine
runs what an AVX2-only CPU would. Runs are sequential (niced: the machine is shared).

    python tools/demo_seeds.py --seeds 0 1 2 --isas avx2 avx512 --out bench/results/demo-seeds-cpu.json
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pyface.benchmarks._harness import device_name

# torch's own dispatch caps per path (ATen CPU capability, oneDNN, MKL).
TORCH_CAPS = {
    "baseline": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "avx512": {"ATEN_CPU_CAPABILITY": "avx512", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE",
               "MKL_ENABLE_INSTRUCTIONS": "AVX512"},
}
KEYS = ("verification_accuracy", "verification_accuracy_no_flip", "verification_pairs", "pose_mae_deg",
        "pose_mae_baseline_deg", "nme", "nme_baseline")


def run_one(isa: str, seed: int, work: Path, threads: int, extra: list[str]) -> dict:
    env = {**os.environ, "PYFACE_CPU_ISA": isa, **TORCH_CAPS[isa], "OMP_NUM_THREADS": str(threads)}
    out = work / f"{isa}-seed{seed}"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(["nice", "-n", "10", sys.executable, "-m", "pyface.cli", "demo", "--out", str(out),
                           "--seed", str(seed), *extra], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if not (out / "metrics.json").exists():
        raise RuntimeError(f"demo {isa} seed {seed} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    m = json.loads((out / "metrics.json").read_text())
    row = {"isa": isa, "seed": seed, "exit_code": proc.returncode, **{k: m[k] for k in KEYS},
           "checks": m["checks"], "steps": m["steps"], "wall_s": wall,
           "user_cpu_s": after.ru_utime - before.ru_utime, "system_cpu_s": after.ru_stime - before.ru_stime,
           "torch_threads": threads}
    print(json.dumps(row), flush=True)
    return row


def summarise(rows: list[dict]) -> dict:
    acc = [r["verification_accuracy"] for r in rows]
    return {
        "runs": len(rows),
        "verification_accuracy": {"median": sorted(acc)[len(acc) // 2], "min": min(acc), "max": max(acc)},
        "pose_mae_over_baseline_max": max(r["pose_mae_deg"] / r["pose_mae_baseline_deg"] for r in rows),
        "nme_over_baseline_max": max(r["nme"] / r["nme_baseline"] for r in rows),
        "all_checks_pass": all(all(r["checks"].values()) for r in rows),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--isas", nargs="+", default=["avx2", "avx512"], choices=sorted(TORCH_CAPS))
    p.add_argument("--threads", type=int, default=2, help="torch threads per run")
    p.add_argument("--out", default="bench/results/demo-seeds-cpu.json")
    p.add_argument("--work", default=None, help="where the demo outputs go (default: a temporary folder)")
    a, extra = p.parse_known_args(argv)
    work = Path(a.work or tempfile.mkdtemp(prefix="demo-seeds-"))
    out = Path(a.out)
    # Resumable: runs already in the output file are kept, not repeated.
    rows = json.loads(out.read_text())["runs"] if out.exists() else []
    done = {(r["isa"], r["seed"]) for r in rows}
    for seed in a.seeds:
        for isa in a.isas:
            if (isa, seed) in done:
                continue
            rows.append(run_one(isa, seed, work, a.threads, extra))
            result = {"runs": rows, "summary": summarise(rows), "cpu": device_name("cpu"),
                      "note": "sequential runs (nice 10), one at a time; wall time is the whole demo "
                              "(rendering, training, evaluation)"}
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_suffix(".tmp")
            tmp.write_text(json.dumps(result, indent=2))
            os.replace(tmp, out)
    print(json.dumps(summarise(rows), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
