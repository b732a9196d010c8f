"""Algorithm 2 (pyface.label.identities, ``pyface label identities``): duplicate identities across FR
datasets.

The datasets are written to disk in the real formats (image folder, RecordIO, 300W-LP);
each image shows one "person" as a random colour pattern plus noise, and the two FR
"nets" are fixed deterministic modules (pooled pixels, and a random projection of
them), so the true duplicates are known and the whole pipeline runs in seconds."""
import csv
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from pyface.data import (
    ImageFolderFaces,
    RecordIOFaces,
    open_dataset,
    read_manifest,
    write_300wlp,
    write_image_folder,
    write_recordio,
)
from pyface.data.manifest import ManifestDataset
from pyface.errors import ConfigError, DataError, OutputError, UsageError
from pyface.label import identities as I
from pyface.label.landmarks import _ref

S = 32


class PooledNet(torch.nn.Module):
    """Normalised image -> 8x8 average pool, centred (192-d), optionally projected."""

    def __init__(self, out_dim=None, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.proj = None if out_dim is None else torch.randn(192, out_dim, generator=g)

    def forward(self, x):
        e = torch.nn.functional.adaptive_avg_pool2d(x, 8).flatten(1)
        e = e - e.mean(1, keepdim=True)
        return {"embedding": e if self.proj is None else e @ self.proj}


def nets():
    return I.FRNet(PooledNet(), "a", input_size=S, device="cpu"), I.FRNet(PooledNet(48), "b", input_size=S,
                                                                             device="cpu")


def person_image(person, k, seed=0, salt=0):
    """A left-right symmetric pattern (flip-sum then changes nothing) plus per-image noise."""
    g = np.random.default_rng([seed, person])
    half = g.uniform(0, 255, (8, 4, 3))
    pat = np.concatenate([half, half[:, ::-1]], 1)
    img = np.kron(pat, np.ones((S // 8, S // 8, 1)))
    img += np.random.default_rng([seed, person, k, salt]).normal(0, 40, img.shape)
    return torch.from_numpy(np.clip(img, 0, 255).astype(np.uint8)).permute(2, 0, 1).contiguous()


def samples(persons, per=3, landmarks=False, salt=0):
    out = []
    grid = np.stack(np.meshgrid(np.linspace(0.5, S - 0.5, 17), np.linspace(0.5, S - 0.5, 4)), -1).reshape(-1, 2)[:68]
    for ident, p in enumerate(persons):
        for k in range(per):
            lm = torch.tensor(grid, dtype=torch.float32) if landmarks else torch.full((68, 2), float("nan"))
            pose = torch.zeros(3) if landmarks else torch.full((3,), float("nan"))
            out.append({"image": person_image(p, k, salt=salt), "landmarks": lm, "pose": pose,
                        "identity": torch.tensor(ident),
                        "source": "x"})
    return out


PERSONS_A = [0, 1, 2, 3, 4, 5, 6, 7]       # dataset A: identity i = person PERSONS_A[i]
PERSONS_B = [4, 8, 5, 9, 6, 10, 7, 11]     # dataset B shares persons 4..7
PERSONS_W = [12, 5, 13, 8]                 # 300W-LP faces: person 5 (in A and B), 8 (in B)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("alg2")
    write_image_folder(str(root / "A"), samples(PERSONS_A, salt=1))
    write_recordio(str(root / "B" / "train.rec"), samples(PERSONS_B, salt=2))
    write_300wlp(str(root / "W"), samples(PERSONS_W, per=1, landmarks=True, salt=3))
    return root


def image_refs(ds):
    return [_ref(ds, i) for i in range(len(ds))]


def write_alg1_shards(folder, datasets, reject_every=0):
    """Algorithm-1-style shards (manifest columns + accepted, n_valid, n_kept, spread)."""
    os.makedirs(folder, exist_ok=True)
    for k, (source, ds) in enumerate(datasets):
        refs = image_refs(ds)  # as pyface label landmarks writes them
        n = len(refs)
        ident = [int(ds[i]["identity"]) for i in range(n)]
        acc = np.ones(n, bool)
        if reject_every:
            acc[::reject_every] = False
        lm = np.random.default_rng(k).uniform(0, S, (n, 136)).astype(np.float32)
        t = pa.table({"image": refs, "identity": pa.array(ident, pa.int64()),
                      "landmarks": pa.FixedSizeListArray.from_arrays(pa.array(lm.reshape(-1)), 136),
                      "pose": pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(3 * n, np.float32)), 3),
                      "source": [source] * n, "accepted": acc, "n_valid": np.full(n, 8), "n_kept": np.full(n, 3),
                      "spread": np.zeros(n, np.float32)})
        pq.write_table(t, os.path.join(folder, f"part-{k:06d}.parquet"))


def truth():
    return {"A": lambda i: PERSONS_A[i], "B": lambda i: PERSONS_B[i],
            "300w_lp": lambda key: PERSONS_W[int(key.split("_")[1])]}


def run(data, out, **kw):
    na, nb = nets()
    args = dict(threshold_a=0.8, threshold_b=0.8, ground_truth=truth(), progress=False, batch_size=5, chunk_size=7)
    args.update(kw)
    return I.run_identities(I.IdentitiesConfig({"A": str(data / "A"), "B": str(data / "B" / "train.rec")}, na, nb,
                                               str(out), **args))


def test_end_to_end_merges_known_duplicates(data, tmp_path):
    write_alg1_shards(tmp_path / "lm", [("A", ImageFolderFaces(str(data / "A"))),
                                        ("recordio", RecordIOFaces(str(data / "B" / "train.rec"))),
                                        ("300w_lp", open_dataset(str(data / "W")))], reject_every=5)
    s = run(data, tmp_path / "o", semi_identify=str(data / "W"), landmarks=str(tmp_path / "lm"), face_crop_area=1.0)
    gt = s["ground_truth"]
    assert gt["precision"] == 1.0 and gt["recall"] == 1.0, gt
    # 8 + 8 FR identities, 4 shared -> 12; 300W faces: 2 match, 2 new -> 14 persons
    assert s["identities_before_fr"] == 16 and s["identities_after_fr_merge"] == 12
    assert s["quality"] == {"chained_identities": 0, "old_identities_in_chains": 0, "largest_identity": 3}
    assert s["identities_after"] == 14 and s["merges_per_dataset_pair"] == {"A~B": 4, "merged~300w_lp": 2}
    assert s["semi_identify"]["source_faces"] == 4 and s["datasets"]["300w_lp"]["images"] == 8  # + _Flip
    rows = list(csv.DictReader(open(tmp_path / "o" / "identity_map.csv")))
    new = {(r["dataset"], r["old_id"]): int(r["new_id"]) for r in rows}
    assert sorted(set(new.values())) == list(range(14))
    assert [new[("A", str(i))] for i in range(8)] == list(range(8))  # first dataset keeps its order
    assert new[("B", "0")] == new[("A", "4")] and new[("B", "6")] == new[("A", "7")]
    assert new[("300w_lp", "AFW_000001_1")] == new[("A", "5")]
    assert new[("300w_lp", "AFW_000003_1")] == new[("B", "1")]
    m = list(csv.DictReader(open(tmp_path / "o" / "merges.csv")))
    assert len(m) == 6 and all(float(r["sim_a"]) >= 0.8 and float(r["sim_b"]) >= 0.8 for r in m)
    # the manifest: read as pyface train does; rejected rows left out; identities mapped
    man = ManifestDataset(str(tmp_path / "o" / "manifest.parquet"))
    # 300W-LP rows come with the dataset's own labels (the Algorithm-1 rows are replaced)
    assert s["manifest"]["rows_in"] == 24 + 24 + 8 and s["manifest"]["rejected_dropped"] == 5 + 5
    assert s["manifest"]["replaced_by_own_labels"] == 8 and s["manifest"]["own_labels"]["rows"] == 8
    assert len(man) == s["manifest"]["rows_out"] == 56 - 10
    w = [i for i in range(len(man)) if man.sources[i] == "300w_lp"]
    assert len(w) == 8 and np.isfinite(man.landmarks[w]).all() and (man.pose[w] == 0).all()
    assert all(os.path.isfile(man.images[i]) for i in w)
    assert set(man.sources) == {"A", "B", "300w_lp"}  # source = the --dataset NAME
    ref = {(r["dataset"], r["old_id"]): int(r["new_id"]) for r in rows}
    ds_b = RecordIOFaces(str(data / "B" / "train.rec"))
    refs_b = image_refs(ds_b)
    for i, img in enumerate(man.images):
        if man.sources[i] == "B":
            old = int(ds_b[refs_b.index(img)]["identity"])
            assert man.identity[i] == ref[("B", str(old))]
    assert man.num_identities == 14
    sample = man[0]
    assert sample["image"].shape == (3, S, S)
    saved = json.load(open(tmp_path / "o" / "summary.json"))
    assert saved["identities_after"] == 14


def test_keep_rejected_flags_with_nan(data, tmp_path):
    write_alg1_shards(tmp_path / "lm", [("A", ImageFolderFaces(str(data / "A")))], reject_every=4)
    s = run(data, tmp_path / "o", landmarks=str(tmp_path / "lm"), keep_rejected=True)
    t = read_manifest(str(tmp_path / "o" / "manifest.parquet"))
    assert len(t) == 24 and s["manifest"]["rejected_dropped"] == 0
    lm = np.array(t.column("landmarks").to_pylist(), dtype=np.float32)
    assert np.isnan(lm[::4]).all() and np.isfinite(np.delete(lm, np.s_[::4], 0)).all()


def test_strict_thresholds_merge_nothing_and_loose_overmerge(data, tmp_path):
    s = run(data, tmp_path / "o1", threshold_a=0.9999, threshold_b=0.9999)
    assert s["identities_after"] == 16 and s["ground_truth"]["recall"] == 0.0
    with pytest.warns(RuntimeWarning, match="join several identities of one dataset"):
        s = run(data, tmp_path / "o2", threshold_a=-1.0, threshold_b=-1.0)
    assert s["identities_after"] == 1 and s["ground_truth"]["precision"] < 0.5
    assert s["quality"] == {"chained_identities": 1, "old_identities_in_chains": 16, "largest_identity": 16}
    # both spaces must agree: space B alone would merge everything
    s = run(data, tmp_path / "o3", threshold_a=0.8, threshold_b=-1.0)
    assert s["ground_truth"]["precision"] == 1.0 and s["identities_after"] == 12


def test_union_find_chains_across_three_datasets():
    e1, e2, e3 = np.eye(3)
    a = I.IdentityEmbeddings.from_arrays("a", [0, 1], [e1, e3], [e1, e3])
    b = I.IdentityEmbeddings.from_arrays("b", [5], [(e1 + e2) / 2], [(e1 + e2) / 2])
    c = I.IdentityEmbeddings.from_arrays("c", [2, 9], [e3 * -1, e2], [e3 * -1, e2])
    new, edges = I.merge_identities([a, b, c], 0.6, 0.6)
    # a0 ~ b5 (0.71), b5 ~ c9 (0.71), a0 !~ c9 (0): one identity through the chain
    assert [x.tolist() for x in new] == [[0, 1], [0], [2, 0]]
    assert len(edges["node_a"]) == 2 and set(zip(edges["group_a"], edges["group_b"])) == {(0, 1), (1, 2)}
    np.testing.assert_allclose(edges["sim_a"], [2 ** -0.5] * 2, rtol=1e-5)


def test_union_find_order_and_errors():
    assert I.union_find(6, [5, 1, 3], [4, 3, 0]).tolist() == [0, 0, 1, 0, 2, 2]
    assert I.union_find(3, [], []).tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="edge endpoints"):
        I.union_find(2, [0], [2])


def test_mismatched_embedding_sizes():
    a = I.IdentityEmbeddings.from_arrays("a", [0], np.ones((1, 4)), np.ones((1, 3)))
    b = I.IdentityEmbeddings.from_arrays("b", [0], np.ones((1, 5)), np.ones((1, 3)))
    with pytest.raises(ValueError, match="embedding sizes differ.*'a': 4, 'b': 5"):
        I.merge_identities([a, b], 0.5, 0.5)
    with pytest.raises(ValueError, match=r"emb_b must be \[1, D\]"):
        I.IdentityEmbeddings.from_arrays("a", [0], np.ones((1, 4)), np.ones((2, 3)))


def test_semi_identify_groups_variants_and_flips():
    refs = ["/d/AFW/AFW_134212_1_0.jpg", "/d/AFW/AFW_134212_1_12.jpg", "/d/AFW_Flip/AFW_134212_1_3.jpg",
            "/d/AFW/AFW_134212_2_0.jpg", "/d/LFPW/LFPW_image_test_0001_0.jpg",
            "/d/LFPW_Flip/LFPW_image_test_0001_7.jpg",
            "/d/HELEN/HELEN_100032540_1_17.jpg"]
    labels, keys = I.semi_identify_labels(refs)
    assert keys == ["AFW_134212_1", "AFW_134212_2", "HELEN_100032540_1", "LFPW_image_test_0001"]
    assert labels.tolist() == [0, 0, 0, 1, 3, 3, 2]


def test_kill_and_resume_gives_the_same_result(data, tmp_path):
    full = run(data, tmp_path / "full")

    class Killed(Exception):
        pass

    def kill_after_two(k):
        if k == 1:
            raise Killed

    with pytest.raises(Killed):
        run(data, tmp_path / "r", on_unit=kill_after_two)
    assert len([f for f in os.listdir(tmp_path / "r" / "embeddings" / "A") if f.endswith(".parquet")]) == 2
    with pytest.raises(OutputError, match="already holds a run; set resume"):
        run(data, tmp_path / "r")
    done = []
    resumed = run(data, tmp_path / "r", resume=True, on_unit=done.append)
    assert done == [2, 3, 0, 1, 2, 3]  # A: units 2..3 left (24 images / 7); B: all four
    for k in ("identities_after", "merges_per_dataset_pair", "ground_truth"):
        assert resumed[k] == full[k]
    assert open(tmp_path / "r" / "identity_map.csv").read() == open(tmp_path / "full" / "identity_map.csv").read()
    assert open(tmp_path / "r" / "merges.csv").read() == open(tmp_path / "full" / "merges.csv").read()
    with pytest.raises(ValueError, match="configuration changed.*chunk_size"):
        run(data, tmp_path / "r", resume=True, chunk_size=5)


def test_bad_input_errors_before_work(data, tmp_path):
    na, nb = nets()
    ok = {"A": str(data / "A")}

    def job(datasets=ok, **kw):
        return I.run_identities(I.IdentitiesConfig(datasets, na, nb, str(tmp_path / "o"), **kw))

    # errors name the configuration fields (the command line's name its flags: test_cli)
    with pytest.raises(ConfigError, match="threshold_a and threshold_b, or calibrate"):
        job(threshold_a=0.5)
    with pytest.raises(ConfigError, match="not both"):
        job(threshold_a=0.5, threshold_b=0.5, calibrate="x.bin")
    with pytest.raises(ConfigError, match=r"threshold_b must be a cosine similarity in \[-1, 1\]"):
        job(threshold_a=0.5, threshold_b=1.5)
    with pytest.raises(DataError, match=r"datasets\['B'\]: dataset not found"):
        job({**ok, "B": str(tmp_path / "nope")}, threshold_a=0.5, threshold_b=0.5)
    with pytest.raises(ConfigError, match=r"datasets\['300w_lp'\]: the name '300w_lp' is reserved for semi_identify"):
        job({"300w_lp": str(data / "A")}, threshold_a=0.5, threshold_b=0.5, semi_identify=str(data / "W"))
    # Algorithm-1 shards from a dataset that is not given
    write_alg1_shards(tmp_path / "lm", [("vgg", RecordIOFaces(str(data / "B" / "train.rec")))])
    with pytest.raises(ValueError, match="source 'vgg'.*matches no datasets name"):
        job(threshold_a=0.5, threshold_b=0.5, landmarks=str(tmp_path / "lm"))
    (tmp_path / "lm" / "config.json").write_text("{}")  # a pyface label landmarks run without summary.json
    with pytest.raises(ValueError, match="landmarks: .*unfinished pyface label landmarks run"):
        job(threshold_a=0.5, threshold_b=0.5, landmarks=[str(tmp_path / "lm")])
    with pytest.raises(ValueError, match="no Parquet shards"):
        job(threshold_a=0.5, threshold_b=0.5, landmarks=str(tmp_path))
    assert not os.path.exists(tmp_path / "o")  # nothing started


def test_cli_dataset_args():
    from pyface.cli.label import parse_dataset_args

    with pytest.raises(UsageError, match="expected NAME=SPEC"):
        parse_dataset_args(["vggface2"])
    with pytest.raises(UsageError, match="given twice"):
        parse_dataset_args(["a=x", "a=y"])
    with pytest.raises(UsageError, match="--dataset b: dataset not found: /no/such/folder"):
        parse_dataset_args(["b=/no/such/folder"])
    assert parse_dataset_args(["b={type: X}"]) == {"b": "{type: X}"}  # a mapping is checked when it opens


def test_cli_defaults_are_the_jobs():
    """The command line spells out the job's defaults (importing the job would import torch)."""
    from pyface.cli import parse_args

    _, args = parse_args(["label", "identities", "--dataset", "a=x", "--net-a", "a", "--net-b", "b", "--out", "o"])
    d = I.IdentitiesConfig({}, None, None, "o")
    assert (args.chunk_size, args.face_crop_area, args.batch_size, args.semi_labels) == \
        (d.chunk_size, d.face_crop_area, d.batch_size, d.semi_labels)


def test_checkpoint_without_fr_head(tmp_path):
    from pyface.models import build_model

    m = build_model("resnet18-fld-hpe")
    torch.save({"model": m.state_dict(), "model_config": m.config.to_dict()}, tmp_path / "model.pt")
    with pytest.raises(ValueError, match="--net-a: .*model.pt has no face-recognition head"):
        I.FRNet(str(tmp_path / "model.pt"), "--net-a", device="cpu")
    with pytest.raises(FileNotFoundError, match="--net-b: checkpoint not found"):
        I.FRNet(str(tmp_path / "none.pt"), "--net-b", device="cpu")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="--net-a: cannot read checkpoint"):
        I.FRNet(str(tmp_path / "junk.pt"), "--net-a", device="cpu")


