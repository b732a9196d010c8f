"""Verification protocols against re-implementations of the reference scripts'
arithmetic (insightface eval/verification.py and eval_ijbc.py, loops kept literal)."""
import numpy as np
import pytest
from sklearn.model_selection import KFold
from sklearn.preprocessing import normalize

from pyface.eval import best_threshold, tar_at_far, verification_accuracy
from pyface.eval import metrics as M


def _insightface_accuracy(emb1, emb2, issame, nfolds=10):
    """insightface calculate_roc / calculate_accuracy, per-threshold Python loop."""
    thresholds = np.arange(0, 4, 0.01)
    e1, e2 = normalize(emb1), normalize(emb2)
    dist = np.sum(np.square(np.subtract(e1, e2)), 1)
    accuracy = np.zeros(nfolds)
    for fold, (tr, te) in enumerate(KFold(n_splits=nfolds, shuffle=False).split(np.arange(len(issame)))):
        acc_train = np.zeros(len(thresholds))
        for i, t in enumerate(thresholds):
            pred = np.less(dist[tr], t)
            tp = np.sum(np.logical_and(pred, issame[tr]))
            tn = np.sum(np.logical_and(~pred, ~issame[tr]))
            acc_train[i] = float(tp + tn) / dist[tr].size
        best = thresholds[np.argmax(acc_train)]
        pred = np.less(dist[te], best)
        tp = np.sum(np.logical_and(pred, issame[te]))
        tn = np.sum(np.logical_and(~pred, ~issame[te]))
        accuracy[fold] = float(tp + tn) / dist[te].size
    return np.mean(accuracy), np.std(accuracy)


@pytest.mark.parametrize("n,d,noise,seed", [(60, 8, 0.8, 0), (123, 5, 1.5, 1), (200, 16, 0.4, 2)])
def test_verification_accuracy_matches_insightface_loop(n, d, noise, seed):
    rng = np.random.default_rng(seed)
    issame = rng.random(n) < 0.5
    e1 = rng.normal(size=(n, d))
    e2 = np.where(issame[:, None], e1, rng.normal(size=(n, d))) + noise * rng.normal(size=(n, d))
    e2 *= rng.uniform(0.5, 3, (n, 1))  # normalisation must not matter
    ref_mean, ref_std = _insightface_accuracy(e1, e2, issame)
    got = verification_accuracy(e1, e2, issame)
    assert got["mean"] == pytest.approx(ref_mean, abs=1e-12)
    assert got["std"] == pytest.approx(ref_std, abs=1e-12)
    assert 0.0 < got["mean"] < 1.0 and -1.0 <= got["threshold"] <= 1.0


def test_verification_accuracy_hand_case():
    # 10 pairs, one per fold: every fold's training set has genuine pairs at cos 0.8725 and
    # impostors at cos 0.0 -> perfectly separable -> accuracy 1, std 0
    same = np.array([1, 0] * 5, dtype=bool)
    e1 = np.tile([[1.0, 0.0]], (10, 1))
    c = 0.8725  # genuine squared distance 2 - 2c = 0.255, between grid points
    e2 = np.where(same[:, None], [[c, np.sqrt(1 - c * c)]], [[0.0, 1.0]])
    r = verification_accuracy(e1, e2, same)
    assert r["mean"] == 1.0 and r["std"] == 0.0
    # first best distance threshold on the grid: t = 0.26 -> cos 1 - 0.26 / 2
    assert r["threshold"] == pytest.approx(1 - 0.26 / 2)


def test_metrics_index_form_is_the_same_protocol():
    rng = np.random.default_rng(4)
    ids = np.repeat(np.arange(20), 5)
    pairs, same = M.verification_pairs(ids, 200)
    assert same[0::2].all() and not same[1::2].any()  # interleaved -> balanced folds
    emb = rng.normal(size=(20, 6))[ids] + 0.9 * rng.normal(size=(100, 6))
    a = M.verification_accuracy(emb, pairs, same)
    b = verification_accuracy(emb[pairs[:, 0]], emb[pairs[:, 1]], same)
    assert a == b
    assert a["mean"] == pytest.approx(_insightface_accuracy(emb[pairs[:, 0]], emb[pairs[:, 1]], same)[0])


def test_best_threshold_brute_force():
    rng = np.random.default_rng(5)
    for n in (1, 7, 50):
        s = np.round(rng.uniform(-1, 1, n), 1)  # ties on purpose
        y = rng.random(n) < 0.5
        t, acc = best_threshold(s, y)
        assert acc == pytest.approx(((s >= t) == y).mean())
        # brute force over every threshold that changes a decision
        cands = np.concatenate([np.unique(s), [np.inf]])
        best = max(((s >= c) == y).mean() for c in cands)
        assert acc == pytest.approx(best)
    t, acc = best_threshold([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0])
    assert acc == 1.0 and t == pytest.approx(0.5)


def _insightface_tar(scores, labels, fars):
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(labels, scores)
    fpr, tpr = np.flipud(fpr), np.flipud(tpr)
    out = []
    for x in fars:
        _, i = min(list(zip(abs(fpr - x), range(len(fpr)))))
        out.append(tpr[i])
    return out


def test_tar_at_far_matches_eval_ijbc_rule():
    rng = np.random.default_rng(6)
    labels = (rng.random(5000) < 0.1).astype(int)
    scores = np.round(rng.normal(size=5000) + 2 * labels, 2)  # rounding makes ties
    fars = (1e-4, 1e-3, 1e-2, 1e-1, 0.5)
    got = tar_at_far(scores, labels, fars)
    assert list(got.values()) == _insightface_tar(scores, labels, fars)
    # hand case: impostors 0.1..0.4, genuine 0.35, 0.9. ROC points (fpr, tpr): (0, .5)
    # at t=0.9, (.25, .5) at t=0.4, (.25, 1) at t=0.35; at FAR .25 the rule takes the
    # highest TPR of the tied points
    got = tar_at_far([0.1, 0.2, 0.3, 0.4, 0.35, 0.9], [0, 0, 0, 0, 1, 1], (0.0, 0.25, 1.0))
    assert got == {0.0: 0.5, 0.25: 1.0, 1.0: 1.0}


def test_bad_input():
    with pytest.raises(ValueError, match="issame"):
        verification_accuracy(np.ones((20, 3)), np.ones((20, 3)), np.ones(19, bool))
    with pytest.raises(ValueError, match="emb2"):
        verification_accuracy(np.ones((20, 3)), np.ones((20, 4)), np.ones(20, bool))
    with pytest.raises(ValueError, match="scores"):
        best_threshold([0.1, np.nan], [1, 0])
    with pytest.raises(ValueError, match="both genuine"):
        tar_at_far([0.1, 0.2], [1, 1])
