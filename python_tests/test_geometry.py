"""pyface.geometry: the Euler convention, projection, mean shape and 300W-LP helpers."""
import math

import numpy as np
import pytest
import torch

from pyface import geometry as G


def _rand_pose(n, lim=89.0, dtype=torch.float64):
    return (torch.rand(n, 3, dtype=dtype) * 2 - 1) * lim


def _Rx(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _Ry(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _Rz(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def test_rotation_orthonormal_det1():
    R = G.euler_to_matrix(_rand_pose(257, 180.0))
    eye = torch.eye(3, dtype=torch.float64).expand_as(R)
    torch.testing.assert_close(R @ R.transpose(-1, -2), eye, atol=1e-12, rtol=0)
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(257, dtype=torch.float64), atol=1e-12, rtol=0)


def test_matches_elementary_composition():
    pose = _rand_pose(20, 170.0)
    R = G.euler_to_matrix(pose).numpy()
    for p, r in zip(pose.tolist(), R):
        yaw, pitch, roll = map(math.radians, p)
        np.testing.assert_allclose(r, _Rx(-pitch) @ _Ry(yaw) @ _Rz(roll), atol=1e-12)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-9), (torch.float32, 2e-3)])
def test_euler_round_trip(dtype, tol):
    pose = _rand_pose(500, 89.0, dtype)
    back = G.matrix_to_euler(G.euler_to_matrix(pose))
    torch.testing.assert_close(back, pose, atol=tol, rtol=0)
    # and matrix -> euler -> matrix
    R = G.euler_to_matrix(pose)
    torch.testing.assert_close(G.euler_to_matrix(G.matrix_to_euler(R)), R, atol=tol, rtol=0)


def test_batch_shapes_and_gradients():
    pose = _rand_pose(6).reshape(2, 3, 3).requires_grad_()
    assert G.euler_to_matrix(pose).shape == (2, 3, 3, 3)
    assert G.matrix_to_euler(G.euler_to_matrix(pose)).shape == (2, 3, 3)
    torch.autograd.gradcheck(G.euler_to_matrix, (pose,))
    with pytest.raises(ValueError, match="pose"):
        G.euler_to_matrix(torch.zeros(4, 2))


def test_pose_para_conversion():
    para = np.array([0.1, -0.4, 0.25, 1.0, 2.0, 3.0, 0.001])  # pitch, yaw, roll (rad), t3d, f
    pose = G.pose_from_pose_para(para)
    torch.testing.assert_close(pose, torch.tensor([math.degrees(-0.4), math.degrees(0.1), math.degrees(0.25)],
                                                  dtype=torch.float64))
    torch.testing.assert_close(G.pose_para_from_pose(pose), torch.tensor(para[:3]))


def _ddfa_project(shape_img, para):
    """300W-LP's own generation formula, written independently of pyface.geometry: 3DDFA's
    RotationMatrix(phi, gamma, theta) in model axes (y up, z to the viewer), f*R@X + t,
    then y flipped to image rows."""
    phi, gamma, theta = para[:3]
    Rx = np.array([[1, 0, 0], [0, math.cos(phi), math.sin(phi)], [0, -math.sin(phi), math.cos(phi)]])
    Ry = np.array([[math.cos(gamma), 0, -math.sin(gamma)], [0, 1, 0], [math.sin(gamma), 0, math.cos(gamma)]])
    Rz = np.array([[math.cos(theta), math.sin(theta), 0], [-math.sin(theta), math.cos(theta), 0], [0, 0, 1]])
    model = shape_img * np.array([1.0, -1.0, -1.0])
    v = (Rx @ Ry @ Rz @ model.T).T
    return np.stack([v[:, 0], -v[:, 1]], axis=1)


def test_convention_matches_300wlp_generation():
    S = G.default_mean_shape(torch.float64)
    for _ in range(10):
        para = np.random.uniform(-1.2, 1.2, size=3)
        got = G.project_shape(S, G.pose_from_pose_para(para)[None])[0].numpy()
        np.testing.assert_allclose(got, _ddfa_project(S.numpy(), para), atol=1e-10)


def test_convention_matches_hopenet_draw_axis():
    """HopeNet's draw_axis (the usual overlay for 300W-LP/AFLW2000 labels) draws the head's
    x and y axes at rows 0-1 of R's first two columns, the nose axis at minus the third."""
    yaw, pitch, roll = 35.0, -20.0, 12.0
    R = G.euler_to_matrix(torch.tensor([yaw, pitch, roll], dtype=torch.float64)).numpy()
    p, y, r = math.radians(pitch), -math.radians(yaw), math.radians(roll)
    x_axis = [math.cos(y) * math.cos(r), math.cos(p) * math.sin(r) + math.cos(r) * math.sin(p) * math.sin(y)]
    y_axis = [-math.cos(y) * math.sin(r), math.cos(p) * math.cos(r) - math.sin(p) * math.sin(y) * math.sin(r)]
    z_axis = [math.sin(y), -math.cos(y) * math.sin(p)]
    np.testing.assert_allclose(R[:2, 0], x_axis, atol=1e-12)
    np.testing.assert_allclose(R[:2, 1], y_axis, atol=1e-12)
    np.testing.assert_allclose(-R[:2, 2], z_axis, atol=1e-12)


