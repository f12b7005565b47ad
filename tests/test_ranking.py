"""Tests for taskemb_jax.ranking: hand-worked cases, sklearn/scipy, brute force."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import sklearn.metrics

from taskemb_jax import evaluation, logme, rank

LOG2_3 = np.log2(3.0)

# ----------------------------------------------------------------------------
# Scores and rankings.


def test_cosine_scores_hand_case():
  sources = np.array([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0], [1.0, 1.0]])
  scores = rank.cosine_scores(np.array([2.0, 0.0]), sources)
  np.testing.assert_allclose(scores, [1.0, 0.0, -1.0, 1 / np.sqrt(2)], atol=1e-15)
  assert scores.dtype == np.float64


def test_cosine_scores_errors():
  with pytest.raises(ValueError):
    rank.cosine_scores(np.zeros(2), np.ones((3, 2)))
  with pytest.raises(ValueError):
    rank.cosine_scores(np.ones(2), np.array([[1.0, 0.0], [0.0, 0.0]]))
  with pytest.raises(ValueError):
    rank.cosine_scores(np.ones(3), np.ones((3, 2)))


def test_rank_order_breaks_ties_by_name():
  scores = {"mnli": 0.5, "boolq": 0.9, "cola": 0.5, "anli": 0.1}
  assert rank.rank_order(scores) == ["boolq", "cola", "mnli", "anli"]


def test_reciprocal_rank_fusion_hand_case():
  rankings = [["a", "b", "c"], ["b", "a"]]
  fused = rank.reciprocal_rank_fusion(rankings, k=1.0)
  assert fused == pytest.approx({"a": 1 / 2 + 1 / 3, "b": 1 / 3 + 1 / 2, "c": 1 / 4})
  assert rank.rank_order(fused) == ["a", "b", "c"]
  weighted = rank.reciprocal_rank_fusion(rankings, k=1.0, weights=[2.0, 1.0])
  assert weighted == pytest.approx({"a": 2 / 2 + 1 / 3, "b": 2 / 3 + 1 / 2, "c": 2 / 4})
  default_k = rank.reciprocal_rank_fusion([["x", "y"]])
  assert default_k == pytest.approx({"x": 1 / 61, "y": 1 / 62})
  with pytest.raises(ValueError):
    rank.reciprocal_rank_fusion(rankings, weights=[1.0])
  with pytest.raises(ValueError):
    rank.reciprocal_rank_fusion([["a", "a"]])


# ----------------------------------------------------------------------------
# Ranking evaluation.


def test_ndcg_hand_cases():
  true = np.array([3.0, 2.0, 1.0])
  pred = np.array([0.1, 0.9, 0.5])  # Predicted order: 2, 1, 3 (by relevance).
  dcg = 2 / 1 + 1 / LOG2_3 + 3 / 2
  idcg = 3 / 1 + 2 / LOG2_3 + 1 / 2
  assert evaluation.ndcg(true, pred) == pytest.approx(dcg / idcg)
  assert evaluation.ndcg(true, pred, k=1) == pytest.approx(2 / 3)
  assert evaluation.ndcg(true, pred, k=2) == pytest.approx(
      (2 + 1 / LOG2_3) / (3 + 2 / LOG2_3))
  # Tied top two share their mean gain 1.5 over positions 1 and 2.
  tied = evaluation.ndcg(np.array([3.0, 0.0, 1.0]), np.array([1.0, 1.0, 0.0]))
  assert tied == pytest.approx((1.5 * (1 + 1 / LOG2_3) + 1 / 2) / (3 + 1 / LOG2_3))
  assert evaluation.ndcg(np.zeros(3), pred) == 0.0
  with pytest.raises(ValueError):
    evaluation.ndcg(np.array([1.0, -1.0]), np.array([0.0, 1.0]))


def test_ndcg_matches_sklearn():
  rng = np.random.default_rng(0)
  for case in range(200):
    n = int(rng.integers(2, 15))
    true = rng.integers(0, 5, n).astype(float)
    if case % 3 == 0:
      pred = rng.integers(0, 4, n).astype(float)  # Many ties.
    else:
      pred = rng.normal(size=n)
    if case % 5 == 0:
      true = rng.random(n) * 10.0
    k = None if case % 2 == 0 else int(rng.integers(1, n + 3))
    expected = sklearn.metrics.ndcg_score([true], [pred], k=k)
    assert evaluation.ndcg(true, pred, k=k) == pytest.approx(expected, abs=1e-12), case


def test_rank_of_best_and_regret_hand_cases():
  true = np.array([3.0, 2.0, 1.0])
  pred = np.array([0.5, 0.9, 0.1])  # Best source (index 0) predicted second.
  assert evaluation.rank_of_best(true, pred) == 2.0
  assert evaluation.regret_at_k(true, pred, 1) == pytest.approx((3 - 2) / 3)
  assert evaluation.regret_at_k(true, pred, 2) == 0.0
  assert evaluation.regret_at_k(true, pred, 10) == 0.0
  # Predicted tie with the best at the top: average position 1.5.
  assert evaluation.rank_of_best(true, np.array([0.9, 0.9, 0.1])) == 1.5
  # Tie for the best true metric: the better placed one (position 2) counts.
  assert evaluation.rank_of_best(np.array([3.0, 3.0, 1.0]),
                              np.array([0.1, 0.5, 0.9])) == 2.0
  # Predicted tie at the cut-off is broken by source index.
  assert evaluation.regret_at_k(np.array([1.0, 2.0]), np.array([0.5, 0.5]), 1) == 0.5
  with pytest.raises(ValueError):
    evaluation.regret_at_k(np.array([-1.0, 0.0]), np.array([1.0, 0.0]), 1)


def test_average_rank_of_best():
  cases = [(np.array([3.0, 2.0, 1.0]), np.array([0.5, 0.9, 0.1])),  # 2
           (np.array([3.0, 2.0, 1.0]), np.array([0.9, 0.9, 0.1])),  # 1.5
           (np.array([0.0, 5.0]), np.array([0.0, 1.0]))]            # 1
  assert evaluation.average_rank_of_best(cases) == pytest.approx(4.5 / 3)


def test_spearman_matches_scipy_with_ties():
  rng = np.random.default_rng(1)
  for _ in range(30):
    x = rng.integers(0, 4, 12).astype(float)
    y = x + rng.integers(0, 3, 12)
    if np.all(x == x[0]) or np.all(y == y[0]):
      continue
    assert evaluation.spearman(x, y) == pytest.approx(scipy.stats.spearmanr(x, y)[0])
  assert evaluation.spearman(np.array([1.0, 2.0, 3.0]), np.array([3.0, 1.0, 2.0])) == (
      pytest.approx(-0.5))
  assert evaluation.spearman(np.ones(4), np.arange(4.0)) == 0.0


# ----------------------------------------------------------------------------
# LogME.


def _brute_force_evidence(f, y, alpha, beta):
  """log p(y | F, alpha, beta) / n in two closed forms: [d, d] and [n, n]."""
  n, d = f.shape
  a = alpha * np.eye(d) + beta * f.T @ f
  m = beta * np.linalg.solve(a, f.T @ y)
  weight_form = (d / 2 * np.log(alpha) + n / 2 * np.log(beta)
                 - beta / 2 * np.sum((y - f @ m) ** 2) - alpha / 2 * m @ m
                 - 0.5 * np.linalg.slogdet(a)[1] - n / 2 * np.log(2 * np.pi))
  # Marginal: y ~ N(0, I / beta + F F^T / alpha).
  cov = np.eye(n) / beta + f @ f.T / alpha
  marginal_form = -0.5 * (y @ np.linalg.solve(cov, y) + np.linalg.slogdet(cov)[1]
                          + n * np.log(2 * np.pi))
  return weight_form / n, marginal_form / n


@pytest.mark.parametrize("n,d", [(40, 5), (6, 10), (20, 20)])
def test_logme_evidence_equals_brute_force_and_is_a_maximum(n, d):
  rng = np.random.default_rng(n * 100 + d)
  f = rng.normal(size=(n, d))
  y = f @ rng.normal(size=d) * 0.5 + rng.normal(size=n) * 0.3
  evidence, alpha, beta = logme.logme_evidence(f, y)
  weight_form, marginal_form = _brute_force_evidence(f, y, alpha, beta)
  assert evidence == pytest.approx(weight_form, rel=1e-9, abs=1e-9)
  assert evidence == pytest.approx(marginal_form, rel=1e-9, abs=1e-9)
  # The fixed point maximises the evidence over (alpha, beta). When n <= d, y
  # lies in the column space of F and the evidence keeps growing (towards a
  # finite limit) as beta -> inf; the 1e-5 in beta's update stops it, so only
  # alpha is checked there.
  beta_factors = (0.8, 1.0, 1.25) if n > d else (1.0,)
  for fa in (0.8, 1.0, 1.25):
    for fb in beta_factors:
      if fa != 1.0 or fb != 1.0:
        assert _brute_force_evidence(f, y, alpha * fa, beta * fb)[0] < evidence


def test_logme_rank_deficient_features_match_brute_force():
  rng = np.random.default_rng(3)
  base = rng.normal(size=(25, 3))
  f = np.concatenate([base, base[:, :2] * 2.0], axis=1)  # [25, 5], rank 3.
  y = base[:, 0] + rng.normal(size=25) * 0.5
  evidence, alpha, beta = logme.logme_evidence(f, y)
  assert evidence == pytest.approx(
      _brute_force_evidence(f, y, alpha, beta)[1], rel=1e-9)


def test_logme_classification_is_mean_over_one_hot_columns():
  rng = np.random.default_rng(4)
  f = rng.normal(size=(30, 4))
  labels = rng.integers(0, 3, 30)
  expected = np.mean([logme.logme_evidence(f, (labels == c).astype(float))[0]
                      for c in range(3)])
  assert logme.logme(f, labels) == pytest.approx(expected, rel=1e-12)
  assert logme.logme(f, labels) == logme.logme(f, labels)  # Deterministic.
  # Regression: [n] and [n, m] targets.
  targets = rng.normal(size=(30, 2))
  assert logme.logme(f, targets[:, 0], regression=True) == pytest.approx(
      logme.logme_evidence(f, targets[:, 0])[0], rel=1e-12)
  assert logme.logme(f, targets, regression=True) == pytest.approx(
      np.mean([logme.logme_evidence(f, targets[:, j])[0] for j in range(2)]),
      rel=1e-12)
  with pytest.raises(ValueError):
    logme.logme(f, labels.astype(float))  # Classification needs int ids.


def test_logme_prefers_informative_features_and_ignores_order():
  rng = np.random.default_rng(5)
  n, d, num_classes = 300, 16, 3
  labels = rng.integers(0, num_classes, n)
  informative = rng.normal(size=(n, d)) * 0.1
  informative[:, :num_classes] += np.eye(num_classes)[labels]
  random = rng.normal(size=(n, d))
  good = logme.logme(informative, labels)
  bad = logme.logme(random, labels)
  assert good > bad + 0.5
  perm = rng.permutation(n)
  assert logme.logme(informative[perm], labels[perm]) == pytest.approx(good, rel=1e-10)
  # Regression targets that are a linear function of the features.
  y = random @ rng.normal(size=d)
  assert (logme.logme(random, y, regression=True)
          > logme.logme(rng.normal(size=(n, d)), y, regression=True))
