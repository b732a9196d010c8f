"""`pyface demo --seed` (the mtl demo, pyface.demos.mtl) and the per-seed / per-CPU-path runner
(tools/demo_seeds.py)."""
import importlib.util
from pathlib import Path

from pyface.cli import parse_args
from pyface.demos.mtl import demo_config

ROOT = Path(__file__).resolve().parents[1]


def test_seed_reaches_the_training_config():
    cmd, args = parse_args(["demo", "--seed", "3", "--out", "x"])  # `pyface demo` is `pyface demo mtl`
    assert cmd.name == "demo mtl" and args.seed == 3 and args.out == "x"
    assert demo_config("x", seed=args.seed)["seed"] == 3
    cmd, args = parse_args(["demo"])
    assert cmd.name == "demo mtl" and args.seed == 0 and args.out == "demo_out"


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


def test_verification_uses_flip_sum_embeddings_and_every_genuine_pair():
    import numpy as np
    import torch

    from pyface.data import SyntheticFaces
    from pyface.demos.mtl import verification
    from pyface.demos.rendered import render
    from pyface.eval import metrics as M
    from pyface.models import MultiTaskNet, model_config

    torch.manual_seed(0)
    model = MultiTaskNet(model_config("iresnet-tiny-multi", input_size=32)).eval()
    test = render(SyntheticFaces(7, 5, image_size=32, seed=0, identity_offset=11), 0)
    v = verification(model, test)
    assert v["pairs"] == 2 * 7 * 10  # all 5*4/2 genuine pairs of 7 identities, as many impostors
    x = test["image"]  # uint8: the model normalises
    with torch.no_grad():
        emb = (model(x)["embedding"] + model(x.flip(3))["embedding"]).numpy()
        plain = model(x)["embedding"].numpy()
    pairs, issame = M.verification_pairs(test["identity"].numpy(), v["pairs"], seed=0)
    assert issame.sum() == 70
    np.testing.assert_allclose(v["accuracy"], M.verification_accuracy(emb, pairs, issame)["accuracy"])
    np.testing.assert_allclose(v["accuracy_no_flip"], M.verification_accuracy(plain, pairs, issame)["accuracy"])


def test_quick_demo_runs_end_to_end(tmp_path):
    import json

    from pyface.cli import main

    assert main(["demo", "--quick", "--out", str(tmp_path)]) == 0  # --quick: the checks are not enforced
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["verification_protocol"].startswith("flip-sum") and 0.0 <= m["verification_accuracy"] <= 1.0
    assert set(m["checks"]) and (tmp_path / "predictions.png").exists()


def test_batched_fetch_equals_item_by_item_fetch():
    import torch

    from pyface.data import SyntheticFaces
    from pyface.demos.rendered import TensorFaces, render
    from pyface.train.sampling import EpochBatchSampler, SeededDataset

    data = render(SyntheticFaces(10, 6, image_size=32, seed=0), 0)
    ds = SeededDataset(TensorFaces(data, flip=True))
    batches = list(EpochBatchSampler(len(ds), 9, seed=4, epoch=1))
    flipped = 0
    before = torch.get_rng_state()
    for items in batches:
        fast, slow = ds.__getitems__(items), [ds[item] for item in items]
        for a, b in zip(fast, slow):
            assert a.keys() == b.keys()
            for k in a:
                if isinstance(a[k], torch.Tensor):
                    assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k
                else:
                    assert a[k] == b[k]
        flipped += sum(not torch.equal(a["image"], data["image"][i]) for a, (i, _) in zip(fast, items))
    assert 0 < flipped < sum(len(b) for b in batches)  # both branches ran
    assert torch.equal(before, torch.get_rng_state())  # the training RNG is untouched
