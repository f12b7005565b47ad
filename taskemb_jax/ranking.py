"""Ranking source tasks for a target task, and evaluating those rankings.

Scoring and combining rankings:

* `cosine_scores`: similarity of a target embedding to source embeddings.
* `rank_order`: names by descending score (ties broken by name).
* `reciprocal_rank_fusion`: combines several rankings into one score.
* `logme`: LogME (You et al., ICML 2021), the log evidence of a Bayesian
  linear model on fixed features, a transferability score.

Evaluating a predicted ranking against the true transfer results (Vu et al.,
2020, section 4): `ndcg` (same as ``sklearn.metrics.ndcg_score``),
`rank_of_best` / `average_rank_of_best` (the paper's rho), `regret_at_k` and
`spearman`.

Everything is host-side numpy in float64.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from taskemb_jax import metrics

# ----------------------------------------------------------------------------
# Scores and rankings.


def cosine_scores(target: np.ndarray, sources: np.ndarray) -> np.ndarray:
  """Cosine similarity of one target embedding to each source embedding.

  Args:
    target: [d] target task embedding.
    sources: [n, d] source task embeddings.

  Returns:
    [n] float64 similarities in [-1, 1].

  Raises:
    ValueError: on shape mismatch, non-finite values or a zero vector.
  """
  target = np.asarray(target, dtype=np.float64)
  sources = np.asarray(sources, dtype=np.float64)
  if target.ndim != 1 or sources.ndim != 2 or sources.shape[1] != target.shape[0]:
    raise ValueError(
        f"expected target [d] and sources [n, d], got {target.shape} and "
        f"{sources.shape}")
  if not (np.isfinite(target).all() and np.isfinite(sources).all()):
    raise ValueError("embeddings must be finite")
  target_norm = np.linalg.norm(target)
  source_norms = np.linalg.norm(sources, axis=1)  # [n]
  if target_norm == 0:
    raise ValueError("target embedding is the zero vector")
  if (source_norms == 0).any():
    rows = np.flatnonzero(source_norms == 0).tolist()
    raise ValueError(f"source embeddings {rows} are zero vectors")
  cos = (sources @ target) / (source_norms * target_norm)
  return np.clip(cos, -1.0, 1.0)


def rank_order(scores: dict[str, float]) -> list[str]:
  """Names sorted by descending score; equal scores in ascending name order."""
  for name, score in scores.items():
    if np.isnan(score):
      raise ValueError(f"score of {name!r} is NaN")
  return sorted(scores, key=lambda name: (-scores[name], name))


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[str]],
    k: float = 60.0,
    weights: Sequence[float] | None = None,
) -> dict[str, float]:
  """Reciprocal rank fusion (Cormack et al., 2009).

  score(s) = sum over rankings r containing s of w_r / (k + rank_r(s)), with
  1-based ranks; a ranking that lacks s contributes nothing to it.

  Args:
    rankings: R rankings, each a sequence of distinct names, best first.
    k: smoothing constant (>= 0).
    weights: [R] per-ranking weights; default all 1.

  Returns:
    Name -> fused score for every name in any ranking (sort it with
    `rank_order`).
  """
  if k < 0:
    raise ValueError(f"k must be >= 0, got {k}")
  if weights is None:
    weights = [1.0] * len(rankings)
  if len(weights) != len(rankings):
    raise ValueError(f"{len(weights)} weights for {len(rankings)} rankings")
  fused: dict[str, float] = {}
  for ranking, weight in zip(rankings, weights):
    if len(set(ranking)) != len(ranking):
      raise ValueError(f"ranking has repeated names: {list(ranking)}")
    for rank, name in enumerate(ranking, start=1):
      fused[name] = fused.get(name, 0.0) + weight / (k + rank)
  return fused


# ----------------------------------------------------------------------------
# Evaluating a predicted ranking against true transfer results.


def _paired(true: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  true = np.asarray(true, dtype=np.float64)
  pred = np.asarray(pred, dtype=np.float64)
  if true.ndim != 1 or true.shape != pred.shape:
    raise ValueError(f"expected two [n] arrays, got {true.shape} and {pred.shape}")
  if true.size == 0:
    raise ValueError("no sources to rank")
  if not (np.isfinite(true).all() and np.isfinite(pred).all()):
    raise ValueError("values must be finite")
  return true, pred


def ndcg(
    true_relevance: np.ndarray, predicted_scores: np.ndarray, k: int | None = None
) -> float:
  """Normalised discounted cumulative gain of a predicted ranking.

  Linear gains, 1 / log2(1 + position) discount, only the first k positions
  counted when k is given. Sources with tied predicted scores share the mean
  of their gains (equal to ``sklearn.metrics.ndcg_score([true], [pred], k=k)``).

  Args:
    true_relevance: [n] non-negative relevance (e.g. transfer gains).
    predicted_scores: [n] predicted scores, higher ranks first.
    k: cut-off (>= 1), or None for all n positions.

  Returns:
    NDCG in [0, 1]; 0.0 if all relevance is 0.

  Raises:
    ValueError: on negative relevance, mismatched shapes or k < 1.
  """
  true, pred = _paired(true_relevance, predicted_scores)
  if (true < 0).any():
    raise ValueError("ndcg needs non-negative relevance")
  n = true.shape[0]
  discount = 1.0 / np.log2(np.arange(n) + 2.0)  # [n]
  if k is not None:
    if k < 1:
      raise ValueError(f"k must be >= 1, got {k}")
    discount[k:] = 0.0
  ideal = np.sort(true)[::-1] @ discount
  if ideal == 0:
    return 0.0
  # Group tied predicted scores (descending); each group spreads the mean
  # gain of its members over the discounts of the positions it occupies.
  _, group, counts = np.unique(-pred, return_inverse=True, return_counts=True)
  mean_gain = np.bincount(group, weights=true) / counts  # [groups]
  cum_discount = np.concatenate([[0.0], np.cumsum(discount)])  # [n + 1]
  ends = np.cumsum(counts)
  group_discount = cum_discount[ends] - cum_discount[ends - counts]
  return float(mean_gain @ group_discount / ideal)


def rank_of_best(true_metric: np.ndarray, predicted_scores: np.ndarray) -> float:
  """Where the truly best source lands in the predicted ranking.

  Args:
    true_metric: [n] true transfer results (higher is better).
    predicted_scores: [n] predicted scores (higher ranks first).

  Returns:
    1-based position of the best source in the predicted ranking; sources
    with tied predicted scores share their average position (so 1.5 for two
    sources tied at the top). If several sources tie for the best true
    metric, the best-placed of them counts.
  """
  true, pred = _paired(true_metric, predicted_scores)
  positions = metrics.average_ranks(-pred)  # [n], 1 = highest score.
  return float(positions[true == true.max()].min())


def average_rank_of_best(cases: Sequence[tuple[np.ndarray, np.ndarray]]) -> float:
  """Mean `rank_of_best` over targets (rho in Vu et al., 2020).

  Args:
    cases: one (true_metric [n_t], predicted_scores [n_t]) pair per target.
  """
  if not cases:
    raise ValueError("no targets to average over")
  return float(np.mean([rank_of_best(t, p) for t, p in cases]))


def regret_at_k(
    true_metric: np.ndarray, predicted_scores: np.ndarray, k: int
) -> float:
  """Relative loss from picking the best of the top-k predicted sources.

  (best − best among the top k predicted) / best, where best is the highest
  true metric over all sources; 0.0 when the best source is in the top k.
  Predicted ties at the cut-off are broken by source index (stable order);
  k larger than n means all sources.

  Args:
    true_metric: [n] true transfer results; the largest must be positive
      (callers pass a positive metric such as accuracy or F1, not a gain).
    predicted_scores: [n] predicted scores (higher ranks first).
    k: number of top predicted sources considered (>= 1).

  Raises:
    ValueError: if k < 1 or the best true metric is <= 0.
  """
  true, pred = _paired(true_metric, predicted_scores)
  if k < 1:
    raise ValueError(f"k must be >= 1, got {k}")
  best = true.max()
  if best <= 0:
    raise ValueError(f"regret needs a positive best metric, got {best}")
  top_k = np.argsort(-pred, kind="stable")[:k]
  return float((best - true[top_k].max()) / best)


def spearman(x: np.ndarray, y: np.ndarray) -> float:
  """Spearman correlation of [n] and [n], ties by average rank.

  Equal to ``scipy.stats.spearmanr(x, y)``; 0.0 if either input is constant.
  """
  return metrics.spearman(x, y)


# ----------------------------------------------------------------------------
# LogME (You et al., "LogME: Practical Assessment of Pre-trained Models for
# Transfer Learning", ICML 2021).

_LOGME_EPS = 1e-5  # Added to the alpha/beta denominators, as in the paper's code.
_LOGME_TOL = 1e-8  # Relative change of alpha / beta at which iteration stops.
_LOGME_MAX_ITER = 1000


def _compact_svd(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Features [n, d] -> (u [n, k], squared singular values [k]), k = rank."""
  u, s, _ = np.linalg.svd(features, full_matrices=False)
  tol = s.max(initial=0.0) * max(features.shape) * np.finfo(np.float64).eps
  keep = s > tol
  return u[:, keep], s[keep] ** 2