def test_default_mean_shape_is_a_frontal_face_in_image_axes():
    S = G.default_mean_shape(torch.float64)
    assert S.shape == (68, 3) and S.dtype == torch.float64
    torch.testing.assert_close(S.mean(0), torch.zeros(3, dtype=torch.float64), atol=1e-4, rtol=0)
    # mirror symmetric under the iBUG flip
    flipped = S[list(G.IBUG68_FLIP)] * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    torch.testing.assert_close(flipped, S, atol=1e-4, rtol=0)
    # frontal projection keeps x, y
    P = G.project_shape(S, torch.zeros(1, 3, dtype=torch.float64))[0]
    torch.testing.assert_close(P, S[:, :2])
    y = P[:, 1]
    brows, eyes, nose_tip, mouth, chin = y[17:27].mean(), y[36:48].mean(), y[30], y[48:68].mean(), y[8]
    assert brows < eyes < nose_tip < mouth < chin  # y down
    assert P[36, 0] < P[39, 0] < P[42, 0] < P[45, 0]  # subject's right eye on the image left
    assert P[0, 0] < P[8, 0] < P[16, 0] and P[48, 0] < P[54, 0]
    assert int(S[:, 2].argmin()) == 30  # nose tip nearest the camera (z into the screen)


def test_positive_yaw_turns_nose_to_image_left():
    """300W-LP's yaw sign: yaw > 0 moves the nose to the image left and shows more of the
    face's image-right side (the subject turns to their right); pitch > 0 lifts the nose;
    roll > 0 turns the face clockwise on screen."""
    S = G.default_mean_shape(torch.float64)
    P = G.project_shape(S, torch.tensor([[30.0, 0, 0], [0, 20.0, 0], [0, 0, 15.0]], dtype=torch.float64))
    yawed, pitched, rolled = P[0], P[1], P[2]
    assert yawed[30, 0] < yawed[:, 0].mean() - 1.0
    width_left = yawed[8, 0] - yawed[0, 0]  # image-left half of the jaw
    width_right = yawed[16, 0] - yawed[8, 0]
    assert width_right > width_left
    assert pitched[30, 1] < S[30, 1] - 1.0  # nose up
    eyes_l, eyes_r = rolled[36:42].mean(0), rolled[42:48].mean(0)
    assert eyes_r[1] > eyes_l[1]  # image-right eye lower: clockwise


def test_project_shape_batched_and_per_sample_shapes():
    S = G.default_mean_shape()
    pose = torch.randn(5, 3) * 20
    out = G.project_shape(S, pose)
    assert out.shape == (5, 68, 2)
    out2 = G.project_shape(S.expand(5, 68, 3), pose)
    torch.testing.assert_close(out, out2)


def test_normalize_shape():
    x = torch.randn(4, 68, 2, dtype=torch.float64)
    n = G.normalize_shape(3.0 * x + 7.0)
    torch.testing.assert_close(n, G.normalize_shape(x))
    torch.testing.assert_close(n.flatten(1).norm(dim=1), torch.ones(4, dtype=torch.float64))


def test_mean_shape_from_300wlp_synthetic(tmp_path):
    scipy_io = pytest.importorskip("scipy.io")
    rng = np.random.default_rng(0)
    base = G.default_mean_shape(torch.float64).numpy()
    truth = base + rng.normal(scale=0.3, size=base.shape)
    truth -= truth.mean(0)
    for sub in ("AFW", "HELEN", "AFW_Flip"):
        (tmp_path / sub).mkdir()
        (tmp_path / "landmarks" / sub).mkdir(parents=True)
        for i in range(12):
            para = np.zeros(7)
            para[:3] = rng.uniform(-0.3, 0.3, size=3)
            if i == 0:
                para[1] = 1.2  # large yaw: must be excluded
            s, t = rng.uniform(5, 15), rng.uniform(100, 300, size=2)
            pts = s * _ddfa_project(truth, para) + t
            name = f"{sub}_{i}_0"
            scipy_io.savemat(tmp_path / sub / f"{name}.mat", {"Pose_Para": para[None], "pt2d": pts.T * 0})
            scipy_io.savemat(tmp_path / "landmarks" / sub / f"{name}_pts.mat",
                             {"pts_3d": pts, "pts_2d": pts})
    got = G.mean_shape_from_300wlp(tmp_path, max_angle_deg=20.0, iters=50).numpy()
    want = truth * (np.linalg.norm(base) / np.linalg.norm(truth))
    np.testing.assert_allclose(got, want, atol=1e-3)
    with pytest.raises(ValueError, match="root"):
        G.mean_shape_from_300wlp(tmp_path / "missing")
