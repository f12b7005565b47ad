"""Ranking source tasks for a target: the `rank` stage and its methods.

Methods (`method_scores`):

* ``textemb``: cosine similarity of TextEmb vectors;
* ``taskemb:<component>``: cosine similarity of one TaskEmb component;
* ``taskemb``: reciprocal rank fusion (RRF) of the per-component rankings
  over `components` (default: the components every task has);
* ``textemb+taskemb``: RRF of the TextEmb and the fused TaskEmb rankings;
* ``datasize``: larger source first (its number of training examples);
* ``random``: a seeded random order;
* ``logme``: LogME of each fine-tuned source model's features on the target
  data (`taskemb_jax.logme`), the one method that needs the source
  models themselves.

The `rank` stage takes a target that is in the library, or any task (a
registry name or ``<kind>:<path>``) that it embeds first with the library's
recorded options, and writes ranking.json plus a table on the terminal.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import ml_collections
import numpy as np
from absl import logging

from taskemb_jax import files
from taskemb_jax import library as library_lib
from taskemb_jax import sharding
from taskemb_jax.errors import ConfigError, LibraryError

# Methods whose scores come from elsewhere: LogME runs the source models
# (`taskemb_jax.logme`), description compares the tasks' description texts
# with a sentence encoder (`taskemb_jax.description`).
PRECOMPUTED = ("logme", "description")
BASIC_METHODS = ("textemb", "taskemb", "textemb+taskemb", "datasize",
                 "random")


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
# Ranking methods.


def shared_components(entries: Sequence[Mapping[str, Any]]) -> list[str]:
  """TaskEmb components present in every entry, in the model's order."""
  sets = [set(e["taskemb"]) for e in entries]
  common = set.intersection(*sets) if sets else set()
  order = {"embeddings": -1, "pooler": 10**6}

  def key(c):
    if c in order:
      return (order[c], c)
    layer, part = c.split("/")
    return (int(layer.split("_")[1]) * 2 + (part == "output"), c)
  return sorted(common, key=key)


def _cosine(target: np.ndarray, sources: Mapping[str, np.ndarray]
            ) -> dict[str, float]:
  names = list(sources)
  scores = cosine_scores(np.asarray(target, np.float64),
                                 np.stack([sources[n] for n in names]))
  return dict(zip(names, map(float, scores)))


def method_scores(method: str, target: Mapping[str, Any],
                  sources: Mapping[str, Mapping[str, Any]], *,
                  components: Sequence[str] = (), rrf_k: float = 60.0,
                  seed: int = 0,
                  precomputed: Mapping[str, float] | None = None
                  ) -> dict[str, float]:
  """Scores of every source for the target (higher = transfer better).

  `target` and `sources` are `library.load` results ({'entry', 'textemb',
  'taskemb'}). Embedding methods check that the embeddings compare
  (`library.check_compatible`).
  """
  names = sorted(sources)
  entries = [target["entry"]] + [sources[n]["entry"] for n in names]
  if method == "textemb":
    library_lib.check_compatible(entries, "textemb")
    return _cosine(target["textemb"], {n: sources[n]["textemb"]
                                       for n in names})
  if method.startswith("taskemb:"):
    library_lib.check_compatible(entries, "taskemb")
    comp = method.split(":", 1)[1]
    missing = [e["entry"]["name"] for e in [target, *sources.values()]
               if comp not in e["taskemb"]]
    if missing:
      raise LibraryError(f"TaskEmb component {comp!r} missing for "
                         f"{', '.join(missing)}")
    return _cosine(target["taskemb"][comp],
                   {n: sources[n]["taskemb"][comp] for n in names})
  if method == "taskemb":
    comps = list(components) or shared_components(
        [target] + [sources[n] for n in names])
    if not comps:
      raise LibraryError("no TaskEmb component is shared by all tasks")
    rankings = [rank_order(method_scores(
        f"taskemb:{c}", target, sources)) for c in comps]
    return reciprocal_rank_fusion(rankings, k=rrf_k)
  if method == "textemb+taskemb":
    rankings = [rank_order(method_scores(m, target, sources,
                                                 components=components,
                                                 rrf_k=rrf_k))
                for m in ("textemb", "taskemb")]
    return reciprocal_rank_fusion(rankings, k=rrf_k)
  if method == "datasize":
    return {n: float(sources[n]["entry"].get("num_examples") or 0)
            for n in names}
  if method == "random":
    rng = np.random.default_rng([seed, sum(map(ord, target["entry"]["name"]))])
    return dict(zip(names, map(float, rng.random(len(names)))))
  if method in PRECOMPUTED:
    if precomputed is None:
      raise ConfigError(f"method {method!r} needs precomputed scores")
    return {n: float(precomputed[n]) for n in names}
  raise ConfigError(f"unknown ranking method {method!r}; use one of "
                    f"{', '.join(BASIC_METHODS + PRECOMPUTED)} or "
                    "taskemb:<component>")


