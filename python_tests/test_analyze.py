"""pyface.analyze (issue 19): the shipped detector on real photos, pose from landmarks,
the checkpoint path (a tiny randomly initialised net: shapes, absent heads, unit
embeddings -- not accuracy), bad inputs, video tracking/smoothing, and the commands."""
from __future__ import annotations

import json
import os

import cv2
import numpy as np
import pytest
import torch

from pyface import cli, runtime
from pyface.analyze import FaceAnalyzer, pose_from_landmarks
from pyface.analyze.job import analyze_paths
from pyface.analyze.video import FaceTracker, OneEuroFilter, SmoothingParams, analyze_video
from pyface.geometry import IBUG68_FLIP
from pyface.models import build_model


def _astronaut():
    d = pytest.importorskip("skimage.data", reason="scikit-image (test extra) provides the photo")
    return d.astronaut()


def _hopper():
    cbook = pytest.importorskip("matplotlib.cbook", reason="matplotlib provides grace_hopper.jpg")
    from PIL import Image

    with Image.open(cbook.get_sample_data("grace_hopper.jpg")) as im:
        return np.asarray(im.convert("RGB"))


@pytest.fixture(scope="module")
def blaze():
    return FaceAnalyzer(detector="blazeface", mesh=False)


def _check_keypoints(face):
    names = dict(zip(face.keypoint_names, face.keypoints))
    x0, y0, x1, y1 = face.box
    for n in ("right_eye", "left_eye", "nose_tip", "mouth_centre"):
        x, y = names[n]
        assert x0 <= x <= x1 and y0 <= y <= y1, (n, names[n], face.box)
    # anatomical order on an upright frontal face: the subject's right eye is on the
    # picture's left, eyes above the nose tip above the mouth
    assert names["right_eye"][0] < names["nose_tip"][0] < names["left_eye"][0]
    assert max(names["right_eye"][1], names["left_eye"][1]) < names["nose_tip"][1] < names["mouth_centre"][1]


# (photo, where its one face is: box centre and side in pixels, from looking at it)
PHOTOS = {"astronaut": (_astronaut, (225, 128), 95), "grace_hopper": (_hopper, (266, 244), 200)}


@pytest.mark.parametrize("name", sorted(PHOTOS))
def test_blazeface_finds_the_face_of_a_photo(blaze, name):
    load, centre, side = PHOTOS[name]
    img = load()
    faces = blaze.get(img)
    assert len(faces) == 1, [f.box for f in faces]
    f = faces[0]
    assert f.score > 0.8
    c = (f.box[:2] + f.box[2:]) / 2
    assert np.abs(c - centre).max() < 0.15 * side, (c, centre)
    assert 0.75 * side < f.box[2] - f.box[0] < 1.3 * side
    _check_keypoints(f)
    assert f.landmarks is None and f.pose is None and f.embedding is None  # no net, no mesh: absent, not zeros
    d = f.to_dict()
    assert "landmarks" not in d and "pose" not in d and "embedding" not in d


@pytest.mark.parametrize("name", sorted(PHOTOS))
def test_mirrored_photo_mirrors_the_detection(blaze, name):
    img = PHOTOS[name][0]()
    w = img.shape[1]
    f = blaze.get(img)[0]
    m = blaze.get(np.ascontiguousarray(img[:, ::-1]))[0]
    side = f.box[2] - f.box[0]
    expect = np.array([w - f.box[2], f.box[1], w - f.box[0], f.box[3]])
    assert np.abs(m.box - expect).max() < 0.05 * side
    kf, km = dict(zip(f.keypoint_names, f.keypoints)), dict(zip(m.keypoint_names, m.keypoints))
    for a, b in (("right_eye", "left_eye"), ("left_eye", "right_eye"), ("nose_tip", "nose_tip")):
        # x: a left/right swap missed would be off by the eye distance (~0.35 side); y: the
        # detector's key points are coarse (astronaut: 0.1 side between a photo and its mirror)
        assert abs((w - kf[a][0]) - km[b][0]) < 0.06 * side and abs(kf[a][1] - km[b][1]) < 0.12 * side
    _check_keypoints(m)


