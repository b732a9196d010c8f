"""Checkpoint runner, demo data and the ``pyface eval`` command on tiny models and data."""
import json

import numpy as np
import pytest
import torch

from pyface.data import IJBC, SyntheticFaces
from pyface.demos.eval import ID_OFFSET, write_demo_data
from pyface.eval import runner
from pyface.models import build_model


def _save(path, **kw):
    torch.manual_seed(0)
    m = build_model("iresnet-tiny-multi", **kw)
    torch.save({"model": m.state_dict(), "model_config": m.config.to_dict()}, path)
    return m


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaldata")
    write_demo_data(root, image_size=64, scale=0.1)
    return root


def test_load_model_and_errors(tmp_path):
    m = _save(tmp_path / "model.pt")
    got = runner.load_model(tmp_path)  # run folder -> model.pt
    assert got.config == m.config and not got.training
    for a, b in zip(got.state_dict().values(), m.state_dict().values()):
        assert torch.equal(a, b)
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "checkpoints").mkdir()
    torch.save({"model": m.state_dict(), "model_config": m.config.to_dict(), "step": 3},
               tmp_path / "ck" / "checkpoints" / "last.pt")
    assert runner.find_checkpoint(tmp_path / "ck").name == "last.pt"
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        runner.load_model(tmp_path / "nope.pt")
    torch.save({"weights": 1}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match=r"bad.pt: not a pyface checkpoint"):
        runner.load_model(tmp_path / "bad.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="junk.pt: not a readable"):
        runner.load_model(tmp_path / "junk.pt")
    fr = _save(tmp_path / "fr.pt", tasks=("fr",))
    fr.checkpoint_path = "fr.pt"
    with pytest.raises(ValueError, match=r"fr.pt: head pose needs the model output\(s\) \['pose'\]"):
        runner.require_outputs(fr, ["pose"], "head pose")


def test_prepare_maps_pixels_back():
    """A bright pixel survives the HopeNet test transform at the mapped position."""
    rng = np.random.default_rng(0)
    for h, w in ((90, 70), (64, 64), (50, 130)):
        img = np.zeros((h, w, 3), np.uint8)
        x, y = rng.integers(w // 3, 2 * w // 3), rng.integers(h // 3, 2 * h // 3)
        img[y - 1:y + 2, x - 1:x + 2] = 255  # 3x3 block centred on pixel (x, y): centre x + 0.5
        out, m = runner._prepare(torch.from_numpy(img).permute(2, 0, 1), 32)
        assert out.shape == (32, 32, 3)
        g = out[..., 0].astype(float)
        yy, xx = np.mgrid[:32, :32]
        cx, cy = (g * (xx + 0.5)).sum() / g.sum(), (g * (yy + 0.5)).sum() / g.sum()
        back = (np.array([cx, cy]) + m[2:]) / m[:2]
        np.testing.assert_allclose(back, [x + 0.5, y + 0.5], atol=0.6)


def test_infer_flip_sum_and_landmark_map(demo_root):
    from pyface.data import AFLW2000

    torch.manual_seed(0)
    model = build_model("iresnet-tiny-multi").eval()
    ds = AFLW2000(str(demo_root / "AFLW2000"))
    o = runner.infer(model, ds, batch_size=4, flip=True, progress=False)
    assert o["embedding"].shape == (len(ds), 32) and o["landmarks"].shape == (len(ds), 68, 2)
    x, mp = runner._prepare(ds[1]["image"], 64)
    xb = torch.from_numpy(x).permute(2, 0, 1)[None]
    with torch.no_grad():
        ref = model(xb)
        emb = ref["embedding"] + model(xb.flip(3))["embedding"]
    np.testing.assert_allclose(o["embedding"][1], emb[0].numpy(), atol=1e-4)
    np.testing.assert_allclose(o["landmarks"][1], ((ref["landmarks"][0].double().numpy() + mp[2:]) / mp[:2]), atol=1e-3)
    np.testing.assert_allclose(o["pose"][1], ref["pose"][0].numpy(), atol=1e-4)


def test_demo_ijbc_alignment_restores_faces(demo_root):
    meta = IJBC(str(demo_root / "IJBC"))
    faces = meta.faces(64)
    src = SyntheticFaces(4, 8, image_size=64, seed=2, identity_offset=ID_OFFSET + 10_000, max_yaw=80.0)
    for k in (0, 5, 17):
        a, b = faces[k]["image"].float(), src[k]["image"].float()
        assert (a[:, 4:-4, 4:-4] - b[:, 4:-4, 4:-4]).abs().mean() < 12  # JPEG + resampling
    assert meta.t1.size == 16 and meta.labels.sum() == 4


def test_cli_all_and_bad_input(tmp_path, demo_root, capsys):
    from pyface.cli import main, run
    from pyface.errors import DataError

    _save(tmp_path / "model.pt")
    out = tmp_path / "out"
    assert main(["eval", "all", "--checkpoint", str(tmp_path / "model.pt"), "--data-root", str(demo_root),
                 "--out", str(out), "--no-progress", "--fps-repeats", "3", "--fps-batches", "1,4",
                 "--batch-size", "16"]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert set(rep) >= {"verification", "ijbc", "aflw2000", "biwi", "fps"}
    assert rep["verification"]["lfw"]["pairs"] == 40 and set(rep["ijbc"]["cases"]) == {"all", "soft", "medium", "hard"}
    assert rep["ijbc"]["cases"]["all"]["pairs"] == 16
    assert {r["batch"] for r in rep["fps"]} == {1, 4}
    md = (out / "report.md").read_text()
    for title in ("Table 3", "Table 4", "Table 5", "Table 6", "Table 7", "paper 004, Tables 2 and 3"):
        assert title in md
    assert "| Lee et al. (MTL) | 2.80 | 4.27 | 2.90 | 3.32 | 221.2 |" in md
    for png in ("ijbc_roc.png", "nme_by_yaw.png", "pose_errors.png"):
        assert (out / png).stat().st_size > 1000
    # a checkpoint without the pose head: pose evaluation refuses before any inference
    _save(tmp_path / "fr.pt", tasks=("fr",))
    with pytest.raises(ValueError, match=r"fr.pt: head pose evaluation needs .*'pose'"):
        run(["eval", "pose", "--checkpoint", str(tmp_path / "fr.pt"), "--data-root", str(demo_root)])
    with pytest.raises(DataError, match="no IJB-C folder"):
        run(["eval", "ijbc", "--checkpoint", str(tmp_path / "model.pt"), "--data-root", str(tmp_path)])
    # through the program: a user error is one line on stderr and exit code 2
    capsys.readouterr()
    assert main(["eval", "ijbc", "--checkpoint", str(tmp_path / "model.pt"), "--data-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pyface eval: error: no IJB-C folder") and err.count("\n") == 1
    assert main(["eval", "all", "--checkpoint", str(tmp_path / "nope.pt")]) == 2
    err = capsys.readouterr().err
    assert err == f"pyface eval: error: --checkpoint: checkpoint not found: {tmp_path / 'nope.pt'}\n"


def test_infer_cache_resumes(tmp_path, demo_root):
    """A killed run keeps its finished shards: the rerun reads them, recomputes only
    the missing one and returns the same outputs."""
    from pyface.data import BIWI

    torch.manual_seed(0)
    model = build_model("iresnet-tiny-multi").eval()
    ds = BIWI(str(demo_root / "BIWI_test.npz"))
    full = runner.infer(model, ds, batch_size=4, progress=False)
    cache = tmp_path / "c"
    runner.infer(model, ds, batch_size=4, progress=False, cache_dir=cache, shard_size=3)
    shards = sorted(cache.glob("*.npz"))
    assert len(shards) == -(-len(ds) // 3)
    shards[1].unlink()  # as if killed while computing the second shard

    class Guard(torch.utils.data.Dataset):  # only the missing shard may be read
        def __len__(self):
            return len(ds)

        def __getitem__(self, i):
            assert 3 <= i < 6, f"cached item {i} was recomputed"
            return ds[i]

    again = runner.infer(model, Guard(), batch_size=4, progress=False, cache_dir=cache, shard_size=3)
    for k in full:
        np.testing.assert_allclose(again[k], full[k], atol=1e-5, equal_nan=True)
    assert runner.cache_key(model, "biwi", 10, False) != runner.cache_key(model, "biwi", 11, False)


def test_load_pre_registry_checkpoint(tmp_path):
    """Checkpoints from before the head registry kept stage 4 beside the heads
    (``stage4.<t>.*``, ``heads.<t>.*``); they load with identical outputs."""
    m = _save(tmp_path / "new.pt").eval()
    old = {}
    for k, v in m.state_dict().items():
        p = k.split(".")
        if p[0] == "heads" and p[2] == "stage4":
            old[".".join(["stage4", p[1]] + p[3:])] = v
        elif p[0] == "heads" and p[2] == "head":
            old[".".join(["heads", p[1]] + p[3:])] = v
        else:
            old[k] = v
    assert any(k.startswith("stage4.fr.") for k in old)
    torch.save({"model": old, "model_config": m.config.to_dict()}, tmp_path / "old.pt")
    got = runner.load_model(tmp_path / "old.pt")
    x = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    with torch.no_grad():
        a, b = m(x), got(x)
    for k in a:
        assert torch.equal(a[k], b[k])


def test_hopenet_head_gives_pose(tmp_path, demo_root):
    """An HMTL / HopeNet checkpoint (bin logits, no "pose" head) is evaluated on the
    expectation angles of pyface.nn.hopenet_angles (66 bins -> 3-degree bins)."""
    from pyface.data import BIWI
    from pyface.nn import hopenet_angles

    torch.manual_seed(0)
    m = build_model("resnet18-fld-hpe", tasks=("hopenet",), width=8)
    torch.save({"model": m.state_dict(), "model_config": m.config.to_dict()}, tmp_path / "hn.pt")
    model = runner.load_model(tmp_path / "hn.pt")
    assert runner.model_outputs(model) == {"pose_logits", "pose"}
    ds = BIWI(str(demo_root / "BIWI_test.npz"))
    o = runner.infer(model, ds, batch_size=4, progress=False)
    assert set(o) == {"pose", "landmarks_gt", "pose_gt"}
    x, _ = runner._prepare(ds[2]["image"], 64)
    with torch.no_grad():
        ref = hopenet_angles(model(torch.from_numpy(x).permute(2, 0, 1)[None])["pose_logits"], 3.0)
    np.testing.assert_allclose(o["pose"][2], ref[0].numpy(), atol=1e-4)
