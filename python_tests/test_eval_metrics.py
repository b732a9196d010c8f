"""nme_by_yaw and pose_mae against literal re-implementations of the reference scripts
(3DDFA benchmark_aflw2000.py calc_nme + ana; HopeNet test loop with the +-99 filter)."""
import numpy as np
import pytest

from pyface.eval import nme_by_yaw, pose_mae


def _3ddfa(pts_fit, pts_gt, yaws):
    """calc_nme + ana of 3DDFA, arrays as [N, 2, 68] like its .npy files."""
    nme_list = []
    for i in range(len(pts_gt)):
        fit, gt = pts_fit[i], pts_gt[i]
        minx, maxx = np.min(gt[0, :]), np.max(gt[0, :])
        miny, maxy = np.min(gt[1, :]), np.max(gt[1, :])
        llength = np.sqrt((maxx - minx) * (maxy - miny))
        dis = fit - gt[:2, :]
        dis = np.sqrt(np.sum(np.power(dis, 2), 0))
        nme_list.append(np.mean(dis) / llength)
    nme_list = np.array(nme_list, dtype=np.float32)
    a = np.abs(yaws)
    n1 = nme_list[a <= 30]
    n2 = nme_list[np.bitwise_and(a > 30, a <= 60)]
    n3 = nme_list[a > 60]
    means = [np.mean(n1) * 100, np.mean(n2) * 100, np.mean(n3) * 100]
    return means, np.mean(means), (len(n1), len(n2), len(n3))


def test_nme_by_yaw_matches_3ddfa():
    rng = np.random.default_rng(0)
    n = 57
    gt = rng.uniform(20, 100, (n, 68, 2))
    pred = gt + rng.normal(0, 2, (n, 68, 2))
    yaw = rng.uniform(-95, 95, n)
    yaw[:3] = [30.0, -60.0, 60.0000001]  # bin edges
    means, mean, counts = _3ddfa(pred.transpose(0, 2, 1), gt.transpose(0, 2, 1), yaw)
    r = nme_by_yaw(pred, gt, yaw)
    np.testing.assert_allclose([v * 100 for v in r["bins"].values()], means, rtol=1e-6)
    assert r["mean"] * 100 == pytest.approx(mean, rel=1e-6)
    assert tuple(r["counts"].values()) == counts and sum(counts) == n and r["dropped"] == 0
    # a row with unknown gt is dropped, not counted
    gt2 = gt.copy()
    gt2[0] = np.nan
    assert nme_by_yaw(pred, gt2, yaw)["dropped"] == 1
    with pytest.raises(ValueError, match="yaw_deg"):
        nme_by_yaw(pred, gt, yaw[:-1])


def test_pose_mae_hopenet_loop_with_limit():
    rng = np.random.default_rng(1)
    gt = rng.uniform(-120, 120, (200, 3))
    pred = gt + rng.normal(0, 5, (200, 3))
    # HopeNet-style loop over the filtered list (|angle| <= 99 for all three)
    err, total = np.zeros(3), 0
    for p, g in zip(pred, gt):
        if np.all(np.abs(g) <= 99):
            err += np.abs(p - g)
            total += 1
    r = pose_mae(pred, gt)
    assert r["kept"] == total and r["dropped"] == 200 - total
    np.testing.assert_allclose([r["yaw"], r["pitch"], r["roll"]], err / total)
    assert r["mean"] == pytest.approx((err / total).mean()) and r["mae"] == r["mean"]
    assert pose_mae(pred, gt, limit_deg=None)["kept"] == 200
    assert pose_mae([[1, 2, 3]], [[0, 0, 0]])["mean"] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="pred and gt"):
        pose_mae(pred[:5], gt)
