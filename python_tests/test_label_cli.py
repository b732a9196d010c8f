"""`pyface label landmarks`: streaming shards, summary, resume == uninterrupted, bad input,
bounded memory."""
import json
import os

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from pyface.cli import main, run
from pyface.data import ManifestDataset, SyntheticFaces, write_image_folder
from pyface.errors import UsageError
from pyface.label import Labeler
from pyface.label.landmarks import LABEL_SCHEMA, label_dataset
from pyface.models import MultiTaskNet, model_config


def _net(path=None, size=32):
    torch.manual_seed(0)
    net = MultiTaskNet(model_config("resnet18-fld-hpe", input_size=size, width=4, layers=(1, 1, 1, 1)))
    with torch.no_grad():  # non-degenerate random predictions (the heads start at zero)
        for h in net.heads.values():
            h.head.fc.weight.normal_(0, 0.3)
    net.eval()
    if path is not None:
        torch.save({"model": net.state_dict(), "model_config": net.config.to_dict()}, path)
    return net


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("faces")
    ds = SyntheticFaces(6, 3, image_size=48, seed=1)
    write_image_folder(str(root / "img"), [ds[i] for i in range(len(ds))])
    ckpt = root / "net.pt"
    _net(ckpt)
    return root


def _run(folder, out, *extra):
    return main(["label", "landmarks", "--data", str(folder / "img"), "--net", str(folder / "net.pt"),
                 "--no-mediapipe", "--views", "4", "--threshold", "0.6", "--out", str(out), "--shard-size", "5",
                 "--batch-size", "3", "--workers", "0", "--no-progress", "--device", "cpu", *extra])


def test_cli_writes_manifest_and_summary(folder, tmp_path, capsys):
    assert _run(folder, tmp_path / "o") == 0
    out = tmp_path / "o"
    assert sorted(f for f in os.listdir(out) if f.startswith("part-")) == [f"part-00000{k}.parquet" for k in range(4)]
    table = pq.read_table(out / "manifest.parquet")
    assert table.schema.names == LABEL_SCHEMA.names and len(table) == 18
    s = json.loads((out / "summary.json").read_text())
    acc = table.column("accepted").to_numpy(zero_copy_only=False)
    assert s["images"] == 18 and s["accepted"] == int(acc.sum()) and 0 < acc.sum() < 18
    assert sum(s["rejection_causes"].values()) == 18 - acc.sum() and s["device"] == "cpu"
    assert set(s["seconds_by_stage"]) >= {"net", "warp", "fit"} and s["images_per_s"] > 0
    lm = np.stack(table.column("landmarks").to_numpy(zero_copy_only=False))
    assert np.isnan(lm[~acc]).all() and np.isfinite(lm[acc]).all()
    # what pyface train reads
    m = ManifestDataset(str(out / "manifest.parquet"))
    assert len(m) == 18 and m[0]["image"].shape == (3, 48, 48) and int(m[17]["identity"]) == 5
    assert "accepted" in capsys.readouterr().out


