"""Readers on real files written in each on-disk format from SyntheticFaces samples:
300W-LP folders (.jpg + .mat), insightface RecordIO (.rec/.idx), image folders, the
Parquet manifest; corrupt/missing files and bad labels raise or are skipped and counted."""
import os
import struct

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from pyface.data import (
    W300LP,
    DataError,
    ImageFolderFaces,
    ManifestDataset,
    RecordIOFaces,
    RecordIOReader,
    RecordIOWriter,
    SyntheticFaces,
    check_sample,
    read_manifest,
    write_300wlp,
    write_image_folder,
    write_manifest,
    write_manifest_dataset,
    write_recordio,
)
from pyface.data import transforms as T
from pyface.data.recordio import MAGIC, pack_record, unpack_record
from pyface.geometry import pose_para_from_pose


@pytest.fixture(scope="module")
def samples():
    ds = SyntheticFaces(3, 2, image_size=64, seed=4)
    return [ds[i] for i in range(len(ds))]


def _close_images(a, b, tol=12.0):
    """JPEG round trip: mean absolute difference in grey levels."""
    assert a.shape == b.shape
    assert (a.float() - b.float()).abs().mean() < tol


# ----------------------------------------------------------------------------- 300W-LP
def test_300wlp_round_trip_and_flip(tmp_path, samples):
    names = write_300wlp(tmp_path, samples, subset="AFW")
    assert sorted(os.listdir(tmp_path)) == ["AFW", "AFW_Flip", "landmarks"]
    for kind in ("pt2d", "pts_3d"):
        ds = W300LP(tmp_path, subsets=["AFW"], landmarks=kind)
        assert len(ds) == 2 * len(samples)
        for i, s in enumerate(samples):
            got = ds[i]
            check_sample(got)
            assert got["source"] == "300w_lp" and int(got["identity"]) == -1
            _close_images(got["image"], s["image"])
            torch.testing.assert_close(got["landmarks"], s["landmarks"], atol=1e-4, rtol=0)
            torch.testing.assert_close(got["pose"], s["pose"], atol=1e-4, rtol=0)
            flipped = ds[len(samples) + i]  # AFW_Flip/<same name>
            ref = T.hflip(s)
            _close_images(flipped["image"], ref["image"])
            torch.testing.assert_close(flipped["landmarks"], ref["landmarks"], atol=1e-4, rtol=0)
            torch.testing.assert_close(flipped["pose"], s["pose"] * torch.tensor([-1.0, 1.0, -1.0]), atol=1e-4, rtol=0)
    assert names[0].startswith("AFW_")
    assert len(W300LP(tmp_path, subsets=["AFW"], flip=False)) == len(samples)


def test_300wlp_conventions_of_the_files(tmp_path, samples):
    """Pose_Para holds (pitch, yaw, roll) radians; pt2d is 2x68 MATLAB 1-based pixels."""
    import scipy.io

    write_300wlp(tmp_path, samples[:1], subset="HELEN", write_flip=False)
    name = os.listdir(tmp_path / "HELEN")[0][:-4]
    mat = scipy.io.loadmat(tmp_path / "HELEN" / (name + ".mat"))
    yaw, pitch, roll = samples[0]["pose"].double().tolist()
    np.testing.assert_allclose(mat["Pose_Para"][0, :3], np.radians([pitch, yaw, roll]), atol=1e-6)
    np.testing.assert_allclose(mat["Pose_Para"][0, :3], pose_para_from_pose(samples[0]["pose"].double()).numpy(),
                               atol=1e-6)
    assert mat["pt2d"].shape == (2, 68)
    np.testing.assert_allclose(mat["pt2d"].T, samples[0]["landmarks"].double().numpy() + 0.5, atol=1e-4)


def test_300wlp_flip_labels_from_file(tmp_path, samples):
    import scipy.io

    write_300wlp(tmp_path, samples[:1], subset="IBUG")
    name = os.listdir(tmp_path / "IBUG")[0][:-4]
    p = tmp_path / "IBUG_Flip" / (name + ".mat")
    mat = {k: v for k, v in scipy.io.loadmat(p).items() if not k.startswith("__")}
    mat["Pose_Para"][0, 0] += 0.01  # a re-fitted pitch, as in the real _Flip files
    scipy.io.savemat(p, mat)
    derive = W300LP(tmp_path, subsets=["IBUG"])[1]
    from_file = W300LP(tmp_path, subsets=["IBUG"], flip_labels="file")[1]
    assert from_file["pose"][1] == pytest.approx(float(derive["pose"][1]) + np.degrees(0.01), abs=1e-4)
    torch.testing.assert_close(from_file["landmarks"], derive["landmarks"], atol=1e-4, rtol=0)