def _synthetic(n_ids=100, per=4, seed=3, size=112):
    from pyface.data import SyntheticFaces

    ds = SyntheticFaces(n_ids, per, image_size=size, seed=seed)
    s = [ds[i] for i in range(len(ds))]
    return (np.stack([np.asarray(x["landmarks"], np.float64) for x in s]),
            np.stack([np.asarray(x["pose"], np.float64) for x in s]))


def test_pose_from_landmarks_on_synthetic_faces():
    # Measured on these 400 faces (yaw U(-65,65), pitch U(-30,30), roll U(-25,25)):
    # MAE yaw 1.98, pitch 1.92, roll 0.64 degrees (the identities' shapes differ from
    # the mean face); asserted with ~50 % margin.
    L, P = _synthetic()
    est = pose_from_landmarks(L)
    err = np.abs(est - P)
    assert np.isfinite(est).all()
    mae = err.mean(0)
    assert mae[0] < 3.0 and mae[1] < 3.0 and mae[2] < 1.0, mae
    assert np.percentile(err, 95, axis=0).max() < 8.0
    # a shuffled point order is not a face: the fit must be far off (the test can fail)
    rng = np.random.default_rng(0)
    bad = pose_from_landmarks(L[:50, rng.permutation(68)])
    assert np.nanmean(np.abs(bad - P[:50])) > 5 * mae.mean()


def test_mirrored_landmarks_negate_yaw_and_roll():
    L, P = _synthetic(20, 2)
    est = pose_from_landmarks(L)
    Lm = L.copy()
    Lm[..., 0] = 112 - Lm[..., 0]  # continuous pixels: x -> W - x
    Lm = Lm[:, list(IBUG68_FLIP)]  # the subject's left points become its right ones
    em = pose_from_landmarks(Lm)
    np.testing.assert_allclose(em, est * [-1, 1, -1], atol=1e-3)
    assert np.abs(est[:, 0]).max() > 20  # the faces do turn: negation is a real check


def test_pose_from_landmarks_bad_input():
    with pytest.raises(ValueError, match="landmarks must be"):
        pose_from_landmarks(np.zeros((5, 2)))
    L = np.full((68, 2), np.nan)
    assert np.isnan(pose_from_landmarks(L)).all()


# ----------------------------------------------------------------------- checkpoint path
def _checkpoint(tmp_path, tasks=None, seed=0):
    torch.manual_seed(seed)
    kw = {} if tasks is None else {"tasks": tasks}
    m = build_model("iresnet-tiny-multi", **kw).eval()
    name = "-".join(tasks) if tasks else "mtl"
    return runtime.save_model(m, tmp_path / f"{name}.pt")


def test_checkpoint_path_gives_every_head(tmp_path):
    img = _astronaut()
    fa = FaceAnalyzer(_checkpoint(tmp_path), detector="blazeface", mesh=False, device="cpu")
    assert fa.outputs == {"landmarks", "pose", "embedding"}
    faces = fa.get(img)
    assert len(faces) == 1
    f = faces[0]
    assert f.landmarks.shape == (68, 2) and np.isfinite(f.landmarks).all()
    assert f.pose.shape == (3,) and np.isfinite(f.pose).all()
    assert f.embedding.shape == (32,) and abs(np.linalg.norm(f.embedding) - 1) < 1e-5
    assert f.aligned.shape == (64, 64, 3) and f.aligned.dtype == np.uint8
    assert f.sources == {"landmarks": "net", "pose": "net"}
    d = f.to_dict()
    assert len(d["landmarks"]) == 68 and set(d["pose"]) == {"yaw", "pitch", "roll"} and len(d["embedding"]) == 32
    # the flip-sum embedding of a mirrored photo: same crop mirrored -> close (detector jitter only)
    g = fa.get(np.ascontiguousarray(img[:, ::-1]))[0]
    assert float(np.dot(f.embedding, g.embedding)) > 0.8


@pytest.mark.parametrize("tasks,absent", [(("fr",), ("landmarks", "pose")), (("fld", "hpe"), ("embedding",))])
def test_checkpoint_without_a_head_gives_no_such_key(tmp_path, tasks, absent):
    fa = FaceAnalyzer(_checkpoint(tmp_path, tasks), detector="blazeface", mesh=False, device="cpu")
    f = fa.get(_astronaut())[0]
    d = f.to_dict()
    for k in absent:
        assert k not in d and getattr(f, k) is None
    for k in {"landmarks", "pose", "embedding"} - set(absent):
        assert k in d