def _column_evidence(
    u: np.ndarray, sigma: np.ndarray, d: int, y: np.ndarray,
    tol: float, max_iter: int,
) -> tuple[float, float, float]:
  """Maximised log evidence / n for one target column, and its alpha, beta.

  Args:
    u: [n, k] left singular vectors of the features (rank k).
    sigma: [k] squared singular values (eigenvalues of F^T F).
    d: feature dimension (the prior is over all d weights).
    y: [n] target column.
  """
  n = y.shape[0]
  x2 = (u.T @ y) ** 2  # [k] squared projections onto the column space.
  res_x2 = max(float(y @ y - x2.sum()), 0.0)  # Part of y outside that space.

  def fit_terms(alpha: float, beta: float) -> tuple[float, float, float]:
    # With t = alpha / beta the posterior mean is m = V diag(s / (t + s^2)) U^T y.
    t = alpha / beta
    gamma = float((sigma / (sigma + t)).sum())  # Effective number of params.
    m2 = float((sigma * x2 / (sigma + t) ** 2).sum())  # ||m||^2
    res2 = float((x2 * (t / (sigma + t)) ** 2).sum()) + res_x2  # ||y - F m||^2
    return gamma, m2, res2

  alpha, beta = 1.0, 1.0
  for _ in range(max_iter):
    gamma, m2, res2 = fit_terms(alpha, beta)
    new_alpha = gamma / (m2 + _LOGME_EPS)
    new_beta = (n - gamma) / (res2 + _LOGME_EPS)
    t, new_t = alpha / beta, new_alpha / new_beta
    alpha, beta = new_alpha, new_beta
    if abs(new_t - t) <= tol * t:
      break
  _, m2, res2 = fit_terms(alpha, beta)
  # log|A| for A = alpha I_d + beta F^T F: d - k eigenvalues are alpha.
  log_det_a = np.log(alpha + beta * sigma).sum() + (d - sigma.shape[0]) * np.log(alpha)
  evidence = (d / 2.0 * np.log(alpha) + n / 2.0 * np.log(beta)
              - 0.5 * log_det_a - beta / 2.0 * res2 - alpha / 2.0 * m2
              - n / 2.0 * np.log(2.0 * np.pi))
  return float(evidence / n), float(alpha), float(beta)


