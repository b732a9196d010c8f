"""Readers of the evaluation formats on real bytes: insightface .bin (incl. a
Python-2 pickle), IJB-C meta + loose crops, and the 5-point similarity alignment."""
import os
import pickle
import struct

import cv2
import numpy as np
import pytest

from pyface.data import IJBC, DataError, VerificationBin, read_bin, write_bin, write_ijbc
from pyface.data.align import ARCFACE_TEMPLATE, align_face, five_points_from_68, umeyama


def _similarity(rng):
    a, s = rng.uniform(-0.6, 0.6), rng.uniform(0.5, 2.0)
    return np.array([[s * np.cos(a), -s * np.sin(a), rng.uniform(-20, 20)],
                     [s * np.sin(a), s * np.cos(a), rng.uniform(-20, 20)]])


def test_umeyama_exact_and_least_squares():
    rng = np.random.default_rng(0)
    for _ in range(5):
        m = _similarity(rng)
        src = rng.uniform(0, 100, (5, 2))
        dst = src @ m[:, :2].T + m[:, 2]
        np.testing.assert_allclose(umeyama(src, dst), m, atol=1e-9)
    # noisy: the residual is a minimum over (scale, angle, tx, ty)
    src = rng.uniform(0, 100, (5, 2))
    dst = src @ m[:, :2].T + m[:, 2] + rng.normal(0, 3, (5, 2))
    est = umeyama(src, dst)

    def cost(p):
        s, a, tx, ty = p
        r = np.array([[s * np.cos(a), -s * np.sin(a)], [s * np.sin(a), s * np.cos(a)]])
        return ((src @ r.T + [tx, ty] - dst) ** 2).sum()

    s0 = np.hypot(est[0, 0], est[1, 0])
    p0 = np.array([s0, np.arctan2(est[1, 0], est[0, 0]), est[0, 2], est[1, 2]])
    c0 = cost(p0)
    for k in range(4):
        for h in (1e-4, -1e-4):
            p = p0.copy()
            p[k] += h
            assert cost(p) >= c0 - 1e-9
    # cv2's LMedS estimate on exact points agrees
    src = rng.uniform(0, 100, (5, 2))
    dst = src @ m[:, :2].T + m[:, 2]
    cvm, _ = cv2.estimateAffinePartial2D(src, dst, method=cv2.LMEDS)
    np.testing.assert_allclose(umeyama(src, dst), cvm, atol=1e-4)  # cv2 refines in float32


def test_align_face_puts_points_on_template():
    rng = np.random.default_rng(1)
    crop = rng.integers(0, 255, (112, 112, 3), dtype=np.uint8)
    crop = cv2.GaussianBlur(crop, (9, 9), 3)
    m = _similarity(rng)
    m[:, 2] += 60
    big = cv2.warpAffine(crop, m, (260, 260))
    pts = ARCFACE_TEMPLATE @ m[:, :2].T + m[:, 2]
    back = align_face(big, pts, 112)
    assert np.abs(back[20:90, 20:90].astype(float) - crop[20:90, 20:90]).mean() < 4
    lm = rng.uniform(0, 100, (68, 2))
    np.testing.assert_allclose(five_points_from_68(lm)[0], (lm[36] + lm[39]) / 2)


def _py2_pickle(bins, issame):
    """(list of str, list of bool) as Python 2's cPickle protocol 2 writes it."""
    out = [b"\x80\x02", b"]", b"("]
    for b in bins:
        out.append(b"T" + struct.pack("<I", len(b)) + b)
    out += [b"e", b"]", b"("] + [b"\x88" if v else b"\x89" for v in issame] + [b"e", b"\x86", b"."]
    return b"".join(out)


def test_bin_round_trip_and_py2(tmp_path):
    rng = np.random.default_rng(2)
    imgs = [rng.integers(0, 255, (20, 24, 3), dtype=np.uint8) for _ in range(6)]
    write_bin(str(tmp_path / "lfw.bin"), imgs, [True, False, True], ext=".png")
    ds = VerificationBin(str(tmp_path / "lfw.bin"))
    assert ds.name == "lfw" and ds.issame.tolist() == [True, False, True] and len(ds) == 6
    for k in range(6):
        np.testing.assert_array_equal(ds[k]["image"].permute(1, 2, 0).numpy(), imgs[k])  # RGB, lossless
    encoded = [cv2.imencode(".png", cv2.cvtColor(i, cv2.COLOR_RGB2BGR))[1].tobytes() for i in imgs[:4]]
    with pytest.raises(UnicodeDecodeError):
        pickle.loads(_py2_pickle(encoded, [True, False]))  # what a plain load does
    (tmp_path / "old.bin").write_bytes(_py2_pickle(encoded, [True, False]))
    bins, same = read_bin(str(tmp_path / "old.bin"))
    assert same.tolist() == [True, False] and bins == encoded


