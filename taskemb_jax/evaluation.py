"""Scoring rankings against measured transfer: the `evaluate` stage.

For every target of a transfer matrix and every ranking method, the sources
measured for that target are ranked and compared with their measured
transfer (mean over restarts):

* ρ: the 1-based position of the truly best source in the predicted ranking
  (`rank_of_best`), averaged over targets (lower is better);
* NDCG over the full ranking with relevance = the target metric after
  transfer, or with ``evaluate.relevance = "gain"`` the relative gain clipped
  at 0 (negative metrics are clipped at 0 too, as NDCG needs relevance >= 0);
* Regret@k for k = 1, 3, 5: (best achievable - best in the top k) / best
  achievable (skipped for a target whose best metric is <= 0);
* Spearman correlation of predicted scores and measured transfer.

Each is computed all-class (every measured source) and in-class (sources of
the target's class). The random baseline is averaged over many draws. The
spread over restarts: every metric is recomputed with each restart's results
alone as the ground truth, and their standard deviation reported.

A target whose sources all measured the same (mean over restarts) is left
out of a scope, and listed under `uninformative`: every ranking of tied
sources is perfect by every metric, so such a target would only add the
same perfect score to every method (e.g. a QA target whose runs all predict
"no answer").
"""

from __future__ import annotations

import os
import time
from typing import Any, Mapping, Sequence

import ml_collections
import numpy as np
from absl import logging

from taskemb_jax import files
from taskemb_jax import library as library_lib
from taskemb_jax import matrix as matrix_lib
from taskemb_jax import metrics
from taskemb_jax import rank as rank_lib
from taskemb_jax import sharding
from taskemb_jax import transfer
from taskemb_jax.errors import ConfigError, LibraryError

KS = (1, 3, 5)


# ----------------------------------------------------------------------------
# Metrics of a predicted ranking against the true transfer results.


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
# The evaluate stage.


def score_ranking(true: np.ndarray, scores: np.ndarray, relevance: np.ndarray
                  ) -> dict[str, float]:
  """All ranking metrics of one target. true/scores/relevance: [sources]."""
  out = {"rho": rank_of_best(true, scores),
         "ndcg": ndcg(np.maximum(relevance, 0.0), scores),
         "spearman": spearman(scores, true)}
  if true.max() > 0:
    for k in KS:
      out[f"regret@{k}"] = regret_at_k(true, scores, k)
  return out


def _mean(rows: Sequence[Mapping[str, float]]) -> dict[str, float]:
  keys = sorted({k for r in rows for k in r})
  return {k: float(np.mean([r[k] for r in rows if k in r])) for k in keys}


def expand_methods(spec: str, components: Sequence[str]) -> list[str]:
  """'taskemb:*' -> one method per component; other names kept."""
  out = []
  for m in filter(None, (x.strip() for x in spec.split(","))):
    if m == "taskemb:*":
      out += [f"taskemb:{c}" for c in components]
    else:
      out.append(m)
  return out