def test_300wlp_missing_and_corrupt(tmp_path, samples):
    write_300wlp(tmp_path, samples[:3], subset="LFPW", write_flip=False)
    names = sorted(f[:-4] for f in os.listdir(tmp_path / "LFPW") if f.endswith(".jpg"))
    (tmp_path / "LFPW" / (names[0] + ".jpg")).write_bytes(b"not a jpeg")
    os.remove(tmp_path / "LFPW" / (names[1] + ".mat"))
    ds = W300LP(tmp_path, subsets=["LFPW"], flip=False)
    with pytest.raises(DataError, match="cannot decode"):
        ds[0]
    with pytest.raises(DataError, match="label file missing"):
        ds[1]
    ds[2]
    skip = W300LP(tmp_path, subsets=["LFPW"], flip=False, on_error="skip")
    with pytest.warns(RuntimeWarning, match="skipping"):
        got = skip[0]
    torch.testing.assert_close(got["landmarks"], samples[2]["landmarks"], atol=1e-4, rtol=0)
    assert sorted(skip.skipped) == [0, 1] and "decode" in skip.skipped[0]
    with pytest.raises(FileNotFoundError, match="LFPW_Flip"):
        W300LP(tmp_path, subsets=["LFPW"])
    with pytest.raises(ValueError, match="landmarks"):
        W300LP(tmp_path, subsets=["LFPW"], flip=False, landmarks="pt3d")


def test_300wlp_out_of_range_labels(tmp_path, samples):
    import scipy.io

    write_300wlp(tmp_path, samples[:1], subset="AFW", write_flip=False)
    name = os.listdir(tmp_path / "AFW")[0][:-4]
    p = tmp_path / "AFW" / (name + ".mat")
    mat = {k: v for k, v in scipy.io.loadmat(p).items() if not k.startswith("__")}
    mat["Pose_Para"][0, 1] = 4.0  # yaw of 229 degrees
    scipy.io.savemat(p, mat)
    with pytest.raises(DataError, match="exceeds"):
        W300LP(tmp_path, subsets=["AFW"], flip=False)[0]
    mat["Pose_Para"][0, 1] = 0.0
    mat["pt2d"][0, 5] = np.nan
    scipy.io.savemat(p, mat)
    with pytest.raises(DataError, match="partly NaN"):  # the corrupted points are pt2d ("2d")
        W300LP(tmp_path, subsets=["AFW"], flip=False, landmarks="2d")[0]


# ----------------------------------------------------------------------------- RecordIO
def test_recordio_round_trip(tmp_path, samples):
    rec = tmp_path / "train.rec"
    n = write_recordio(rec, samples)
    assert n == len(samples) and (tmp_path / "train.idx").exists()
    ds = RecordIOFaces(rec)
    assert len(ds) == len(samples) and ds.num_identities == 3
    by_id = sorted(samples, key=lambda s: int(s["identity"]))
    for i, s in enumerate(by_id):
        got = ds[i]
        check_sample(got)
        assert int(got["identity"]) == int(s["identity"])
        assert torch.isnan(got["landmarks"]).all() and torch.isnan(got["pose"]).all()
        _close_images(got["image"], s["image"])
    # header record and identity records as insightface writes them
    header, _ = unpack_record(ds.reader.read_idx(0))
    assert header.flag == 2 and header.label.tolist() == [len(samples) + 1, len(samples) + 4]
    ident, _ = unpack_record(ds.reader.read_idx(len(samples) + 2))
    assert ident.label.tolist() == [3, 5]  # identity 1 holds image keys 3, 4


def test_recordio_continuation_records(tmp_path):
    """Payloads containing the magic word at aligned offsets are split into cflag 1/2/3
    parts (dmlc format) and joined back on reading."""
    magic = struct.pack("<I", MAGIC)
    payloads = [b"abcd" + magic + b"efgh" + magic + b"xyz", magic + b"12345678", b"ab" + magic + b"cd",
                b"", b"plain"]
    with RecordIOWriter(str(tmp_path / "x.rec"), str(tmp_path / "x.idx")) as w:
        for k, p in enumerate(payloads):
            w.write(p, key=k)
    raw = (tmp_path / "x.rec").read_bytes()
    assert len(raw) % 4 == 0
    first = struct.unpack_from("<II", raw, 0)
    assert first[0] == MAGIC and first[1] >> 29 == 1 and first[1] & ((1 << 29) - 1) == 4
    r = RecordIOReader(tmp_path / "x.rec")
    for k, p in enumerate(payloads):
        assert r.read_idx(k) == p


def test_recordio_pack_unpack():
    h, payload = unpack_record(pack_record(5.0, b"img", id=9))
    assert h.flag == 0 and h.label == 5.0 and h.id == 9 and payload == b"img"
    h, payload = unpack_record(pack_record([1.0, 2.0, 3.0], b"x"))
    assert h.flag == 3 and h.label.tolist() == [1.0, 2.0, 3.0] and payload == b"x"


