"""What a job computes: an upload's validation, the ranking and its views.

`detect` reads an uploaded file the way the pipeline will (the generic
formats, the 80/10/10 split, `check_trainable`) before the job is queued;
its errors are the CLI's one line with the user's file name in place of
the server's path. `rank_job` is the worker's one call per job: the `rank`
stage of the CLI (`rank.rank_stage`: fine-tune the target with the
library's recipe, TextEmb + TaskEmb, rank), then the TextEmb and
description views beside it, the agreement of the views, a warning when
the best sources are of another class, and the task map (a 2-D PCA of the
library's TaskEmb with the new task).
"""

from __future__ import annotations

import collections
import csv
import io
import os
import re
from typing import Any, Mapping, Sequence

import ml_collections
import numpy as np

from taskemb_jax import description as description_lib
from taskemb_jax import formats
from taskemb_jax import library as library_lib
from taskemb_jax import rank as rank_lib
from taskemb_jax import tasks as tasks_lib
from taskemb_jax.errors import DataError, UserError
from taskemb_jax.records import KINDS

# File name suffixes of each kind's generic format (the first = default).
EXTENSIONS = {"classification": (".jsonl",), "regression": (".jsonl",),
              "qa": (".jsonl", ".json"), "tagging": (".conll", ".txt",
                                                    ".tsv")}
FAMILY = {"classification": "classification", "regression": "classification",
          "qa": "qa", "tagging": "tagging"}
_SHOWN = re.compile(r"[^A-Za-z0-9._-]+")


# ----------------------------------------------------------------------------
# Uploads.


def shown_name(filename: str | None) -> str:
  """The upload's name for messages: its last component, safe characters
  only (never used as a path)."""
  base = re.split(r"[\\/]", filename or "")[-1]
  base = _SHOWN.sub("_", base).strip("._")[:64]
  return base or "upload"