def test_checkpoint_net_embeds(tmp_path):
    """A real pyface checkpoint: flip-sum embeddings, unit norm, mirror-invariant."""
    from pyface.models import build_model

    m = build_model("iresnet-tiny-multi")
    torch.save({"model": m.state_dict(), "model_config": m.config.to_dict()}, tmp_path / "model.pt")
    net = I.FRNet(str(tmp_path / "model.pt"), "--net-a", device="cpu")
    x = torch.randint(0, 256, (3, 3, 80, 80), dtype=torch.uint8)
    e = net.embed(x)
    assert e.shape == (3, 32) and net.dim == 32
    torch.testing.assert_close(e.norm(dim=1), torch.ones(3))
    torch.testing.assert_close(net.embed(x.flip(3)), e, atol=1e-5, rtol=1e-5)
    # the FR branch alone gives the full model's embedding
    xs = torch.nn.functional.interpolate((x.float() - 127.5) / 128, size=(64, 64), mode="bilinear",
                                         align_corners=False, antialias=True)
    ref = m.eval()(torch.cat([xs, xs.flip(3)]))["embedding"]
    torch.testing.assert_close(e, torch.nn.functional.normalize(ref[:3] + ref[3:], dim=1), atol=1e-5, rtol=1e-5)


def test_unreadable_images_are_counted(data, tmp_path):
    import shutil

    shutil.copytree(data / "A", tmp_path / "A")
    victim = sorted((tmp_path / "A" / "000002").iterdir())[0]
    victim.write_bytes(b"not a jpeg")
    na, nb = nets()
    s = I.run_identities(I.IdentitiesConfig({"A": str(tmp_path / "A"), "B": str(data / "B" / "train.rec")}, na, nb,
                                            str(tmp_path / "o"), threshold_a=0.8, threshold_b=0.8, progress=False,
                                            batch_size=4))
    assert s["datasets"]["A"]["bad"] == 1 and s["datasets"]["A"]["embedded"] == 23
    assert "cannot decode" in s["datasets"]["A"]["bad_examples"][0]
    assert s["identities_after"] == 12