def test_recordio_corrupt(tmp_path, samples):
    rec = tmp_path / "train.rec"
    write_recordio(rec, samples)
    idx = dict(line.split("\t") for line in (tmp_path / "train.idx").read_text().split("\n") if line)
    data = bytearray(rec.read_bytes())
    off = int(idx["2"])
    data[off:off + 4] = b"\0\0\0\0"  # destroy record 2's magic
    data[int(idx["3"]) + 8 + 24:int(idx["3"]) + 8 + 40] = b"\0" * 16  # corrupt record 3's JPEG header
    rec.write_bytes(bytes(data))
    ds = RecordIOFaces(rec)
    with pytest.raises(DataError, match="bad magic"):
        ds[1]
    with pytest.raises(DataError, match="decode"):
        ds[2]
    skip = RecordIOFaces(rec, on_error="skip")
    with pytest.warns(RuntimeWarning):
        [skip[i] for i in range(len(skip))]
    assert sorted(skip.skipped) == [1, 2]
    (tmp_path / "noindex.rec").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="noindex.idx"):
        RecordIOFaces(tmp_path / "noindex.rec")
    with pytest.raises(FileNotFoundError, match="nothing.rec"):
        RecordIOFaces(tmp_path / "nothing.rec")


# ----------------------------------------------------------------------------- image folders
def test_image_folder(tmp_path, samples):
    paths = write_image_folder(tmp_path, samples)
    ds = ImageFolderFaces(tmp_path)
    assert len(ds) == len(samples) and ds.classes == ["000000", "000001", "000002"]
    for i, rel in enumerate(paths):
        j = ds.files.index(rel)
        got = ds[j]
        assert int(got["identity"]) == int(samples[i]["identity"])
        _close_images(got["image"], samples[i]["image"])
    (tmp_path / "000001" / "0000.jpg").write_bytes(b"")
    with pytest.raises(DataError, match="000001"):
        ImageFolderFaces(tmp_path)[2]


# ----------------------------------------------------------------------------- manifest
def test_manifest_round_trip_files_and_recordio(tmp_path, samples):
    rel = write_image_folder(tmp_path / "imgs", samples[:3])
    write_recordio(tmp_path / "ms1m" / "train.rec", samples[3:])
    refs = [os.path.join("imgs", p) for p in rel] + [f"ms1m/train.rec#{k}" for k in (1, 2, 3)]
    by_id = sorted(samples[3:], key=lambda s: int(s["identity"]))
    ordered = samples[:3] + by_id
    lm = torch.stack([s["landmarks"] for s in ordered]).numpy()
    pose = torch.stack([s["pose"] for s in ordered]).numpy()
    ident = [int(s["identity"]) + 100 for s in ordered]
    src = ["vggface2"] * 3 + ["ms1mv3"] * 3
    write_manifest(tmp_path / "pltd.parquet", refs, ident, lm, pose, src)

    table = pq.read_table(tmp_path / "pltd.parquet")  # plain pyarrow can open it
    assert table.column_names == ["image", "identity", "landmarks", "pose", "source"]
    assert b"pyface.manifest" in table.schema.metadata
    read_manifest(tmp_path / "pltd.parquet")

    ds = ManifestDataset(tmp_path / "pltd.parquet")
    assert len(ds) == 6
    for i, s in enumerate(ordered):
        got = ds[i]
        check_sample(got)
        assert got["source"] == src[i] and int(got["identity"]) == ident[i]
        torch.testing.assert_close(got["landmarks"], s["landmarks"])
        torch.testing.assert_close(got["pose"], s["pose"])
        _close_images(got["image"], s["image"])


def test_manifest_dataset_writer(tmp_path, samples):
    path = write_manifest_dataset(tmp_path, samples)
    ds = ManifestDataset(path)
    assert len(ds) == len(samples)
    for i, s in enumerate(samples):
        got = ds[i]
        assert got["source"] == "synthetic" and int(got["identity"]) == int(s["identity"])
        torch.testing.assert_close(got["landmarks"], s["landmarks"])
        _close_images(got["image"], s["image"])


def test_manifest_validation(tmp_path, samples):
    lm = np.zeros((2, 68, 2), np.float32)
    with pytest.raises(ValueError, match="landmarks"):
        write_manifest(tmp_path / "m.parquet", ["a", "b"], [0, 1], lm[:1], np.zeros((2, 3)), "x")
    with pytest.raises(ValueError, match="identity"):
        write_manifest(tmp_path / "m.parquet", ["a", "b"], [0, -3], lm, np.zeros((2, 3)), "x")
    import pyarrow as pa

    pq.write_table(pa.table({"image": ["a"], "identity": [0]}), tmp_path / "bad.parquet")
    with pytest.raises(ValueError, match="landmarks"):
        ManifestDataset(tmp_path / "bad.parquet")
    # missing image file and out-of-range landmarks
    write_image_folder(tmp_path / "i", samples[:1])
    lm = np.stack([samples[0]["landmarks"].numpy(), samples[0]["landmarks"].numpy() + 1000])
    write_manifest(tmp_path / "m.parquet", ["i/000000/0000.jpg", "i/000000/0000.jpg"], [0, 0], lm,
                   np.zeros((2, 3)), "x")
    write_manifest(tmp_path / "m2.parquet", ["i/000000/missing.jpg"], [0], lm[:1], np.zeros((1, 3)), "x")
    ds = ManifestDataset(tmp_path / "m.parquet")
    ds[0]
    with pytest.raises(DataError, match="outside"):
        ds[1]
    with pytest.raises(DataError, match="missing.jpg"):
        ManifestDataset(tmp_path / "m2.parquet")[0]
