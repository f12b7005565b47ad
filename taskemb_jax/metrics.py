"""Evaluation metrics for the paper's three task classes (host side, numpy).

* Classification: `confusion_matrix` accumulates (optionally weighted) counts;
  `classification_metrics` turns one matrix into accuracy, F1, macro-F1 and
  the Matthews correlation (sklearn's multi-class definition).
* Regression: `regression_metrics` (Pearson, Spearman, MSE).
* Extractive QA: the official SQuAD v1.1 / v2.0 normalisation, exact match
  and token-overlap F1 (`squad_metrics`, in percent like the official script).
* Sequence labelling: `get_entities` (conlleval chunk semantics for IOB1,
  IOB2, BIOES/BILOU; runs of a plain tag otherwise) and `tagging_metrics`
  (token accuracy, plus micro span P/R/F1 when the tags use a BIO scheme).

Classification, regression and tagging scores are fractions in [0, 1] (or
[-1, 1] for correlations); SQuAD scores are percentages in [0, 100].
Undefined scores (constant inputs, no spans) are reported as 0.0, never NaN.
"""

from __future__ import annotations

import collections
import re
import string
from typing import Iterable, Sequence

import numpy as np

# ----------------------------------------------------------------------------
# Classification.


def confusion_matrix(
    pred: np.ndarray,
    gold: np.ndarray,
    num_classes: int,
    weights: np.ndarray | None = None,
) -> np.ndarray:
  """Counts (gold, predicted) pairs.

  Args:
    pred: [n] int, predicted class ids in [0, num_classes).
    gold: [n] int, gold class ids in [0, num_classes).
    num_classes: number of classes C.
    weights: optional [n] per-example weights (e.g. 0 for padding).

  Returns:
    [C, C] float64; entry [g, p] is the (weighted) number of examples with
    gold class g predicted as p (rows gold, columns predicted).
  """
  pred = np.asarray(pred).reshape(-1)
  gold = np.asarray(gold).reshape(-1)
  if pred.shape != gold.shape:
    raise ValueError(f"pred {pred.shape} and gold {gold.shape} differ in size")
  if num_classes < 1:
    raise ValueError(f"num_classes must be >= 1, got {num_classes}")
  for name, ids in (("pred", pred), ("gold", gold)):
    if ids.size and not np.issubdtype(ids.dtype, np.integer):
      raise ValueError(f"{name} must hold integer class ids, got {ids.dtype}")
    if ids.size and (ids.min() < 0 or ids.max() >= num_classes):
      raise ValueError(f"{name} has class ids outside [0, {num_classes})")
  if weights is not None:
    weights = np.asarray(weights, dtype=np.float64).reshape(-1)
    if weights.shape != pred.shape:
      raise ValueError(f"weights {weights.shape} and pred {pred.shape} differ")
  flat = gold.astype(np.int64) * num_classes + pred.astype(np.int64)
  counts = np.bincount(flat, weights=weights, minlength=num_classes**2)
  return counts.astype(np.float64).reshape(num_classes, num_classes)


def _safe_div(num: np.ndarray | float, den: np.ndarray | float) -> np.ndarray:
  """num / den elementwise, 0.0 where den == 0."""
  num = np.asarray(num, dtype=np.float64)
  den = np.asarray(den, dtype=np.float64)
  out = np.zeros(np.broadcast(num, den).shape)
  np.divide(num, den, out=out, where=den != 0)
  return out