# ----------------------------------------------------------------------- mediapipe path
def test_mediapipe_landmarks_on_a_photo():
    from pyface.label import mediapipe as M

    why = M.why_unavailable()
    if why is not None and os.environ.get("PYFACE_REQUIRE_MEDIAPIPE") == "1":
        pytest.fail(f"the label extra is installed but MediaPipe is unusable: {why}")
    if why is not None:
        pytest.skip(f"MediaPipe face mesh unavailable ({why}); pip install 'pyface-mtl[label]'")
    img = _astronaut()
    fa = FaceAnalyzer(detector="blazeface", mesh=True)
    f = fa.get(img)[0]
    lm = f.landmarks
    x0, y0, x1, y1 = f.box
    side = x1 - x0
    assert ((lm >= [x0 - 0.3 * side, y0 - 0.3 * side]) & (lm <= [x1 + 0.3 * side, y1 + 0.3 * side])).all()
    assert lm[0, 0] < lm[8, 0] < lm[16, 0]  # jaw: picture-left to chin to picture-right
    assert lm[36:48, 1].mean() < lm[30, 1] < lm[48:68, 1].mean()  # eyes above nose tip above mouth
    m = fa.get(np.ascontiguousarray(img[:, ::-1]))[0]
    assert abs(m.pose[0] + f.pose[0]) < 5 and abs(m.pose[2] + f.pose[2]) < 5


# ----------------------------------------------------------------------- bad inputs
def _photo_folder(tmp_path):
    from PIL import Image

    img = _astronaut()
    d = tmp_path / "photos"
    d.mkdir()
    bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(d / "a_color.jpg"), bgr)
    cv2.imwrite(str(d / "b_gray.png"), cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(d / "c_rgba.png"), cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA))
    cv2.imwrite(str(d / "d_16bit.png"), bgr.astype(np.uint16) * 257)
    # stored turned 90 degrees counter-clockwise, EXIF orientation 6 (display: turn clockwise)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.ascontiguousarray(np.rot90(img, 1))).save(d / "e_exif.jpg", exif=exif, quality=95)
    (d / "f_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    cv2.imwrite(str(d / "g_noface.png"), np.full((200, 300, 3), 127, np.uint8))
    return d


def test_bad_inputs_one_line_each_and_the_rest_processed(tmp_path, blaze, capsys):
    d = _photo_folder(tmp_path)
    results, errors = analyze_paths(blaze, [d])
    assert len(errors) == 1 and "f_broken.jpg" in errors[0] and "\n" not in errors[0]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "f_broken.jpg" in err[0]
    by = {os.path.basename(r["file"]): r for r in results}
    assert sorted(by) == ["a_color.jpg", "b_gray.png", "c_rgba.png", "d_16bit.png", "e_exif.jpg", "g_noface.png"]
    assert by["g_noface.png"]["faces"] == []
    ref = by["a_color.jpg"]["faces"][0].box
    for k in ("b_gray.png", "c_rgba.png", "d_16bit.png", "e_exif.jpg"):
        faces = by[k]["faces"]
        assert len(faces) == 1, k
        assert np.abs(faces[0].box - ref).max() < 8, (k, faces[0].box, ref)  # EXIF: upright coordinates
    assert by["e_exif.jpg"]["size"] == [512, 512]


# ----------------------------------------------------------------------- video
def test_one_euro_filter_smooths_rest_and_follows_motion():
    rng = np.random.default_rng(0)
    f = OneEuroFilter(SmoothingParams(min_cutoff=1.0, beta=0.0))
    raw = 10 + rng.normal(0, 1, 300)
    out = np.array([f(x, i / 30) for i, x in enumerate(raw)])
    assert out[50:].std() < raw[50:].std() / 3
    assert np.array_equal(np.array([OneEuroFilter(SmoothingParams(enabled=False))(x, 0) for x in raw]), raw)
    # a jump of 100: a high beta follows within a few frames, beta 0 lags
    slow, fast = OneEuroFilter(SmoothingParams(1.0, 0.0)), OneEuroFilter(SmoothingParams(1.0, 1.0))
    for i in range(30):
        slow(0.0, i / 30), fast(0.0, i / 30)
    for i in range(30, 35):
        s, q = slow(100.0, i / 30), fast(100.0, i / 30)
    assert q > 90 > s
    with pytest.raises(ValueError, match="min_cutoff"):
        SmoothingParams(min_cutoff=0)


def test_tracker_keeps_ids_across_frames():
    t = FaceTracker(iou=0.3, max_missed=1)
    a, b = np.array([0, 0, 10, 10.0]), np.array([50, 50, 60, 60.0])
    ids = [tr.id for tr in t.update(np.stack([a, b]), 0)]
    ids2 = [tr.id for tr in t.update(np.stack([b + 1, a + 1]), 1)]  # order swapped, moved a little
    assert ids2 == ids[::-1]
    t.update(np.zeros((0, 4)), 2)
    t.update(np.zeros((0, 4)), 3)
    assert t.update(a[None], 4)[0].id not in ids  # gone for more than max_missed: a new track


def _synthetic_video(path, frames=12):
    img = cv2.cvtColor(_astronaut(), cv2.COLOR_RGB2BGR)[:384, :384]
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (384, 384))
    if not w.isOpened():
        pytest.skip("OpenCV has no MP4 encoder here")
    for i in range(frames):
        M = np.float32([[1, 0, 2 * i], [0, 1, i]])  # the face drifts right and down
        w.write(cv2.warpAffine(img, M, (384, 384), borderMode=cv2.BORDER_REFLECT))
    w.release()
    return path