def evaluate_matrix(matrix: Mapping[str, Any], lib: str, methods: Sequence[str],
                    *, relevance: str = "metric", random_draws: int = 1000,
                    precomputed: Mapping[str, Mapping[str, Mapping[
                        str, float]]] | None = None,
                    rrf_k: float = 60.0, components: Sequence[str] = (),
                    targets: Mapping[str, Mapping[str, Any]] | None = None
                    ) -> dict[str, Any]:
  """Evaluates every method on one transfer matrix (one data regime).

  `precomputed`: {method: {target: {source: score}}} of the methods whose
  scores come from elsewhere (`rank.PRECOMPUTED`: logme, description); a
  method without scores for a target is skipped there. `targets`: library
  records ({"entry", "textemb", "taskemb"}) that replace the library's
  embeddings of those targets as targets (targets embedded with another
  recipe); as sources of the other targets the library's records are used.
  """
  precomputed = precomputed or {}
  if relevance not in ("metric", "gain"):
    raise ConfigError(f"config.evaluate.relevance={relevance!r}; use "
                      "'metric' or 'gain'")
  loaded, _ = library_lib.load_all(lib)
  targets = targets or {}
  results: dict[str, Any] = {"regime": matrix["regime"], "per_target": {},
                             "mean": {}, "restart_std": {},
                             "uninformative": {}}
  per_method: dict[tuple[str, str], list] = {}
  per_class: dict[tuple[str, str, str], list] = {}
  per_restart: dict[tuple[str, str, int], list] = {}
  for tgt in matrix["targets"]:
    cells = matrix["pairs"].get(tgt, {})
    base = matrix["baseline"].get(tgt)
    if tgt not in loaded:
      raise LibraryError(f"target {tgt!r} of the transfer matrix is not in "
                         f"the library {lib}")
    # A target embedded anew replaces the library's record as the target
    # only; as a source of other targets it stays the library's.
    target = targets.get(tgt, loaded[tgt])
    family = target["entry"]["family"]
    for scope in ("all", "in-class"):
      names = sorted(s for s in cells if s in loaded and (
          scope == "all" or loaded[s]["entry"]["family"] == family))
      if len(names) < 2:
        continue
      true = np.array([cells[s]["mean"] for s in names])
      if matrix_lib.all_tied(true):  # Every ranking would be perfect.
        results["uninformative"].setdefault(scope, []).append(tgt)
        continue
      rel = true if relevance == "metric" else np.array(
          [cells[s].get("gain", 0.0) for s in names])
      sources = {s: loaded[s] for s in names}
      for method in methods:
        if method == "random":
          draws = [score_ranking(true, np.random.default_rng(d).random(
              len(names)), rel) for d in range(random_draws)]
          res = _mean(draws)
        else:
          pre = precomputed.get(method, {}).get(tgt)
          if method in rank_lib.PRECOMPUTED and pre is None:
            continue
          if (method not in rank_lib.PRECOMPUTED and tgt in targets
              and rank_lib.unusable(target, method, components)):
            continue  # E.g. a target embedded anew without its TextEmb.
          sc = rank_lib.method_scores(method, target, sources,
                                      components=components, rrf_k=rrf_k,
                                      precomputed=pre)
          scores = np.array([sc[s] for s in names])
          res = score_ranking(true, scores, rel)
          runs = min(len(cells[s]["runs"]) for s in names)
          for r in range(runs):
            t_r = np.array([cells[s]["runs"][r] for s in names])
            rel_r = t_r
            if relevance == "gain" and base:
              b = base["runs"][r] if r < len(base["runs"]) else base["mean"]
              rel_r = np.maximum((t_r - b) / abs(b) if b else t_r * 0, 0.0)
            per_restart.setdefault((scope, method, r), []).append(
                score_ranking(t_r, scores, rel_r))
        results["per_target"].setdefault(tgt, {}).setdefault(scope, {})[
            method] = res
        per_method.setdefault((scope, method), []).append(res)
        per_class.setdefault((family, scope, method), []).append(res)
  for (scope, method), rows in per_method.items():
    results["mean"].setdefault(scope, {})[method] = _mean(rows)
    restarts = sorted(r for (s, m, r) in per_restart if s == scope and
                      m == method)
    if len(restarts) > 1:
      means = [_mean(per_restart[(scope, method, r)]) for r in restarts]
      results["restart_std"].setdefault(scope, {})[method] = {
          k: float(np.std([m[k] for m in means], ddof=1)) for k in means[0]}
  results["num_targets"] = {s: len(rows) for (s, m), rows in
                            per_method.items() if m == methods[0]}
  # The same means per class of target (for a per-class choice of method).
  results["by_class"] = {}
  for (family, scope, method), rows in per_class.items():
    results["by_class"].setdefault(family, {}).setdefault(scope, {})[
        method] = {**_mean(rows), "targets": len(rows)}
  return results