def classification_metrics(cm: np.ndarray) -> dict[str, float]:
  """Scores from a confusion matrix.

  Args:
    cm: [C, C] counts, rows gold, columns predicted (see `confusion_matrix`).

  Returns:
    Dict with
    * ``accuracy``: trace / total.
    * ``f1``: F1 of class 1 when C == 2, else ``macro_f1``.
    * ``macro_f1``: unweighted mean of per-class F1 over the classes that occur
      in gold or predictions (sklearn's default label set); a class's F1 is
      0.0 when it has no true positives.
    * ``mcc``: Matthews correlation, multi-class form (Gorodkin 2004), equal
      to ``sklearn.metrics.matthews_corrcoef``; 0.0 when undefined.

  Raises:
    ValueError: if `cm` is not square or holds no examples.
  """
  cm = np.asarray(cm, dtype=np.float64)
  if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
    raise ValueError(f"confusion matrix must be square, got {cm.shape}")
  total = cm.sum()
  if total <= 0:
    raise ValueError("confusion matrix holds no examples")
  tp = np.diag(cm)
  gold_count = cm.sum(axis=1)  # [C]
  pred_count = cm.sum(axis=0)  # [C]
  # F1 = 2tp / (2tp + fp + fn) = 2tp / (gold + pred).
  per_class_f1 = _safe_div(2.0 * tp, gold_count + pred_count)
  present = (gold_count + pred_count) > 0
  macro_f1 = float(per_class_f1[present].mean())
  n_correct = tp.sum()
  cov_gp = n_correct * total - gold_count @ pred_count
  cov_pp = total**2 - pred_count @ pred_count
  cov_gg = total**2 - gold_count @ gold_count
  mcc = 0.0 if cov_pp * cov_gg == 0 else cov_gp / np.sqrt(cov_gg * cov_pp)
  return {
      "accuracy": float(n_correct / total),
      "f1": float(per_class_f1[1]) if cm.shape[0] == 2 else macro_f1,
      "macro_f1": macro_f1,
      "mcc": float(np.clip(mcc, -1.0, 1.0)),
  }


# ----------------------------------------------------------------------------
# Regression and rank correlation.


def average_ranks(x: np.ndarray) -> np.ndarray:
  """1-based ranks of `x` in ascending order, ties get their average rank.

  Equal to ``scipy.stats.rankdata(x, method="average")``.

  Args:
    x: [n] values (no NaN).

  Returns:
    [n] float64 ranks.
  """
  x = np.asarray(x, dtype=np.float64).reshape(-1)
  if np.isnan(x).any():
    raise ValueError("cannot rank NaN values")
  n = x.shape[0]
  order = np.argsort(x, kind="stable")
  xs = x[order]
  is_start = np.ones(n, dtype=bool)
  is_start[1:] = xs[1:] != xs[:-1]
  starts = np.flatnonzero(is_start)  # 0-based first position of each group.
  ends = np.append(starts[1:], n)  # Exclusive end of each group.
  group_rank = (starts + 1 + ends) / 2.0  # Mean of ranks starts+1 .. ends.
  ranks = np.empty(n, dtype=np.float64)
  ranks[order] = group_rank[np.cumsum(is_start) - 1]
  return ranks