def unusable(loaded: Mapping[str, Any], method: str,
             components: Sequence[str] = ()) -> str | None:
  """Why a loaded task cannot take part in `method`'s ranking, or None.

  Zero or non-finite vectors, a missing embedding or component
  (`library.problems`) make a task unusable for the methods that use it.
  """
  text = method in ("textemb", "textemb+taskemb")
  task = method in ("taskemb", "textemb+taskemb") or method.startswith(
      "taskemb:")
  wanted = ([method.split(":", 1)[1]] if method.startswith("taskemb:")
            else list(components))
  for what, why in library_lib.problems(loaded):
    if (what == "textemb" and text) or (what == "taskemb" and task):
      return why
  if text and loaded["textemb"] is None:
    return "has no TextEmb"
  if task:
    comps = loaded["taskemb"]
    if not comps:
      return "has no TaskEmb"
    for c in wanted:
      if c not in comps or not np.any(comps[c]):
        return f"TaskEmb component {c!r} is missing or all zeros"
  return None


def ranked_table(target: str, scores: Mapping[str, float],
                 entries: Mapping[str, Mapping[str, Any]],
                 extra: Mapping[str, str] | None = None) -> str:
  """A plain-text table of the ranking (rank, source, class, score, ...)."""
  order = rank_order(scores)
  lines = [f"Sources ranked for target {target!r}:",
           f"{'rank':>4}  {'source':<24} {'class':<15} {'score':>9}  "
           f"{'examples':>8}" + ("  " + (extra or {}).get("_header", "")
                                 if extra else "")]
  for i, name in enumerate(order, 1):
    e = entries[name]
    row = (f"{i:>4}  {name[:24]:<24} {e['family']:<15} {scores[name]:>9.4f}  "
           f"{e.get('num_examples', 0):>8}")
    if extra:
      row += "  " + extra.get(name, "")
    lines.append(row)
  return "\n".join(lines)


def _description_scores(config: ml_collections.ConfigDict,
                        target: Mapping[str, Any],
                        sources: Mapping[str, Mapping[str, Any]]
                        ) -> dict[str, float]:
  """The `description` method's scores: config.rank.description (or the
  target's own description) against each source's description."""
  # The sentence encoder is a model (JAX); other methods need none.
  from taskemb_jax import description  # pylint: disable=import-outside-toplevel
  text = config.rank.description or description.task_description(
      target["name"], target)
  if not text:
    raise ConfigError(f"target {target['name']!r} has no description; give "
                      "one with --config.rank.description")
  return description.description_scores(
      text, {n: description.task_description(n, s["entry"])
             for n, s in sources.items()},
      description.load_encoder(config.model))


def rank_stage(config: ml_collections.ConfigDict,
               workdir: str) -> dict[str, Any]:
  """Ranks the library's tasks as sources for config.task."""
  lib = config.library
  names = library_lib.tasks(lib)
  target_name = config.task
  r = config.rank
  scope = r.scope
  sources, skipped = library_lib.load_all(
      lib, [n for n in names if n != target_name], skip_unreadable=True)
  if not sources:
    raise LibraryError(f"{lib}: no {'readable ' if skipped else ''}source "
                       f"tasks besides {target_name!r}")
  target_lib = lib
  if target_name in names and not r.reembed:
    target = library_lib.load(lib, target_name)
  else:
    if not workdir:
      raise ConfigError(f"target {target_name!r} is not in {lib}: embedding "
                        "it needs --workdir")
    # Only a target outside the library needs the model (and JAX).
    from taskemb_jax import embed  # pylint: disable=import-outside-toplevel
    ref = next(iter(sources.values()))["entry"]
    target_lib = embed.embed_target(config, workdir, ref, lib)
    target = library_lib.load(target_lib, target_name)
  if scope == "in-class":
    fam = target["entry"]["family"]
    sources = {n: s for n, s in sources.items()
               if s["entry"]["family"] == fam}
  elif scope != "all":
    raise ConfigError(f"config.rank.scope={scope!r}; use 'all' or 'in-class'")
  comps = files.comma_list(r.components)
  why = unusable(target, r.method, comps)
  if why:
    raise LibraryError(f"target {target_name!r}: {why}; embed it again "
                       "(--config.overwrite=True)")
  for n in sorted(sources):
    why = unusable(sources[n], r.method, comps)
    if why:
      skipped.append({"name": n, "reason": why})
      del sources[n]
  for s in skipped:
    logging.warning("rank: skipped source %r: %s", s["name"], s["reason"])
  if not sources:
    raise LibraryError(f"{lib}: no usable source task for {target_name!r} "
                       f"(scope {scope!r})")
  pre = None
  if r.method == "description":
    pre = _description_scores(config, target["entry"], sources)
  scores = method_scores(r.method, target, sources, components=comps,
                         rrf_k=r.rrf_k, seed=r.seed, precomputed=pre)
  order = rank_order(scores)
  entries = {n: s["entry"] for n, s in sources.items()}
  result = {
      "target": target_name, "method": r.method, "scope": scope,
      "library": os.path.abspath(lib),
      # The library holding the target's embeddings (`lib`, or the one-task
      # library it was embedded into).
      "target_library": os.path.abspath(target_lib),
      "components": comps or (shared_components(
          [target] + list(sources.values())) if "taskemb" in r.method
                               else []),
      "sources": [{"name": n, "rank": i, "score": scores[n],
                   "family": entries[n]["family"],
                   "num_examples": entries[n].get("num_examples")}
                  for i, n in enumerate(order, 1)],
      "skipped": skipped}
  if sharding.is_writer():
    print(ranked_table(target_name, scores, entries))
  if workdir:
    def write():
      os.makedirs(workdir, exist_ok=True)
      files.write_json(os.path.join(workdir, "ranking.json"), result)
      logging.info("wrote %s", os.path.join(workdir, "ranking.json"))
    sharding.on_writer(write)
  return result
