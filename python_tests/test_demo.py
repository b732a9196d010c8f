"""`pyface demo --seed` and the per-seed / per-CPU-path runner (tools/demo_seeds.py)."""
import importlib.util
from pathlib import Path

from pyface.cli import build_parser
from pyface.train.demo import demo_config

ROOT = Path(__file__).resolve().parents[1]


def test_seed_reaches_the_training_config():
    args = build_parser().parse_args(["demo", "--seed", "3", "--out", "x"])
    assert args.seed == 3
    assert demo_config("x", seed=args.seed)["seed"] == 3
    assert build_parser().parse_args(["demo"]).seed == 0


def _demo_seeds():
    path = ROOT / "tools" / "demo_seeds.py"
    spec = importlib.util.spec_from_file_location("demo_seeds", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_demo_seeds_summary_takes_the_worst_run():
    mod = _demo_seeds()
    runs = [{"verification_accuracy": a, "pose_mae_deg": p, "pose_mae_baseline_deg": 20.0, "nme": n,
             "nme_baseline": 0.2, "checks": {"x": ok}} for a, p, n, ok in
            [(0.94, 4.0, 0.05, True), (0.92, 5.0, 0.04, True), (0.95, 3.0, 0.06, False)]]
    s = mod.summarise(runs)
    assert s["verification_accuracy"] == {"median": 0.94, "min": 0.92, "max": 0.95}
    assert s["pose_mae_over_baseline_max"] == 0.25 and abs(s["nme_over_baseline_max"] - 0.3) < 1e-12
    assert s["all_checks_pass"] is False
    # every path's torch caps are set, so an "avx2" run emulates an AVX2-only CPU end to end
    assert set(mod.TORCH_CAPS) == {"baseline", "avx2", "avx512"}