def _paired(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  x = np.asarray(x, dtype=np.float64).reshape(-1)
  y = np.asarray(y, dtype=np.float64).reshape(-1)
  if x.shape != y.shape:
    raise ValueError(f"inputs differ in size: {x.shape} vs {y.shape}")
  if x.size == 0:
    raise ValueError("inputs are empty")
  return x, y


def pearson(x: np.ndarray, y: np.ndarray) -> float:
  """Pearson correlation of [n] and [n]; 0.0 if either input is constant."""
  x, y = _paired(x, y)
  if np.all(x == x[0]) or np.all(y == y[0]):
    return 0.0
  xc = x - x.mean()
  yc = y - y.mean()
  den = np.sqrt((xc @ xc) * (yc @ yc))
  if den == 0:
    return 0.0
  return float(np.clip((xc @ yc) / den, -1.0, 1.0))


def spearman(x: np.ndarray, y: np.ndarray) -> float:
  """Spearman correlation of [n] and [n] (Pearson of average ranks).

  Equal to ``scipy.stats.spearmanr``; 0.0 if either input is constant.
  """
  x, y = _paired(x, y)
  return pearson(average_ranks(x), average_ranks(y))


def regression_metrics(pred: np.ndarray, gold: np.ndarray) -> dict[str, float]:
  """Pearson, Spearman and mean squared error of [n] predictions vs [n] gold.

  Correlations are 0.0 (not NaN) when either side is constant.
  """
  pred, gold = _paired(pred, gold)
  return {
      "pearson": pearson(pred, gold),
      "spearman": spearman(pred, gold),
      "mse": float(np.mean((pred - gold) ** 2)),
  }


# ----------------------------------------------------------------------------
# Extractive QA (SQuAD v1.1 / v2.0 official evaluation).

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(s: str) -> str:
  """Lower-cases, drops ASCII punctuation and articles, collapses whitespace.

  The normalisation of the official SQuAD v1.1 and v2.0 evaluation scripts.
  """
  s = s.lower()
  s = "".join(ch for ch in s if ch not in _PUNCTUATION)
  s = _ARTICLES.sub(" ", s)
  return " ".join(s.split())


def _gold_texts(gold_answers: Sequence[str]) -> list[str]:
  """SQuAD v2.0 convention: drop golds that normalise to ''; none -> ['']."""
  golds = [a for a in gold_answers if normalize_answer(a)]
  return golds or [""]


def _token_f1(prediction: str, gold: str) -> float:
  pred_toks = normalize_answer(prediction).split()
  gold_toks = normalize_answer(gold).split()
  if not pred_toks or not gold_toks:
    # No-answer: F1 is 1 iff both are empty (SQuAD v2.0 script).
    return float(pred_toks == gold_toks)
  common = collections.Counter(pred_toks) & collections.Counter(gold_toks)
  num_same = sum(common.values())
  if num_same == 0:
    return 0.0
  precision = num_same / len(pred_toks)
  recall = num_same / len(gold_toks)
  return 2 * precision * recall / (precision + recall)


def exact_match_score(prediction: str, gold_answers: Sequence[str]) -> float:
  """1.0 if the normalised prediction equals any normalised gold, else 0.0.

  ``gold_answers == []`` means "no answer": only a prediction that normalises
  to the empty string (e.g. "") matches.
  """
  norm = normalize_answer(prediction)
  return float(any(norm == normalize_answer(g) for g in _gold_texts(gold_answers)))


def f1_score(prediction: str, gold_answers: Sequence[str]) -> float:
  """Max over golds of the official SQuAD token-overlap F1, in [0, 1].

  ``gold_answers == []`` means "no answer" (see `exact_match_score`).
  """
  return max(_token_f1(prediction, g) for g in _gold_texts(gold_answers))


def squad_metrics(
    predictions: dict[str, str], references: dict[str, Sequence[str]]
) -> dict[str, float]:
  """Exact match and F1 over a SQuAD-style evaluation set, in percent.

  Args:
    predictions: question id -> predicted answer text ("" = no answer).
    references: question id -> gold answer texts ([] = unanswerable).

  Returns:
    Dict with ``exact_match`` and ``f1`` (means over all reference ids,
    0..100). When the references hold both answerable and unanswerable
    questions, also ``has_ans_exact``, ``has_ans_f1``, ``no_ans_exact`` and
    ``no_ans_f1`` (means over each subset). A reference id without a
    prediction scores 0 (as in the v1.1 script); extra predictions are
    ignored.

  Raises:
    ValueError: if `references` is empty.
  """
  if not references:
    raise ValueError("no references to score")
  em, f1, has_ans = [], [], []
  for qid, golds in references.items():
    has_ans.append(bool(golds))
    if qid not in predictions:
      em.append(0.0)
      f1.append(0.0)
      continue
    em.append(exact_match_score(predictions[qid], golds))
    f1.append(f1_score(predictions[qid], golds))
  em, f1, has_ans = np.array(em), np.array(f1), np.array(has_ans)
  out = {"exact_match": 100.0 * em.mean(), "f1": 100.0 * f1.mean()}
  if has_ans.any() and not has_ans.all():
    for prefix, mask in (("has_ans", has_ans), ("no_ans", ~has_ans)):
      out[f"{prefix}_exact"] = 100.0 * em[mask].mean()
      out[f"{prefix}_f1"] = 100.0 * f1[mask].mean()
  return {k: float(v) for k, v in out.items()}


# ----------------------------------------------------------------------------
# Sequence labelling.

# A scheme prefix: B/I/E/S (BIOES) or L/U (BILOU, mapped to E/S), then "-".
_PREFIXED = re.compile(r"^([BIESLU])-(.+)$")
_BILOU_TO_BIOES = {"L": "E", "U": "S"}


def _split_tag(tag: str) -> tuple[str, str]:
  """Tag -> (prefix, type): 'O' -> ('O', ''), 'B-PER' -> ('B', 'PER').

  BILOU's L/U become E/S; a tag without a scheme prefix (e.g. 'NN') is
  treated as an inside tag of its own type, ('I', 'NN').
  """
  if tag == "O":
    return "O", ""
  match = _PREFIXED.match(tag)
  if match is None:
    return "I", tag
  prefix, typ = match.groups()
  return _BILOU_TO_BIOES.get(prefix, prefix), typ


def _chunk_ends(prev: str, prev_type: str, cur: str, cur_type: str) -> bool:
  """conlleval's endOfChunk: does a chunk end between prev and cur?"""
  if prev in ("E", "S"):
    return True
  if prev in ("B", "I") and cur in ("B", "S", "O"):
    return True
  return prev != "O" and prev_type != cur_type


def _chunk_starts(prev: str, prev_type: str, cur: str, cur_type: str) -> bool:
  """conlleval's startOfChunk: does a chunk start at cur?"""
  if cur in ("B", "S"):
    return True
  if prev in ("E", "S", "O") and cur in ("E", "I"):
    return True
  return cur != "O" and prev_type != cur_type


def get_entities(tags: Sequence[str]) -> list[tuple[str, int, int]]:
  """Chunks of one tag sequence, with conlleval semantics.

  Handles IOB2 (B-/I-), IOB1 (an I- tag after O or after a chunk of another
  type starts a new chunk), BIOES (B-/I-/E-/S-) and BILOU (L-/U- for E-/S-).
  Tags without a scheme prefix (other than "O") are inside tags of their own
  type, so each maximal run of the same plain tag is one chunk.

  Args:
    tags: [T] tag strings.

  Returns:
    (type, start, end) per chunk in order, with `end` exclusive
    (``tags[start:end]`` is the chunk).
  """
  entities = []
  prev, prev_type, start = "O", "", None
  for i, tag in enumerate(list(tags) + ["O"]):
    cur, cur_type = _split_tag(tag)
    if start is not None and _chunk_ends(prev, prev_type, cur, cur_type):
      entities.append((prev_type, start, i))
      start = None
    if _chunk_starts(prev, prev_type, cur, cur_type):
      start = i
    prev, prev_type = cur, cur_type
  return entities


def uses_span_scheme(tags: Iterable[str]) -> bool:
  """True if any tag carries a B-/I-/E-/S-/L-/U- scheme prefix."""
  return any(_PREFIXED.match(tag) for tag in tags)


def tagging_metrics(
    pred_seqs: Sequence[Sequence[str]], gold_seqs: Sequence[Sequence[str]]
) -> dict[str, float]:
  """Token accuracy, plus span scores for BIO-style tag sets.

  Args:
    pred_seqs: [num_seqs][T_i] predicted tags.
    gold_seqs: [num_seqs][T_i] gold tags (same lengths as `pred_seqs`).

  Returns:
    Dict with ``accuracy`` (token level, the primary metric for plain tag
    sets such as POS). If any gold or predicted tag has a scheme prefix
    (see `uses_span_scheme`), also ``span_precision``, ``span_recall`` and
    ``span_f1``: micro-averaged over all chunks of all sequences, a chunk
    counting as correct when its type, start and end all match (conlleval);
    0.0 when undefined.

  Raises:
    ValueError: on differing numbers or lengths of sequences, or no tokens.
  """
  if len(pred_seqs) != len(gold_seqs):
    raise ValueError(
        f"{len(pred_seqs)} predicted vs {len(gold_seqs)} gold sequences")
  correct_tokens = total_tokens = 0
  all_tags = set()
  for i, (pred, gold) in enumerate(zip(pred_seqs, gold_seqs)):
    if len(pred) != len(gold):
      raise ValueError(
          f"sequence {i}: {len(pred)} predicted vs {len(gold)} gold tags")
    correct_tokens += sum(p == g for p, g in zip(pred, gold))
    total_tokens += len(gold)
    all_tags.update(pred)
    all_tags.update(gold)
  if total_tokens == 0:
    raise ValueError("no tokens to score")
  out = {"accuracy": correct_tokens / total_tokens}
  if uses_span_scheme(all_tags):
    n_pred = n_gold = n_correct = 0
    for pred, gold in zip(pred_seqs, gold_seqs):
      pred_spans = set(get_entities(pred))
      gold_spans = set(get_entities(gold))
      n_pred += len(pred_spans)
      n_gold += len(gold_spans)
      n_correct += len(pred_spans & gold_spans)
    precision = float(_safe_div(n_correct, n_pred))
    recall = float(_safe_div(n_correct, n_gold))
    out["span_precision"] = precision
    out["span_recall"] = recall
    out["span_f1"] = float(
        _safe_div(2 * precision * recall, precision + recall))
  return {k: float(v) for k, v in out.items()}