def test_killed_and_resumed_equals_uninterrupted(folder, tmp_path):
    from pyface.data import open_dataset

    def labeler():
        return Labeler(str(folder / "net.pt"), mediapipe=False, views=4, threshold=0.6, device="cpu")

    ds = open_dataset(str(folder / "img"))
    full = label_dataset(ds, labeler(), tmp_path / "full", shard_size=5, batch_size=3, progress=False)

    def die(k):
        if k == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        label_dataset(ds, labeler(), tmp_path / "cut", shard_size=5, batch_size=3, progress=False, callback=die)
    assert sorted(os.listdir(tmp_path / "cut")) == ["config.json", "part-000000.parquet", "part-000001.parquet",
                                                    "timing"]
    assert sorted(os.listdir(tmp_path / "cut" / "timing")) == ["part-000000.json", "part-000001.json"]
    (tmp_path / "cut" / ".part-000002.parquet.1.tmp").write_bytes(b"torn")
    with pytest.raises(ValueError, match="--resume"):
        label_dataset(ds, labeler(), tmp_path / "cut", shard_size=5, batch_size=3, progress=False)
    with pytest.raises(ValueError, match="shard_size"):
        label_dataset(ds, labeler(), tmp_path / "cut", shard_size=6, batch_size=3, progress=False, resume=True)
    with pytest.raises(ValueError, match="labeler.threshold"):
        label_dataset(ds, Labeler(str(folder / "net.pt"), mediapipe=False, views=4, threshold=0.5, device="cpu"),
                      tmp_path / "cut", shard_size=5, batch_size=3, progress=False, resume=True)
    resumed = label_dataset(ds, labeler(), tmp_path / "cut", shard_size=5, batch_size=3, progress=False, resume=True)
    a = pq.read_table(tmp_path / "full" / "manifest.parquet")
    b = pq.read_table(tmp_path / "cut" / "manifest.parquet")
    assert a.schema == b.schema and len(a) == len(b) == 18
    for c in a.column_names:  # bit-identical, NaN == NaN (rejected rows)
        x, y = (np.array(t.column(c).to_pylist(), dtype=object if c in ("image", "source", "cause") else None)
                for t in (a, b))
        assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), c
    assert {k: resumed[k] for k in ("images", "accepted", "rejection_causes", "invalid_samples")} == \
        {k: full[k] for k in ("images", "accepted", "rejection_causes", "invalid_samples")}


def test_bad_input(folder, tmp_path):
    bad = tmp_path / "bad"
    (bad / "a").mkdir(parents=True)
    cv2.imwrite(str(bad / "a" / "0.png"), np.zeros((40, 40, 3), np.uint8))
    (bad / "a" / "1.jpg").write_bytes(b"not an image")
    args = ["label", "landmarks", "--data", str(bad), "--net", str(folder / "net.pt"), "--no-mediapipe",
            "--views", "2", "--workers", "0", "--no-progress", "--device", "cpu"]
    with pytest.raises(ValueError, match="1.jpg"):
        run(args + ["--out", str(tmp_path / "o1")])
    assert not any(f.startswith("part-") for f in os.listdir(tmp_path / "o1"))  # nothing half-written
    assert main(args + ["--out", str(tmp_path / "o2"), "--on-error", "skip"]) == 0
    s = json.loads((tmp_path / "o2" / "summary.json").read_text())
    assert s["images"] == 2 and s["rejection_causes"]["unreadable"] == 1
    with pytest.raises(UsageError, match="--data: dataset not found: .*nowhere"):
        run(args + ["--out", str(tmp_path / "o3"), "--data", str(tmp_path / "nowhere")])
    fr = MultiTaskNet(model_config("iresnet-tiny-multi", tasks=["fr"]))
    torch.save({"model": fr.state_dict(), "model_config": fr.config.to_dict()}, tmp_path / "fr.pt")
    with pytest.raises(ValueError, match="fr.pt.*'hpe'"):
        run(args + ["--out", str(tmp_path / "o4"), "--net", str(tmp_path / "fr.pt")])
    with pytest.raises(ValueError, match="empty"):
        label_dataset([], Labeler(_net(), mediapipe=False, views=1), tmp_path / "o5")
    assert not (tmp_path / "o5").exists()


