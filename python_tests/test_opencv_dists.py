"""One working ``cv2``: the distributions that ship it (pyface's opencv-python-headless;
with the label extra also MediaPipe's opencv-contrib-python), whose binary is in use,
and the OpenCV calls pyface and the analyzer make. In CI's label-extra environment
(PYFACE_REQUIRE_MEDIAPIPE=1, PYFACE_EXPECT_HEADLESS_CV2=1 after the documented fix)
MediaPipe must run on the same, headless cv2."""
import os

import numpy as np
import pytest

from pyface import opencv_dists as O


def test_exactly_one_distribution_owns_the_cv2_binary():
    import cv2

    dists = O.cv2_distributions()
    names = [d["name"] for d in dists]
    assert O.HEADLESS in names, names  # pyface's own dependency
    owner = O.cv2_binary_owner()
    assert owner is not None, dists  # the binary on disk is one distribution's, not a mix
    version = next(d["version"] for d in dists if d["name"] == owner)
    assert version.startswith(cv2.__version__), (version, cv2.__version__)
    for d in dists:  # two distributions sharing cv2/ must be the same release, or the files mix versions
        assert d["version"] == version, dists
    if os.environ.get("PYFACE_EXPECT_HEADLESS_CV2") == "1":
        assert owner == O.HEADLESS and O.fix_command() is None
        assert "QT:" not in cv2.getBuildInformation().split("GUI:")[1].split("Media I/O")[0]
    lines = O.report()
    assert any(line.startswith("import cv2: OK") for line in lines)


def test_the_opencv_calls_pyface_makes(tmp_path):
    import cv2

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", img)
    back = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    assert ok and back.shape == img.shape and np.abs(back.astype(int) - img).mean() < 60
    small = cv2.resize(img, (64, 48), interpolation=cv2.INTER_AREA)
    assert small.shape == (48, 64, 3)
    m = np.array([[1.0, 0.0, 5.0], [0.0, 1.0, -3.0]])
    warped = cv2.warpAffine(img, m, (128, 96))
    assert np.array_equal(warped[10:50, 20:60], img[13:53, 15:55])
    # pose from points (the analyzer's solvePnP against the mean 3D face)
    obj = rng.normal(0, 50, (68, 3))
    rvec, tvec = np.array([0.1, -0.2, 0.05]), np.array([0.0, 0.0, 600.0])
    k = np.array([[500.0, 0, 64], [0, 500.0, 48], [0, 0, 1]])
    pts, _ = cv2.projectPoints(obj, rvec, tvec, k, None)
    ok, r, t = cv2.solvePnP(obj, pts, k, None, flags=cv2.SOLVEPNP_ITERATIVE)
    assert ok and np.allclose(r.ravel(), rvec, atol=1e-4) and np.allclose(t.ravel(), tvec, atol=1e-2)
    # video out and back in (the analyzer's annotated MP4)
    path = str(tmp_path / "v.mp4")
    w = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), 10, (128, 96))
    assert w.isOpened()
    for i in range(5):
        w.write(np.full((96, 128, 3), 40 * i, np.uint8))
    w.release()
    cap = cv2.VideoCapture(path)
    frames = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames += 1
    cap.release()
    assert frames == 5


def test_mediapipe_runs_on_this_cv2():
    from pyface.label import mediapipe as M

    why = M.why_unavailable()
    if why is not None and os.environ.get("PYFACE_REQUIRE_MEDIAPIPE") == "1":
        pytest.fail(f"the label extra is installed but MediaPipe is unusable: {why}")
    if why is not None:
        pytest.skip(f"MediaPipe unavailable ({why}); pip install 'pyface-mtl[label]'")
    skimage_data = pytest.importorskip("skimage.data")
    import cv2
    import mediapipe as mp
    from mediapipe.python.solutions import drawing_utils

    img = skimage_data.astronaut()
    with mp.solutions.face_detection.FaceDetection(model_selection=1) as fd:
        res = fd.process(img)
    assert len(res.detections) == 1 and res.detections[0].score[0] > 0.5
    canvas = img.copy()
    drawing_utils.draw_detection(canvas, res.detections[0])  # MediaPipe's own cv2 calls
    assert not np.array_equal(canvas, img)
    assert cv2.imdecode(cv2.imencode(".png", canvas)[1], cv2.IMREAD_UNCHANGED).shape == img.shape


def test_fix_command_names_the_headless_release(monkeypatch):
    both = [{"name": "opencv-contrib-python", "version": "5.1.0.95", "binary": "x", "owns_binary": True},
            {"name": O.HEADLESS, "version": "5.1.0.95", "binary": "x", "owns_binary": False}]
    monkeypatch.setattr(O, "cv2_distributions", lambda: both)
    assert O.fix_command() == 'pip install --force-reinstall --no-deps "opencv-python-headless==5.1.0.95"'
    assert O.cv2_binary_owner() == "opencv-contrib-python"
    assert any("needs libGL" in line and O.fix_command() in line for line in O.report())
    both[0]["owns_binary"], both[1]["owns_binary"] = False, True
    assert O.fix_command() is None and O.cv2_binary_owner() == O.HEADLESS
    monkeypatch.setattr(O, "cv2_distributions", lambda: both[1:])
    assert O.fix_command() is None