def markdown(evaluations: Sequence[Mapping[str, Any]],
             methods: Sequence[str]) -> str:
  """The paper's table (methods x regimes, ρ and NDCG, in-/all-class)."""
  lines = ["| method | " + " | ".join(
      f"{e['regime']} {scope} ρ ↓ | {e['regime']} {scope} NDCG ↑"
      for e in evaluations for scope in ("in-class", "all")) + " |"]
  lines.append("|---|" + "---|" * (4 * len(evaluations)))
  for m in methods:
    cells = []
    for e in evaluations:
      for scope in ("in-class", "all"):
        r = e["mean"].get(scope, {}).get(m)
        sd = e["restart_std"].get(scope, {}).get(m, {})
        if r is None:
          cells += ["", ""]
          continue
        cells.append(f"{r['rho']:.2f}" + (f" ± {sd['rho']:.2f}" if sd else ""))
        cells.append(f"{100 * r['ndcg']:.1f}" +
                     (f" ± {100 * sd['ndcg']:.1f}" if sd else ""))
    lines.append(f"| {m} | " + " | ".join(cells) + " |")
  for e in evaluations:
    left = e.get("uninformative", {})
    for tgt in sorted({t for ts in left.values() for t in ts}):
      scopes = " and ".join(s for s in ("in-class", "all")
                            if tgt in left.get(s, []))
      lines += ["", f"Left out ({e['regime']}, {scopes}): {tgt}, whose "
                "sources all measured the same (every ranking would be "
                "perfect)."]
  lines += ["", "| method | regime | scope | Regret@1 ↓ | Regret@3 ↓ | "
            "Regret@5 ↓ | Spearman ↑ |", "|---|---|---|---|---|---|---|"]
  for m in methods:
    for e in evaluations:
      for scope in ("in-class", "all"):
        r = e["mean"].get(scope, {}).get(m)
        sd = e["restart_std"].get(scope, {}).get(m, {})
        if r is None:
          continue
        cells = [f"{100 * r[k]:.1f}%" + (f" ± {100 * sd[k]:.1f}" if k in sd
                                          else "") if k in r else ""
                 for k in ("regret@1", "regret@3", "regret@5")]
        cells.append(f"{r['spearman']:.2f}" + (
            f" ± {sd['spearman']:.2f}" if "spearman" in sd else ""))
        lines.append(f"| {m} | {e['regime']} | {scope} | " +
                     " | ".join(cells) + " |")
  for e in evaluations:
    classes = sorted(e.get("by_class", {}))
    if len(classes) < 2:
      continue
    counts = ", ".join(
        f"{c} {max(r['targets'] for r in e['by_class'][c]['all'].values())}"
        for c in classes if e["by_class"][c].get("all"))
    lines += ["", f"By class of target ({e['regime']}; targets per class: "
              f"{counts})", "",
              "| method | " + " | ".join(
                  f"{c} {scope} ρ ↓ | {c} {scope} NDCG ↑" for c in classes
                  for scope in ("in-class", "all")) + " |",
              "|---|" + "---|" * (4 * len(classes))]
    for m in methods:
      cells = []
      for c in classes:
        for scope in ("in-class", "all"):
          r = e["by_class"][c].get(scope, {}).get(m)
          cells += ([f"{r['rho']:.2f}", f"{100 * r['ndcg']:.1f}"] if r
                    else ["", ""])
      lines.append(f"| {m} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def description_scores(config: ml_collections.ConfigDict,
                       matrix: Mapping[str, Any],
                       loaded: Mapping[str, Mapping[str, Any]]
                       ) -> dict[str, dict[str, float]]:
  """{target: {source: score}} of the `description` method: the cosine of
  the tasks' description vectors under the base model (a sentence encoder).
  """
  # The encoder is a model (JAX); other methods need none.
  from taskemb_jax import description  # pylint: disable=import-outside-toplevel
  encoder = description.load_encoder(config.model)
  texts = {n: description.task_description(n, t["entry"])
           for n, t in loaded.items()}
  out = {}
  for tgt in matrix["targets"]:
    sources = {s: texts[s] for s in matrix["pairs"].get(tgt, {})
               if s in texts and texts[s]}
    if texts.get(tgt) and sources:
      out[tgt] = description.description_scores(texts[tgt], sources, encoder)
  return out