def test_calibration_pairs(data, tmp_path):
    imgs, same = [], []
    for p in range(10):
        imgs += [person_image(p, 0), person_image(p, 1)]
        same.append(True)
        imgs += [person_image(p, 2), person_image((p + 1) % 10, 2)]
        same.append(False)
    s = run(data, tmp_path / "o", threshold_a=None, threshold_b=None,
            calibration_pairs=(torch.stack(imgs), np.array(same)))
    cal = s["thresholds"]["calibration"]
    assert cal["a"]["accuracy"] == 1.0 and cal["b"]["accuracy"] == 1.0
    assert s["ground_truth"]["precision"] == 1.0 and s["ground_truth"]["recall"] == 1.0


def test_bounded_memory_per_identity_not_per_image(tmp_path):
    """The shards hold one row per identity per unit; nothing per image survives."""

    class Many(torch.utils.data.Dataset):
        def __len__(self):
            return 6000

        def __getitem__(self, i):
            img = torch.full((3, 8, 8), (i // 500) * 12, dtype=torch.uint8)
            return {"image": img, "identity": torch.tensor(i // 500), "landmarks": torch.full((68, 2), np.nan)}

    na = I.FRNet(PooledNet(), "a", input_size=8, device="cpu")
    nb = I.FRNet(PooledNet(16), "b", input_size=8, device="cpu")
    g = I.embed_identities("m", Many(), na, nb, str(tmp_path / "e"), batch_size=500, chunk_size=2000,
                           progress=False)
    assert len(g) == 12 and g.counts.tolist() == [500] * 12 and g.images == 6000
    rows = sum(pq.read_metadata(str(tmp_path / "e" / f)).num_rows for f in os.listdir(tmp_path / "e")
               if f.endswith(".parquet"))
    assert rows == 12  # 3 units x 4 identities each: identities x D on disk, not images


def test_cli(data, tmp_path, capsys):
    """``pyface label identities`` with pyface checkpoints (untrained: the mechanics only)."""
    from pyface.cli import main
    from pyface.models import build_model

    for name, preset in (("a", "iresnet-tiny-multi"), ("b", "iresnet-tiny-multi"), ("fld", "resnet18-fld-hpe")):
        torch.manual_seed(len(name))
        m = build_model(preset)
        torch.save({"model": m.state_dict(), "model_config": m.config.to_dict()}, tmp_path / f"{name}.pt")
    write_alg1_shards(tmp_path / "lm", [("A", ImageFolderFaces(str(data / "A")))])
    argv = ["label", "identities", "--dataset", f"A={data / 'A'}", "--dataset", f"B={data / 'B' / 'train.rec'}",
            "--net-a", str(tmp_path / "a.pt"), "--net-b", str(tmp_path / "b.pt"), "--threshold-a", "0.9",
            "--threshold-b", "0.9", "--landmarks", str(tmp_path / "lm"), "--out", str(tmp_path / "o"),
            "--workers", "0", "--no-progress", "--device", "cpu"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "identities: 16 before" in out and "manifest: 24 rows of 24" in out
    for f in ("summary.json", "identity_map.csv", "merges.csv", "manifest.parquet"):
        assert (tmp_path / "o" / f).exists()
    assert main(argv) == 2 and "--resume" in capsys.readouterr().err
    bad = [{str(tmp_path / "b.pt"): str(tmp_path / "fld.pt"), str(tmp_path / "o"): str(tmp_path / "o2")}.get(a, a)
           for a in argv]
    assert main(bad) == 2
    err = capsys.readouterr().err
    assert "--net-b" in err and "no face-recognition head" in err
    assert err.startswith("pyface label identities: error: --net-b: ") and err.count("\n") == 1  # one line
    # the job's errors name the flags the user typed, not the configuration's fields
    strict = [{"0.9": "1.5"}.get(x, x) for x in bad]
    assert main(strict) == 2
    assert "pyface label identities: error: --threshold-a must be a cosine similarity" in capsys.readouterr().err
    assert main(["label", "identities", "--dataset", f"300w_lp={data / 'A'}", "--semi-identify", str(data / "W"),
                 "--net-a", str(tmp_path / "a.pt"), "--net-b", str(tmp_path / "b.pt"), "--threshold-a", "0.9",
                 "--threshold-b", "0.9", "--out", str(tmp_path / "o3"), "--device", "cpu"]) == 2
    assert "--dataset 300w_lp: the name '300w_lp' is reserved for --semi-identify" in capsys.readouterr().err


def test_calibration_from_a_verification_bin(data, tmp_path):
    """--calibrate PAIRS.bin (insightface format, read by pyface.data.verification_bin)."""
    from pyface.data.verification_bin import write_bin

    imgs, same = [], []
    for p in range(8):
        imgs += [person_image(p, 0, salt=5), person_image(p, 1, salt=5)]
        same.append(True)
        imgs += [person_image(p, 2, salt=5), person_image((p + 3) % 8, 2, salt=5)]
        same.append(False)
    write_bin(str(tmp_path / "pairs.bin"), [x.permute(1, 2, 0).numpy() for x in imgs], same, ext=".png")
    s = run(data, tmp_path / "o", threshold_a=None, threshold_b=None, calibrate=str(tmp_path / "pairs.bin"))
    cal = s["thresholds"]["calibration"]
    assert cal["a"]["pairs"] == 16 and cal["a"]["accuracy"] == 1.0 and cal["b"]["accuracy"] == 1.0
    assert s["ground_truth"]["precision"] == 1.0 and s["ground_truth"]["recall"] == 1.0
    (tmp_path / "junk.bin").write_bytes(b"junk")
    with pytest.raises(DataError, match="calibrate: .*junk.bin"):
        run(data, tmp_path / "o2", threshold_a=None, threshold_b=None, calibrate=str(tmp_path / "junk.bin"))


@pytest.mark.filterwarnings("ignore:.*join several identities of one dataset")  # an untrained net chains
def test_demo_identities_runs_on_synthetic_faces(tmp_path):
    """The demo's Algorithm-2 step (mechanics; an untrained net: no quality asserted)."""
    from pyface.demos.label import demo_identities
    from pyface.models import build_model

    torch.manual_seed(0)
    m = build_model("iresnet-tiny-multi")
    s = demo_identities(str(tmp_path / "o"), m, m, identities=5, shared=2, images=2, pairs=8, image_size=32,
                          device="cpu")
    assert s["identities_before"] == 10 and 1 <= s["identities_after"] <= 10
    assert set(s["ground_truth"]) >= {"precision", "recall"} and s["ground_truth"]["true_pairs"] == 2
    assert s["thresholds"]["calibration"]["a"]["pairs"] == 8