class _Tiny(torch.utils.data.Dataset):
    source = "tiny"

    def __len__(self):
        return 20_000

    def __getitem__(self, i):
        img = torch.from_numpy(np.random.default_rng(i).integers(0, 255, (3, 16, 16), dtype=np.uint8))
        return {"image": img, "identity": torch.tensor(i // 10), "source": "tiny"}


class _CheapNet(torch.nn.Module):
    """A stand-in fld+hpe net (the memory test is about streaming, not the net): the mean
    face scaled by the image brightness."""

    config = model_config("resnet18-fld-hpe", input_size=32)

    def forward(self, x):
        from pyface.geometry import default_mean_shape

        b = x.float().mean((1, 2, 3))[:, None, None] / 255
        lm = 16 + default_mean_shape()[None, :, :2] * (1 + 0.1 * b)
        return {"landmarks": lm, "pose": torch.zeros(len(x), 3) + b[:, 0]}


def test_memory_bounded_over_20k_images(tmp_path):
    psutil = pytest.importorskip("psutil")
    proc = psutil.Process()
    rss = {}
    lab = Labeler(_CheapNet(), mediapipe=False, views=2, device="cpu", batch_size=2000)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small ops: threads only add contention on a shared 2-core CI machine
    try:
        summary = label_dataset(_Tiny(), lab, tmp_path / "o", shard_size=2000, batch_size=1000, progress=False,
                                callback=lambda k: rss.__setitem__(k, proc.memory_info().rss))
    finally:
        torch.set_num_threads(threads)
    assert summary["images"] == 20_000 and len(rss) == 10 and summary["accepted"] > 0
    growth = (rss[9] - rss[2]) / 2**20
    assert growth < 40, f"RSS grew by {growth:.0f} MiB between shard 2 and 11 (not streaming?)"


def test_manifest_box_column(folder, tmp_path):
    import pyarrow as pa

    from pyface.data import write_manifest_dataset
    from pyface.label.landmarks import _boxes

    ds = SyntheticFaces(2, 2, image_size=48, seed=3)
    path = write_manifest_dataset(str(tmp_path / "m"), [ds[i] for i in range(4)])
    t = pq.read_table(path)
    box = [[4.0, 4.0, 44.0, 44.0], [float("nan")] * 4, [0.0, 0.0, 30.0, 30.0], [10.0, 8.0, 40.0, 46.0]]
    pq.write_table(t.append_column("box", pa.array(box, pa.list_(pa.float32(), 4))), path)
    m = ManifestDataset(path)
    got = _boxes(m)
    assert got.shape == (4, 4) and np.isnan(got[1]).all() and got[3].tolist() == [10, 8, 40, 46]
    lab = Labeler(str(folder / "net.pt"), mediapipe=False, views=2, threshold=0.6, device="cpu")
    s = label_dataset(m, lab, tmp_path / "o", progress=False)
    assert s["images"] == 4
    img = m[3]["image"].permute(1, 2, 0).numpy().copy()
    with_box = lab.label_arrays([img], [got[3]], keep_samples=True)["samples"]
    without = lab.label_arrays([img], keep_samples=True)["samples"]
    assert not np.allclose(with_box, without)  # the views were cut around the given box


def test_labeling_leaves_the_callers_dataset_as_it_was(tmp_path):
    """The labeler reads images whose labels it replaces without checking those labels,
    and without switching off the caller's dataset.check_labels to do so."""
    from pyface.data import write_manifest

    ds = SyntheticFaces(2, 2, image_size=48, seed=3)
    rel = write_image_folder(str(tmp_path / "img"), [ds[i] for i in range(len(ds))])
    lm = np.full((4, 68, 2), 1000.0, np.float32)  # far outside the 48 px images
    write_manifest(str(tmp_path / "img" / "m.parquet"), rel, [0, 0, 1, 1], lm, np.zeros((4, 3)), "t")
    m = ManifestDataset(str(tmp_path / "img" / "m.parquet"))
    with pytest.raises(ValueError, match="landmarks"):
        m[0]
    s = label_dataset(m, Labeler(_net(size=32), mediapipe=False, views=2, device="cpu"), tmp_path / "o",
                      progress=False)
    assert s["images"] == 4 and s["rejection_causes"]["unreadable"] == 0  # every image was read
    assert m.check_labels is True
    with pytest.raises(ValueError, match="landmarks"):
        m[0]