def test_video_tracks_and_writes_outputs(tmp_path, blaze):
    import pyarrow.parquet as pq

    src = _synthetic_video(tmp_path / "clip.mp4")
    r = analyze_video(blaze, src, out_video=tmp_path / "out" / "clip.annotated.mp4",
                      out_table=tmp_path / "clip.parquet")
    assert r["frames"] == 12 and r["faces"] == 12 and r["tracks"] == 1
    t = pq.read_table(tmp_path / "clip.parquet").to_pydict()
    assert t["frame"] == list(range(12)) and set(t["track"]) == {0}
    x0 = np.array([b[0] for b in t["box"]])
    assert x0[-1] - x0[0] > 8  # follows the drift (smoothing lags, does not freeze)
    cap = cv2.VideoCapture(str(tmp_path / "out" / "clip.annotated.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    cap.release()
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]  # no temp left
    with pytest.raises(Exception, match="clip_missing.mp4"):
        analyze_video(blaze, tmp_path / "clip_missing.mp4")


# ----------------------------------------------------------------------- commands
def test_cli_analyze_one_photo_and_a_folder(tmp_path, capsys):
    d = _photo_folder(tmp_path)
    assert cli.main(["analyze", str(d / "a_color.jpg"), "--detector", "blazeface"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["faces"]) == 1 and doc["size"] == [512, 512]
    out = tmp_path / "faces.parquet"
    assert cli.main(["analyze", str(d), "--detector", "blazeface", "--out", str(out),
                     "--draw", str(tmp_path / "drawn")]) == 0
    cap = capsys.readouterr()
    from pyface.label import mediapipe as M

    note = [line for line in cap.err.splitlines() if "no landmark model" in line]
    errs = [line for line in cap.err.strip().splitlines() if line not in note]
    assert len(errs) == 1 and "f_broken.jpg" in errs[0]
    # without a checkpoint the landmarks come from MediaPipe's mesh; without it the user is told once
    assert len(note) == (0 if M.available() else 1) and (not note or "pyface-mtl[label]" in note[0])
    import pyarrow.parquet as pq

    t = pq.read_table(out)
    assert t.num_rows == 5
    meta = json.loads(t.schema.metadata[b"pyface.analyze"])
    assert len(meta["errors"]) == 1 and any("g_noface" in f for f in meta["files_without_faces"])
    assert (tmp_path / "drawn" / "a_color.png").is_file()


@pytest.mark.parametrize("argv,needle", [
    (["analyze", "{missing}"], "PATH"),
    (["analyze", "{photo}", "--detector", "blazefac"], "blazeface"),
    (["analyze", "{folder}"], "--out"),
    (["analyze", "{photo}", "--checkpoint", "{missing}"], "--checkpoint"),
    (["compare", "{photo}", "{photo}", "--checkpoint", "{fld}", "--threshold", "0.3"], "recognition"),
    (["compare", "{photo}", "{photo}", "--checkpoint", "{fr}", "--threshold", "2"], "--threshold"),
    (["compare", "{photo}", "{noface}", "--checkpoint", "{fr}", "--threshold", "0.3"], "g_noface.png"),
    (["compare", "{photo}", "{photo}", "--checkpoint", "{fr}", "--threshold", "{report}:cfp_fp"], "lfw, agedb_30"),
    (["compare", "{photo}", "{photo}", "--checkpoint", "{fr}", "--threshold", "{report}"], "several"),
    (["compare", "{photo}", "{photo}", "--checkpoint", "{fr}", "--threshold", "{missing}.json"], "--threshold"),
])
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, needle):
    d = _photo_folder(tmp_path)
    ck = {"fld": _checkpoint(tmp_path, ("fld", "hpe")), "fr": _checkpoint(tmp_path, ("fr",))}
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"verification": {"lfw": {"threshold": 0.3}, "agedb_30": {"threshold": 0.2}}}))
    sub = {"missing": str(tmp_path / "nope.jpg"), "photo": str(d / "a_color.jpg"), "folder": str(d),
           "noface": str(d / "g_noface.png"), "report": str(report), **{k: str(v) for k, v in ck.items()}}
    capsys.readouterr()
    assert cli.main([a.format(**sub) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err


def test_cli_compare(tmp_path, capsys):
    d = _photo_folder(tmp_path)
    ck = str(_checkpoint(tmp_path, ("fr",)))
    assert cli.main(["compare", str(d / "a_color.jpg"), str(d / "e_exif.jpg"), "--checkpoint", ck,
                     "--threshold", "0.5", "--detector", "blazeface", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["similarity"] > 0.9 and r["same"] is True  # the same photo (EXIF-rotated copy)
    # the threshold pyface eval verification chose, from its report
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"verification": {"lfw": {"threshold": 0.999999, "mean": 0.99}}}))
    assert cli.main(["compare", str(d / "a_color.jpg"), str(d / "e_exif.jpg"), "--checkpoint", ck,
                     "--threshold", f"{report}:lfw", "--detector", "blazeface", "--json"]) == 0
    cap = capsys.readouterr()
    r2 = json.loads(cap.out)
    assert r2["threshold"] == 0.999999 and r2["same"] is (r["similarity"] >= 0.999999)
    assert "from lfw in" in cap.err


def test_onnx_backend_gives_the_torch_faces(tmp_path, capsys):
    pytest.importorskip("onnxruntime", reason="the onnx extra runs exported models")
    pytest.importorskip("onnx", reason="the onnx extra exports models")
    from pyface.analyze.onnx_backend import OnnxBackend
    from pyface.export.exporter import export_model

    ck = _checkpoint(tmp_path)
    onnx_path = tmp_path / "m.onnx"
    export_model(ck, onnx_path, dynamic_batch=True, check=False)
    img = _astronaut()
    ft = FaceAnalyzer(ck, detector="blazeface", mesh=False, device="cpu").get(img)[0]
    fo = FaceAnalyzer(backend=OnnxBackend(onnx_path), detector="blazeface", mesh=False,
                      crop_area=FaceAnalyzer(ck, detector="blazeface", mesh=False).crop_area).get(img)[0]
    np.testing.assert_allclose(fo.landmarks, ft.landmarks, atol=1e-2)
    np.testing.assert_allclose(fo.pose, ft.pose, atol=1e-3)
    assert float(np.dot(fo.embedding, ft.embedding)) > 0.9999
    capsys.readouterr()
    assert cli.main(["analyze", str(tmp_path / "nope.png"), "--checkpoint", str(onnx_path)]) == 2


def test_cli_analyze_a_video(tmp_path, capsys):
    import pyarrow.parquet as pq

    src = _synthetic_video(tmp_path / "clip.mp4", frames=6)
    out = tmp_path / "clip.parquet"
    assert cli.main(["analyze", str(src), "--detector", "blazeface", "--out", str(out), "--draw", str(tmp_path / "d"),
                     "--beta", "0.5"]) == 0
    assert "6 frames" in capsys.readouterr().out
    assert pq.read_table(out).num_rows == 6 and (tmp_path / "d" / "clip.annotated.mp4").is_file()
    assert cli.main(["analyze", str(src), "--out", str(out), "--beta", "-1"]) == 2
