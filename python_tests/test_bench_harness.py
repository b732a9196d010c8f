"""The benchmark harness's side-by-side timing (no timing assertions: structure,
interleaving and the ratio arithmetic only)."""
import argparse
import math

import torch

from pyface.benchmarks import _harness as H


def test_compare_interleaves_and_reports_spread():
    calls = []
    fns = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    res = H.compare(fns, "cpu", warmup=1, repeats=4, steps=2)
    timed = calls[4:4 + 4 * 4]  # after one warm-up round each; peak-memory calls come last
    assert calls[:4] == ["a", "a", "b", "b"]
    assert timed == ["a", "a", "b", "b", "b", "b", "a", "a"] * 2  # order reverses every round
    assert calls[-2:] == ["a", "b"]
    for k in "ab":
        s = res["sides"][k]
        assert s["rounds"] == 4 and not s["oom"]
        assert s["ms_q1"] <= s["ms"] <= s["ms_q3"] and math.isclose(s["ms_iqr"], s["ms_q3"] - s["ms_q1"])
    r = res["ratios"]["b/a"]
    assert r["rounds"] == 4 and r["q1"] <= r["median"] <= r["q3"]


def test_compare_marks_out_of_memory_side():
    def boom():
        raise torch.OutOfMemoryError("test")

    res = H.compare({"ok": lambda: None, "big": boom}, "cpu", warmup=1, repeats=3)
    assert res["sides"]["big"]["oom"] and math.isnan(res["sides"]["big"]["ms"])
    assert not res["sides"]["ok"]["oom"] and res["sides"]["ok"]["rounds"] == 3
    assert res["ratios"] == {}


def test_quartiles():
    assert H.quartiles([5.0]) == (5.0, 5.0, 5.0)
    assert H.quartiles([1.0, 2.0, 3.0, 4.0, 5.0]) == (2.0, 3.0, 4.0)


def test_train_benchmark_runs_both_parts_small():
    from pyface.benchmarks import train

    p = argparse.ArgumentParser()
    train.add_arguments(p)
    args = p.parse_args(["--classes", "300", "--cls-batch", "8", "--dim", "16", "--repeats", "2", "--steps", "1",
                         "--preset", "iresnet10-multi-64", "--batch", "2", "--model-classes", "50"])
    args.quick, args.device = True, "cpu"
    out = train.run(args)
    row = out["classifier"]["rows"][0]
    assert row["C"] == 300 and row["rounds"] == 2 and row["speedup_q1"] <= row["speedup"] <= row["speedup_q3"]
    assert out["model"]["rows"][0]["batch"] == 2
