"""LFW / CFP-FP / AgeDB-style ``.bin`` verification sets monitored during training
(Lee et al. Sec. 4.1.1; insightface's CallBackVerification): pyface.train.monitor."""
import csv

import numpy as np
import pytest

from pyface.data import SyntheticFaces
from pyface.data.verification_bin import write_bin
from pyface.errors import ConfigError
from pyface.train import Trainer, resolve_config


@pytest.fixture(scope="module")
def bins(tmp_path_factory):
    """Two small .bin pair sets of held-out synthetic identities."""
    d = tmp_path_factory.mktemp("bins")
    s = SyntheticFaces(6, 4, image_size=64, seed=9, identity_offset=1000)
    imgs = [s[i]["image"].permute(1, 2, 0).numpy() for i in range(len(s))]
    rng = np.random.default_rng(0)
    out = []
    for name in ("lfw", "agedb_30"):
        pairs, same = [], []
        for k in range(20):
            a = int(rng.integers(len(s)))
            b = (a // 4) * 4 + (a + 1) % 4 if k % 2 == 0 else int((a + 4 + rng.integers(len(s) - 4)) % len(s))
            pairs += [imgs[a], imgs[b]]
            same.append(k % 2 == 0)
        write_bin(str(d / f"{name}.bin"), pairs, same)
        out.append(str(d / f"{name}.bin"))
    return out


def _cfg(tmp_path, bins, **over):
    cfg = {"recipe": "mtl", "out_dir": str(tmp_path / "run"), "device": "cpu", "progress": False,
           "tensorboard": False, "log_every": 1, "checkpoint_every": 2,
           "model": {"preset": "iresnet-tiny-multi"},
           "data": {"train": {"type": "SyntheticFaces", "num_identities": 4, "images_per_identity": 4,
                              "image_size": 64}, "batch_size": 8},
           "optim": {"max_steps": 4}, "monitor": {"bins": bins, "every": 2, "best": "mean", "batch_size": 16}}
    cfg.update(over)
    return resolve_config(cfg)


class _Stop(Exception):
    pass


def test_bin_sets_are_scored_every_n_steps_with_best_checkpoint_and_exact_resume(tmp_path, bins):
    from pyface import runtime

    tr = Trainer(_cfg(tmp_path, bins))
    tr.fit()
    rows = list(csv.DictReader(open(tmp_path / "run" / "verification.csv")))
    assert [int(r["step"]) for r in rows] == [2, 4]
    for r in rows:
        for name in ("lfw", "agedb_30"):
            assert 0.0 <= float(r[f"{name}_accuracy"]) <= 1.0 and float(r[f"{name}_std"]) >= 0.0
        assert float(r["mean_accuracy"]) == pytest.approx(
            (float(r["lfw_accuracy"]) + float(r["agedb_30_accuracy"])) / 2)
    best = tr.callbacks[0].best
    assert best["accuracy"] == max(float(r["mean_accuracy"]) for r in rows)
    assert (tmp_path / "run" / "model_best.pt").is_file() and (tmp_path / "run" / "verification_best.json").is_file()
    runtime.load_model(tmp_path / "run" / "model_best.pt")
    # the protocol is pyface.eval's: the same numbers from eval_verification on the final weights
    from pyface.data import VerificationBin
    from pyface.eval.suites import eval_verification

    ref = eval_verification(tr.model, [VerificationBin(b) for b in bins], batch_size=16, amp=False, progress=False)
    assert float(rows[-1]["lfw_accuracy"]) == pytest.approx(ref["lfw"]["accuracy"])
    # killed after the step-2 checkpoint: the resumed run continues the same history
    def stop(t):
        if t.step == 2:
            raise _Stop

    t2 = Trainer(_cfg(tmp_path, bins, out_dir=str(tmp_path / "run2")))
    with pytest.raises(_Stop):
        t2.fit(callback=stop)
    t3 = Trainer(_cfg(tmp_path, bins, out_dir=str(tmp_path / "run2")))
    t3.fit(resume=True)
    assert [r["step"] for r in t3.callbacks[0].history] == [2, 4]
    assert t3.callbacks[0].history[0] == t2.callbacks[0].history[0]


def test_monitor_errors_name_the_key(tmp_path, bins):
    with pytest.raises(ConfigError, match=r"monitor.bins\[1\]"):
        Trainer(_cfg(tmp_path, [bins[0], str(tmp_path / "missing.bin")]))
    with pytest.raises(ConfigError, match="monitor.best"):
        Trainer(_cfg(tmp_path, bins, monitor={"bins": bins, "best": "cfp_fp"}))
    with pytest.raises(ConfigError, match=r"monitor\.frequent: unknown key"):
        _cfg(tmp_path, bins, monitor={"bins": bins, "frequent": 2})
    with pytest.raises(ConfigError, match="face embeddings"):
        Trainer(_cfg(tmp_path, bins, recipe="pretrain-fld-hpe", model={"preset": "resnet18-fld-hpe", "width": 8}))
    assert Trainer(_cfg(tmp_path, bins, monitor={"bins": []})).callbacks == []