def test_bin_bad_files(tmp_path):
    (tmp_path / "junk.bin").write_bytes(b"\x00junk")
    with pytest.raises(DataError, match="junk.bin: not an insightface"):
        read_bin(str(tmp_path / "junk.bin"))
    (tmp_path / "d.bin").write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(DataError, match="d.bin: expected a pickled"):
        read_bin(str(tmp_path / "d.bin"))
    (tmp_path / "n.bin").write_bytes(pickle.dumps(([b"x"] * 3, [True])))
    with pytest.raises(DataError, match="3 images for 1 pairs"):
        read_bin(str(tmp_path / "n.bin"))
    (tmp_path / "evil.bin").write_bytes(pickle.dumps((os.getcwd, [True])))
    with pytest.raises(DataError, match="refusing"):
        read_bin(str(tmp_path / "evil.bin"))
    (tmp_path / "bad_img.bin").write_bytes(pickle.dumps(([b"notanimage"] * 2, [True])))
    with pytest.raises(DataError, match=r"bad_img.bin\[image 0\]: cannot decode"):
        VerificationBin(str(tmp_path / "bad_img.bin"))[0]
    with pytest.raises(FileNotFoundError):
        read_bin(str(tmp_path / "none.bin"))


def _ijbc(tmp_path, rng, n=6):
    imgs = [rng.integers(0, 255, (80, 90, 3), dtype=np.uint8) for _ in range(n)]
    pts = [ARCFACE_TEMPLATE * 0.6 + rng.uniform(0, 10, 2) for _ in range(n)]
    templates = [1, 1, 2, 2, 5, 5][:n]
    medias = [10, 11, 12, 12, 13, 14][:n]
    pairs = [(1, 2, 0), (1, 5, 1), (2, 5, 0)]
    write_ijbc(str(tmp_path), imgs, pts, templates, medias, pairs, faceness=np.linspace(0.5, 1, n))
    return imgs, pts


def test_ijbc_reader(tmp_path):
    rng = np.random.default_rng(3)
    imgs, pts = _ijbc(tmp_path, rng)
    meta = IJBC(str(tmp_path))
    assert len(meta) == 6 and meta.templates.tolist() == [1, 1, 2, 2, 5, 5]
    assert meta.t1.tolist() == [1, 1, 2] and meta.labels.tolist() == [False, True, False]
    np.testing.assert_allclose(meta.landmarks5, np.stack(pts), atol=1e-3)
    np.testing.assert_allclose(meta.faceness, np.linspace(0.5, 1, 6), atol=1e-6)
    faces = meta.faces(64)
    got = faces[2]["image"].permute(1, 2, 0).numpy()
    # same warp as insightface: the cv2-read (BGR) image warped, then converted to RGB
    bgr = cv2.imread(str(tmp_path / "loose_crop" / "3.jpg"))
    m = umeyama(meta.landmarks5[2], ARCFACE_TEMPLATE * 64 / 112)
    ref = cv2.cvtColor(cv2.warpAffine(bgr, m, (64, 64), borderValue=0.0), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(got, ref)


def test_ijbc_bad_input(tmp_path):
    rng = np.random.default_rng(4)
    with pytest.raises(FileNotFoundError, match="root not found"):
        IJBC(str(tmp_path / "none"))
    _ijbc(tmp_path, rng)
    meta_dir = tmp_path / "meta"
    pair = meta_dir / "ijbc_template_pair_label.txt"
    pair.write_text(pair.read_text() + "1 99 1\n")
    with pytest.raises(DataError, match=r"ijbc_template_pair_label.txt: 1 pair\(s\).*template 99 on line 4"):
        IJBC(str(tmp_path))
    pair.write_text("1 2 0\n")
    pts = meta_dir / "ijbc_name_5pts_score.txt"
    lines = pts.read_text().splitlines()
    pts.write_text("\n".join(lines[1:]) + "\n")
    with pytest.raises(DataError, match="image list differs"):
        IJBC(str(tmp_path))
    pts.write_text("\n".join(lines) + "\n")
    os.remove(tmp_path / "loose_crop" / "2.jpg")
    with pytest.raises(FileNotFoundError, match=r"2\.jpg: image missing \(1 of 6"):
        IJBC(str(tmp_path))
    (tmp_path / "loose_crop" / "2.jpg").write_bytes(b"broken")
    (tmp_path / "loose_crop" / "1.jpg").write_bytes(b"broken")
    with pytest.raises(DataError, match=r"1\.jpg: cannot decode"):
        IJBC(str(tmp_path)).faces()[0]
    os.remove(meta_dir / "ijbc_face_tid_mid.txt")
    with pytest.raises(FileNotFoundError, match="ijbc_face_tid_mid.txt"):
        IJBC(str(tmp_path))