def _target_columns(targets: np.ndarray, n: int, regression: bool) -> np.ndarray:
  """Targets -> [n, m] float64 columns (one-hot over the present classes)."""
  targets = np.asarray(targets)
  if targets.shape[0] != n:
    raise ValueError(f"{targets.shape[0]} targets for {n} feature rows")
  if regression:
    columns = targets.astype(np.float64).reshape(n, -1)
    if not np.isfinite(columns).all():
      raise ValueError("regression targets must be finite")
    return columns
  if targets.ndim != 1 or not np.issubdtype(targets.dtype, np.integer):
    raise ValueError(
        f"classification targets must be [n] int class ids, got "
        f"{targets.dtype} {targets.shape}")
  classes = np.unique(targets)
  return (targets[:, None] == classes[None, :]).astype(np.float64)


def logme_evidence(
    features: np.ndarray, y: np.ndarray, tol: float = _LOGME_TOL,
    max_iter: int = _LOGME_MAX_ITER,
) -> tuple[float, float, float]:
  """LogME for a single real-valued target column, with its alpha and beta.

  Args:
    features: [n, d] features.
    y: [n] target values.
    tol: stop when alpha / beta changes by at most this relative amount.
    max_iter: cap on fixed-point iterations.

  Returns:
    (maximised log evidence / n, prior precision alpha, noise precision beta).
  """
  features = np.asarray(features, dtype=np.float64)
  y = np.asarray(y, dtype=np.float64).reshape(-1)
  if features.ndim != 2 or features.shape[0] != y.shape[0]:
    raise ValueError(f"expected features [n, d] and y [n], got "
                     f"{features.shape} and {y.shape}")
  u, sigma = _compact_svd(features)
  if sigma.size == 0:
    raise ValueError("features are all zero")
  return _column_evidence(u, sigma, features.shape[1], y, tol, max_iter)


def logme(
    features: np.ndarray, targets: np.ndarray, regression: bool = False
) -> float:
  """LogME score of features for a labelled target task (higher = better).

  For each target column, the evidence p(y | F, alpha, beta) of the model
  y = F w + noise, w ~ N(0, I / alpha), noise ~ N(0, I / beta), is maximised
  over alpha and beta by the fixed-point iteration of You et al. (2021,
  Algorithms 1-2), computed from the compact SVD of F (so n < d is cheap).
  The score is the mean over columns of log evidence / n.

  Differences from the reference code (github.com/thuml/LogME): iteration
  runs to a tight tolerance (not at most 11 steps), the evidence is
  evaluated at the final alpha and beta, log|A| includes the d - rank(F)
  eigenvalues equal to alpha (the reference omits them when n < d), and
  classification uses one column per class present in `targets` (not
  0 .. max id).

  Args:
    features: [n, d] features (e.g. a source model's embeddings of the
      target task's examples).
    targets: [n] int class ids (classification) or [n] / [n, m] real values
      (regression).
    regression: whether `targets` are real values.

  Returns:
    The LogME score (a float, comparable across features for the same task).
  """
  features = np.asarray(features, dtype=np.float64)
  if features.ndim != 2 or not np.isfinite(features).all():
    raise ValueError(f"features must be a finite [n, d] array, got {features.shape}")
  n, d = features.shape
  columns = _target_columns(targets, n, regression)  # [n, m]
  u, sigma = _compact_svd(features)
  if sigma.size == 0:
    raise ValueError("features are all zero")
  evidences = [_column_evidence(
      u, sigma, d, columns[:, j], _LOGME_TOL, _LOGME_MAX_ITER)[0]
               for j in range(columns.shape[1])]
  return float(np.mean(evidences))