def reembed_targets(config: ml_collections.ConfigDict,
                    matrix: Mapping[str, Any], workdir: str, lib: str,
                    loaded: Mapping[str, Mapping[str, Any]]
                    ) -> dict[str, dict[str, Any]]:
  """Embeds every target of `matrix` as the rank stage embeds a new task.

  Each target is fine-tuned and embedded with the library's recipe changed
  by config.rank.finetune / config.rank.embed_examples, in
  <workdir>/targets/<target>/ (its fine-tuning run resumes or is reused).
  `loaded`: the library `lib`, loaded. Returns {target: library record};
  the wall time of each target's embedding is logged and written to
  <workdir>/targets/seconds.json.
  """
  from taskemb_jax import embed  # pylint: disable=import-outside-toplevel
  entries = {n: t["entry"] for n, t in loaded.items()}
  out, seconds = {}, {}
  for tgt in matrix["targets"]:
    if tgt not in entries:
      raise LibraryError(f"target {tgt!r} of the transfer matrix is not in "
                         f"the library {lib}")
    cfg = config.copy_and_resolve_references()
    with cfg.unlocked():
      cfg.task = tgt
      cfg.rank.method = "textemb+taskemb" if config.rank.textemb else "taskemb"
    start = time.perf_counter()
    target_lib = embed.embed_target(
        cfg, os.path.join(workdir, "targets", files.safe_name(tgt)),
        entries[tgt], lib)
    seconds[tgt] = time.perf_counter() - start
    logging.info("target %s embedded anew in %.1f s", tgt, seconds[tgt])
    out[tgt] = library_lib.load(target_lib, tgt)
  files.write_json(os.path.join(workdir, "targets", "seconds.json"), seconds)
  return out


def evaluate_stage(config: ml_collections.ConfigDict,
                   workdir: str) -> list[dict[str, Any]]:
  """Writes evaluation.json and evaluation.md for every transfer matrix."""
  e = config.evaluate
  paths = files.comma_list(e.matrices) or [workdir]
  evaluations = []
  lib = config.library
  loaded, _ = library_lib.load_all(lib)
  comps = rank_lib.shared_components(list(loaded.values())) if loaded else []
  methods = expand_methods(e.methods, comps)
  rank_comps = files.comma_list(config.rank.components)
  for path in paths:
    matrix = transfer.read_matrix(path)
    precomputed = {}
    if "logme" in methods:
      # LogME runs the source models (JAX); other methods need none.
      from taskemb_jax import logme  # pylint: disable=import-outside-toplevel
      precomputed["logme"] = logme.scores_for_matrix(config, matrix, path)
    if "description" in methods:
      precomputed["description"] = description_scores(config, matrix,
                                                      loaded)
    targets = (reembed_targets(config, matrix, workdir, lib, loaded)
               if e.reembed_targets else None)
    evaluations.append(evaluate_matrix(
        matrix, lib, methods, relevance=e.relevance,
        random_draws=e.random_draws, precomputed=precomputed,
        rrf_k=config.rank.rrf_k, components=rank_comps, targets=targets))
  out_dir = workdir or "."
  table = markdown(evaluations, methods)

  def write():
    os.makedirs(out_dir, exist_ok=True)
    files.write_json(os.path.join(out_dir, "evaluation.json"),
                     {"methods": methods, "relevance": e.relevance,
                      "evaluations": evaluations})
    files.write_text(os.path.join(out_dir, "evaluation.md"), table)
    print(table)
    logging.info("wrote %s", os.path.join(out_dir, "evaluation.json"))
  sharding.on_writer(write)
  return evaluations