def extension(filename: str | None, kind: str, head: bytes) -> str:
  """The suffix the server's copy gets: the user's when the kind's format
  has it, else (QA) .json for a SQuAD document and .jsonl otherwise."""
  suffix = os.path.splitext(shown_name(filename))[1].lower()
  if suffix in EXTENSIONS[kind]:
    return suffix
  if kind == "qa" and head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{") \
      and b'"data"' in head:
    return ".json"
  return EXTENSIONS[kind][0]


def public(message: str, path: str, shown: str) -> str:
  """An engine message with the server's path replaced by the user's name."""
  return message.replace(path, shown)


def _labels(kind: str, records: Sequence[dict]) -> dict[str, Any]:
  if kind == "classification":
    counts = collections.Counter(str(r["label"]) for r in records)
    return {"labels": dict(counts.most_common(20)), "num_labels": len(counts)}
  if kind == "regression":
    y = np.array([float(r["label"]) for r in records])
    return {"range": [float(y.min()), float(y.max())],
            "mean": float(y.mean())}
  if kind == "tagging":
    counts = collections.Counter(t for r in records for t in r["tags"])
    return {"labels": dict(counts.most_common(20)), "num_labels": len(counts),
            "tokens": sum(len(r["tokens"]) for r in records)}
  answered = sum(1 for r in records if r.get("answers"))
  return {"questions": len(records), "answered": answered}


def detect(path: str, kind: str, shown: str, max_examples: int
           ) -> dict[str, Any]:
  """What the file holds: examples, splits, labels; DataError if unusable.

  Reads it as the pipeline will: every record (the reader names the line
  of an error), the 80/10/10 split by a hash of each text, and
  `tasks.check_trainable` on the training split.
  """
  if kind not in KINDS:
    raise DataError(f"kind {kind!r}: use one of {', '.join(KINDS)}")
  try:
    records = formats.read_file(path, kind)
    if not records:
      raise DataError(f"{path}: no examples")
    if len(records) > max_examples:
      raise DataError(f"{path}: {len(records)} examples; this server takes "
                      f"at most {max_examples} (config.serve.max_examples)")
    task = tasks_lib.get_task(f"{kind}:{path}")
    splits = {s: task.load(s, None) for s in ("train", "validation", "test")}
    if not splits["train"]:
      raise DataError(f"{path}: no example falls in the train split (80% of "
                      "the examples, by a hash of each text); add examples")
    tasks_lib.check_trainable(task, splits["train"])
  except UserError as e:
    raise DataError(public(str(e), path, shown)) from None
  return {"examples": len(records), "kind": kind, "class": FAMILY[kind],
          "splits": {s: len(r) for s, r in splits.items()},
          **_labels(kind, records)}


# ----------------------------------------------------------------------------
# A job's ranking and its views.


def _order(scores: Mapping[str, float]) -> list[str]:
  return rank_lib.rank_order(dict(scores))


def pca_2d(x: np.ndarray) -> np.ndarray:
  """[n, d] -> [n, 2] on the first two principal components (signs fixed:
  each axis's largest coordinate is positive)."""
  x = x - x.mean(0, keepdims=True)
  if len(x) < 2:
    return np.zeros((len(x), 2))
  u, s, _ = np.linalg.svd(x, full_matrices=False)
  xy = np.pad(u[:, :2] * s[:2], ((0, 0), (0, max(0, 2 - len(s)))))
  for k in range(2):
    if xy[np.argmax(np.abs(xy[:, k])), k] < 0:
      xy[:, k] *= -1
  return xy


def task_map(loaded: Mapping[str, Mapping[str, Any]],
             target: str = "") -> list[dict[str, Any]]:
  """Points of a 2-D PCA of the tasks' TaskEmb: the shared components, each
  L2-normalised, concatenated. `target` is marked."""
  names = sorted(n for n, t in loaded.items() if t["taskemb"])
  if len(names) < 2:
    return []
  comps = sorted(set.intersection(*(set(loaded[n]["taskemb"])
                                    for n in names)))
  if not comps:
    return []
  rows = [np.concatenate([np.asarray(loaded[n]["taskemb"][c], np.float64)
                          / max(np.linalg.norm(loaded[n]["taskemb"][c]), 1e-30)
                          for c in comps]) for n in names]
  xy = pca_2d(np.stack(rows))
  return [{"name": n, "class": loaded[n]["entry"].get("family", "?"),
           "x": float(x), "y": float(y), "target": n == target}
          for n, (x, y) in zip(names, xy)]


def agreement(views: Mapping[str, Mapping[str, float]], top_k: int
              ) -> dict[str, int]:
  """Sources two views both have in their top k, per pair of views."""
  tops = {v: set(_order(s)[:top_k]) for v, s in views.items()}
  names = list(views)
  return {f"{a}/{b}": len(tops[a] & tops[b])
          for i, a in enumerate(names) for b in names[i + 1:]}


def class_warning(order: Sequence[str], classes: Mapping[str, str],
                  target_class: str, top_k: int) -> str | None:
  """A warning when most of the best sources are of another class."""
  top = list(order[:top_k])
  other = [n for n in top if classes[n] != target_class]
  if not top or 2 * len(other) <= len(top):
    return None
  kinds = sorted({classes[n] for n in other})
  return (f"{len(other)} of the best {len(top)} sources are {' / '.join(kinds)}"
          f" tasks, not {target_class} like yours: transfer across task "
          "classes is less reliable; prefer the best source of your class")


def build_result(*, target: str, kind: str | None, method: str,
                 views: Mapping[str, Mapping[str, float]],
                 loaded: Mapping[str, Mapping[str, Any]],
                 descriptions: Mapping[str, str], top_k: int,
                 order: Sequence[str] | None = None) -> dict[str, Any]:
  """The result of a job: rows in the order of `method`'s view.

  `views`: {view name: {source: score}}, the first being `method`'s (the
  data-based ranking, or 'description' alone); `order` its ranking (default:
  by score, ties by name).
  """
  primary = views[method]
  order = list(order or _order(primary))
  ranks = {v: {n: i for i, n in enumerate(_order(s), 1)}
           for v, s in views.items()}
  tops = {v: set(_order(s)[:top_k]) for v, s in views.items()}
  classes = {n: loaded[n]["entry"].get("family", "?") for n in order}
  rows = []
  for i, n in enumerate(order, 1):
    e = loaded[n]["entry"]
    rows.append({
        "rank": i, "source": n, "class": classes[n],
        "score": float(primary[n]), "examples": e.get("num_examples"),
        "description": descriptions.get(n, ""),
        "scores": {v: float(s[n]) for v, s in views.items() if n in s},
        "ranks": {v: r[n] for v, r in ranks.items() if n in r},
        "top_in": [v for v in views if n in tops[v]]})
  warnings = []
  if kind is not None:
    w = class_warning(order, classes, FAMILY[kind], top_k)
    if w:
      warnings.append(w)
  return {"target": target, "kind": kind,
          "class": FAMILY[kind] if kind else None, "method": method,
          "views": list(views), "top_k": top_k,
          "agreement": agreement(views, top_k), "ranking": rows,
          "warnings": warnings}


def ranking_csv(result: Mapping[str, Any]) -> str:
  """The ranking as CSV: one row per source, a rank and score per view."""
  views = result["views"]
  out = io.StringIO()
  w = csv.writer(out)
  w.writerow(["rank", "source", "class", "score", "examples"]
             + [f"{v}_{x}" for v in views for x in ("rank", "score")]
             + ["top_in", "description"])
  for r in result["ranking"]:
    w.writerow([r["rank"], r["source"], r["class"], f"{r['score']:.6g}",
                r["examples"]]
               + [x for v in views for x in (
                   r["ranks"].get(v, ""),
                   f"{r['scores'][v]:.6g}" if v in r["scores"] else "")]
               + [" ".join(r["top_in"]), r["description"]])
  return out.getvalue()


def rank_job(config: ml_collections.ConfigDict, workdir: str, *,
             kind: str | None, data_path: str | None, description: str,
             shown: str, encoder: description_lib.Encoder | None
             ) -> tuple[dict[str, Any], dict[str, Any] | None]:
  """Ranks the library's tasks for a submitted task: (result, target).

  With data: the `rank` stage on ``<kind>:<data_path>`` in `workdir` (the
  CLI's path), the TextEmb view, and the description's view when there is
  a description. Description only: the description's view alone. `target`
  is the new task's library record (entry, textemb, taskemb), or None.
  """
  lib = config.library
  loaded, _ = library_lib.load_all(lib, skip_unreadable=True)
  descriptions = {n: description_lib.task_description(n, t["entry"])
                  for n, t in loaded.items()}
  views: dict[str, dict[str, float]] = {}
  target, order, extra = None, None, {}
  if data_path:
    cfg = config.copy_and_resolve_references()
    with cfg.unlocked():
      cfg.stage, cfg.task = "rank", f"{kind}:{data_path}"
    try:
      ranked = rank_lib.rank_stage(cfg, workdir)
      target = library_lib.load(ranked["target_library"], cfg.task)
    except UserError as e:
      raise type(e)(public(str(e), data_path, shown)) from None
    order = [s["name"] for s in ranked["sources"]]
    views[ranked["method"]] = {s["name"]: s["score"]
                               for s in ranked["sources"]}
    if ranked["method"] != "textemb" and target["textemb"] is not None:
      with_text = {n: loaded[n] for n in order
                   if loaded[n]["textemb"] is not None}
      views["textemb"] = rank_lib.method_scores("textemb", target, with_text)
    extra = {"scope": ranked["scope"], "skipped": [
        {"name": s["name"], "reason": public(s["reason"], data_path, shown)}
        for s in ranked["skipped"]]}
  if description:
    names = order or sorted(loaded)
    views["description"] = description_lib.description_scores(
        description, {n: descriptions[n] for n in names}, encoder)
    if not views["description"]:
      del views["description"]
  if not views:
    raise DataError("no library task has a description to compare with; "
                    "submit data")
  method = next(iter(views))
  result = build_result(target=shown, kind=kind, method=method, views=views,
                        loaded=loaded, descriptions=descriptions,
                        top_k=int(config.serve.top_k), order=order)
  result.update(extra)
  result["library"] = os.path.basename(os.path.normpath(lib))
  mapped = dict(loaded)
  if target is not None:
    mapped[shown] = target
  result["map"] = task_map(mapped, shown if target is not None else "")
  return result, target
