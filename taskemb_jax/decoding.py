"""From model outputs on features back to the records: answers and tags.

* `postprocess_qa`: the best answer span of each QA record over all its
  windows (or no answer, SQuAD 2.0 style), with scores;
* `decode_tags`: one tag per original word from per-sub-token predictions
  (a word's tag is that of its first sub-token; truncated words get the
  tag of index 0);
* `decode_records`: what the outputs predict for each record, as JSON
  values (what the processes of a job gather to score a split).

Knows nothing of the model or the tasks.
"""

from __future__ import annotations

import collections
import math
from typing import Any, Mapping, Sequence

import numpy as np

from taskemb_jax.errors import DataError

Features = dict[str, list]
Record = dict[str, Any]


def record_id(record: Record, index: int) -> str:
  """A record's id (QA), or its index when it has none."""
  rid = record.get("id")
  return str(index) if rid is None else str(rid)


def _row(values, f: int, n: int) -> np.ndarray:
  return np.asarray(values[f], dtype=np.float64)[:n]


def postprocess_qa(start_logits,
                   end_logits,
                   features: Features,
                   records: Sequence[Record],
                   *,
                   n_best: int = 20,
                   max_answer_length: int = 30,
                   allow_no_answer: bool = False,
                   null_threshold: float = 0.0) -> dict[str, dict[str, Any]]:
  """Turns per-window start/end logits into one answer string per record.

  HF run_squad logic: over all windows of a record, the n_best start and end
  tokens of each window are paired; a span is valid when start <= end,
  end - start + 1 <= max_answer_length and both tokens lie in the context.
  Candidates are taken among context tokens only (the n_best top-k is
  computed after masking non-context tokens, so a window always offers
  valid spans when it has context). The span score is start + end logit;
  the null score of a record is the minimum over its windows of the
  [CLS] start + end logits.

  Args:
    start_logits, end_logits: [num_features, L] arrays or lists of 1-D rows
      (L >= each feature's length, e.g. padded bucket lengths).
    features: `encode('qa', records, ...)` output.
    records: the QA records the features came from.
    allow_no_answer: SQuAD 2.0: predict "" when
      null_score - best_span_score > null_threshold (or no valid span).

  Returns:
    {record id: {"text": answer string (``context[offsets[start][0]:
    offsets[end][1]]``, "" when none), "score": best span score (-inf when no
    valid span), "null_score": float}}.
  """
  by_record: dict[int, list[int]] = collections.defaultdict(list)
  for f, ex in enumerate(features["example_index"]):
    if not 0 <= ex < len(records):
      raise ValueError(f"feature {f} points at record {ex}, but there are "
                       f"{len(records)} records")
    by_record[ex].append(f)

  results: dict[str, dict[str, Any]] = {}
  for r, record in enumerate(records):
    rid = record_id(record, r)
    if rid in results:
      raise DataError(f"QA record id {rid!r} occurs twice")
    context = record["context"]
    null_score = math.inf
    best_score, best_text = -math.inf, None
    for f in by_record.get(r, []):
      offsets = features["offsets"][f]
      n = len(offsets)
      starts, ends = _row(start_logits, f, n), _row(end_logits, f, n)
      null_score = min(null_score, float(starts[0] + ends[0]))
      mask = np.asarray(features["context_mask"][f], bool)[:n]
      if not mask.any():
        continue
      ctx = np.flatnonzero(mask)
      top_s = ctx[np.argsort(-starts[ctx], kind="stable")[:n_best]]
      top_e = ctx[np.argsort(-ends[ctx], kind="stable")[:n_best]]
      for s in top_s:
        for e in top_e:
          if e < s or e - s + 1 > max_answer_length:
            continue
          score = float(starts[s] + ends[e])
          if score > best_score:
            best_score = score
            best_text = context[int(offsets[s][0]):int(offsets[e][1])]
    if null_score == math.inf:
      null_score = 0.0
    text = best_text if best_text is not None else ""
    if allow_no_answer and (best_text is None or
                            null_score - best_score > null_threshold):
      text = ""
    results[rid] = {"text": text, "score": best_score, "null_score": null_score}
  return results


def decode_tags(logits_or_ids,
                features: Features,
                records: Sequence[Record],
                id_to_label: Mapping[int, str] | Sequence[str]) -> list[list[str]]:
  """Predicted tag per original word, read at the word's first sub-token.

  Args:
    logits_or_ids: per feature either logits [L, num_tags] or tag ids [L]
      (a [num_features, L(, num_tags)] array or a list of rows; L may exceed
      the feature's length, e.g. the bucket length).
    features: `encode('tagging', records, ...)` output.
    records: the tagging records.
    id_to_label: tag id -> tag name (a mapping or a sequence).

  Returns:
    One list of tags per record, as long as its ``tokens``. Words truncated
    away get "O" if that tag exists, else the tag of id 0.
  """
  if isinstance(id_to_label, Mapping):
    names = dict(id_to_label)
  else:
    names = dict(enumerate(id_to_label))
  if not names:
    raise ValueError("id_to_label is empty")
  default = "O" if "O" in names.values() else names[min(names)]
  out = [[default] * len(r["tokens"]) for r in records]
  for f, ex in enumerate(features["example_index"]):
    row = np.asarray(logits_or_ids[f])
    ids = row.argmax(-1) if row.ndim == 2 else row
    seen = set()
    for pos, w in enumerate(features["word_ids"][f]):
      if w is None or w in seen:
        continue
      seen.add(w)
      out[ex][w] = names[int(ids[pos])]
  return out


def decode_records(kind: str, outputs: Mapping[str, Any], features: Features,
                   records: Sequence[Record],
                   labels: Sequence[str] | None, *,
                   allow_no_answer: bool = False) -> list[Any]:
  """What per-feature outputs predict for each of `records` (those whose
  features `features` are), as JSON values.

  Args:
    kind: the task kind.
    outputs: per-feature outputs: 'pred' ([num_features] label ids or
      numbers, or per-token tag ids), 'start_logits' / 'end_logits' (QA).
    features: the records' features (input_pipeline.encode's output).
    records: the records, in order.
    labels: the label names (classification, tagging).
    allow_no_answer: QA: the empty answer is a candidate.

  Returns:
    One value per record: [pred, gold] (classification: label ids;
    regression: numbers), the answer text (QA), the tag names (tagging).
  """
  if not records:
    return []
  if kind in ("classification", "regression"):
    cast = int if kind == "classification" else float
    return [[cast(p), cast(g)] for p, g in zip(outputs["pred"],
                                               features["label"])]
  if kind == "qa":
    answers = postprocess_qa(outputs["start_logits"], outputs["end_logits"],
                             features, records,
                             allow_no_answer=allow_no_answer)
    return [answers[record_id(r, j)]["text"] for j, r in enumerate(records)]
  return decode_tags(outputs["pred"], features, records, list(labels))
