"""IJB-C protocol against insightface eval_ijbc.py's loops (image2template_feature,
verification) re-implemented literally here, on small random data."""
import numpy as np
import pytest
from sklearn.preprocessing import normalize

from pyface.eval import tar_at_far
from pyface.eval.ijbc import pair_scores, pair_scores_reference, pose_protocol, template_features


def _image2template_feature(img_feats, templates, medias):
    unique_templates = np.unique(templates)
    template_feats = np.zeros((len(unique_templates), img_feats.shape[1]))
    for k, uqt in enumerate(unique_templates):
        (ind_t,) = np.where(templates == uqt)
        face_feats, face_medias = img_feats[ind_t], medias[ind_t]
        unique_medias, counts = np.unique(face_medias, return_counts=True)
        media_feats = []
        for u, ct in zip(unique_medias, counts):
            (ind_m,) = np.where(face_medias == u)
            media_feats += [face_feats[ind_m]] if ct == 1 else [np.mean(face_feats[ind_m], axis=0, keepdims=True)]
        template_feats[k] = np.sum(np.array(media_feats), axis=0)
    return normalize(template_feats), unique_templates


def _data(seed, n_img=300, n_t=40, d=16):
    rng = np.random.default_rng(seed)
    templates = rng.integers(0, n_t, n_img) * 7 + 3  # sparse ids
    medias = rng.integers(0, 5, n_img) + 100 * (templates % 3)
    feats = rng.normal(size=(n_img, d)) * rng.uniform(0.2, 3, (n_img, 1))
    return rng, feats, templates, medias


def test_template_features_matches_insightface():
    _, feats, templates, medias = _data(0)
    ids, tf = template_features(feats, templates, medias)
    ref, ref_ids = _image2template_feature(feats, templates, medias)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_allclose(tf, ref, atol=1e-6)


@pytest.mark.parametrize("n_pairs,chunk_mb", [(5000, 64.0), (5000, 0.0), (30, 0.0)])  # GEMM, GEMM blocks, gathers
def test_pair_scores_matches_insightface(n_pairs, chunk_mb):
    rng, feats, templates, medias = _data(1)
    ids, tf = template_features(feats, templates, medias)
    t1, t2 = rng.choice(ids, n_pairs), rng.choice(ids, n_pairs)
    got = pair_scores(ids, tf, t1, t2, chunk_mb=chunk_mb)
    ref = pair_scores_reference(ids, tf.astype(np.float64), t1, t2, batch=7)
    np.testing.assert_allclose(got, ref, atol=1e-6)
    perm = rng.permutation(len(ids))  # any id order is accepted
    np.testing.assert_allclose(pair_scores(ids[perm], tf[perm], t1, t2), got, atol=1e-6)


def test_pair_scores_unknown_template():
    _, feats, templates, medias = _data(2)
    ids, tf = template_features(feats, templates, medias)
    with pytest.raises(ValueError, match=r"t2 names 1 pair\(s\).*template 4 at pair 1"):
        pair_scores(ids, tf, ids[:2], np.array([ids[0], 4]))


def test_pose_protocol_brute_force(monkeypatch):
    """Each case's pairs, probe templates (images of that |yaw| range only) and scores
    against insightface's per-image loop. The TAR is compared on the protocol's own
    scores: its float32 scores differ from the float64 loop's by ~1e-7, and a TAR read off
    the ROC at a FAR moves by a pair when two near-tied scores swap places."""
    import pyface.eval.ijbc as ijbc

    seen = []

    def recording(*args, **kw):
        seen.append(pair_scores(*args, **kw))
        return seen[-1]

    monkeypatch.setattr(ijbc, "pair_scores", recording)
    rng, feats, templates, medias = _data(3, n_img=600, n_t=60)
    yaw = rng.uniform(-95, 95, len(feats))
    ids = np.unique(templates)
    t1, t2 = rng.choice(ids, 4000), rng.choice(ids, 4000)
    labels = (rng.random(4000) < 0.3).astype(int)
    fars = (1e-2, 1e-1)
    res = pose_protocol(feats, templates, medias, yaw, t1, t2, labels, fars=fars)
    assert len(seen) == 4
    g, gids = _image2template_feature(feats, templates, medias)
    gmap = {t: g[k] for k, t in enumerate(gids)}
    cases = {"all": (0, np.inf), "soft": (0, 30), "medium": (30, 60), "hard": (60, np.inf)}
    for (case, (lo, hi)), got in zip(cases.items(), seen):
        m = (np.abs(yaw) >= lo) & (np.abs(yaw) < hi)
        p, pids = _image2template_feature(feats[m], templates[m], medias[m])
        pmap = {t: p[k] for k, t in enumerate(pids)}
        keep = np.array([b in pmap for b in t2])
        scores = np.array([gmap[a] @ pmap[b] for a, b in zip(t1[keep], t2[keep])])
        r = res[case]
        assert r["pairs"] == keep.sum() and r["genuine"] == labels[keep].sum()
        np.testing.assert_allclose(got, scores, atol=1e-6)
        assert r["tar"] == pytest.approx(tar_at_far(got, labels[keep], fars), abs=1e-12)
        ref = tar_at_far(scores, labels[keep], fars)  # the loop's own TAR: within a pair or two
        assert all(abs(r["tar"][f] - ref[f]) <= 2 / r["genuine"] + 1e-12 for f in fars)
    assert res["all"]["pairs"] == 4000 and res["hard"]["pairs"] < res["soft"]["pairs"] + res["medium"]["pairs"]
