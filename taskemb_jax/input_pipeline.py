"""From task records to fixed-shape numpy batches, and from predictions back.

The pipeline knows nothing of the model or the tasks. It has three stages
(2 in `taskemb_jax.batching`, 3 in `taskemb_jax.decoding`; their names are
importable from here too):

1. `encode` turns the *records* of a task (see `taskemb_jax.tasks`) into
   *features*: a dict of equal-length lists with one entry per model input
   (for QA one entry per context window). Ragged arrays, no padding yet.
2. `batches` groups features into length buckets and yields dicts of numpy
   arrays of fixed shape ``[batch_size, bucket_len]`` (padding rows get weight
   0, so evaluation sees every feature exactly once).
3. `postprocess_qa` / `decode_tags` map model outputs on features back onto
   the records (answer strings, one tag per original word).

Conventions (BERT style, as in the Hugging Face ``run_squad``/``run_ner``
scripts used by Vu et al. 2020):

* every ``input_ids`` starts with [CLS] and ends with [SEP];
* QA positions are token indices within a window, 0 ([CLS]) when the answer is
  not inside the window or the record has no answer;
* tagging labels sit on the first sub-token of each word, `IGNORE` elsewhere.
"""

from __future__ import annotations

import math
import os
from typing import Any, Mapping, Sequence

import numpy as np

# The batching and decoding names stay importable from here.
from taskemb_jax.batching import (  # noqa: F401  pylint: disable=unused-import
    IGNORE, batches, bucket_lengths, num_batches)
from taskemb_jax.decoding import (  # noqa: F401  pylint: disable=unused-import
    decode_tags, postprocess_qa, record_id)
from taskemb_jax.errors import ConfigError, DataError

_KINDS = ("classification", "regression", "qa", "tagging")
# Records per tokenizer call: bounds memory, keeps the batch fast path.
_CHUNK = 1024

Features = dict[str, list]
Record = dict[str, Any]


# ---------------------------------------------------------------- tokenizer


_TOKENIZERS: dict[str, Any] = {}


def _load_tokenizer(name_or_path: str):
  """Loads a *fast* (Rust, offset-tracking) tokenizer, once per process.

  Args:
    name_or_path: a local folder holding ``tokenizer.json`` or ``vocab.txt``
      (a WordPiece vocabulary alone is read as a lower-case BERT tokenizer when
      the folder has no tokenizer config), or a Hugging Face hub name.

  Returns:
    A ``transformers.PreTrainedTokenizerFast``.

  Raises:
    DataError: the folder lacks tokenizer files, the hub lookup failed (e.g.
      offline), or the tokenizer is not a fast one.
  """
  # transformers advises at import that it found no PyTorch; we use only its
  # tokenizers, so the advice does not apply.
  os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
  from transformers import AutoTokenizer  # pylint: disable=import-outside-toplevel

  if os.path.isdir(name_or_path):
    has_json = os.path.isfile(os.path.join(name_or_path, "tokenizer.json"))
    has_vocab = os.path.isfile(os.path.join(name_or_path, "vocab.txt"))
    if not (has_json or has_vocab):
      raise DataError(
          f"tokenizer folder {name_or_path!r} has neither tokenizer.json nor "
          "vocab.txt")
    try:
      tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    except Exception as e:  # pylint: disable=broad-except
      if not has_vocab:
        raise DataError(
            f"cannot load the tokenizer in {name_or_path!r}: {e}") from e
      # A bare vocab.txt (no config telling AutoTokenizer the class). Note:
      # BertTokenizerFast(vocab_file=...) would silently build a tiny vocab;
      # from_pretrained(folder) reads vocab.txt.
      from transformers import BertTokenizerFast  # pylint: disable=import-outside-toplevel
      try:
        tokenizer = BertTokenizerFast.from_pretrained(name_or_path)
      except Exception as e2:  # pylint: disable=broad-except
        raise DataError(
            f"cannot load the tokenizer in {name_or_path!r}: {e2}") from e2
  elif os.path.exists(name_or_path):
    raise DataError(
        f"tokenizer {name_or_path!r} is a file; give the folder that holds "
        "tokenizer.json or vocab.txt")
  else:
    try:
      tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    except Exception as e:  # pylint: disable=broad-except
      raise DataError(
          f"cannot load tokenizer {name_or_path!r}: it is not a local folder "
          "and the Hugging Face hub lookup failed (offline? misspelt?); give "
          f"a folder with tokenizer.json or vocab.txt. Cause: {e}") from e
  if not getattr(tokenizer, "is_fast", False):
    raise DataError(
        f"tokenizer {name_or_path!r} is not a fast tokenizer (character "
        "offsets are needed); provide a tokenizer.json")
  return tokenizer


def load_tokenizer(name_or_path: str):
  """`_load_tokenizer`, cached per process by name or folder."""
  key = os.path.abspath(name_or_path) if os.path.isdir(name_or_path) \
      else name_or_path
  if key not in _TOKENIZERS:
    _TOKENIZERS[key] = _load_tokenizer(name_or_path)
  return _TOKENIZERS[key]


def _check_tokenizer(tokenizer) -> None:
  if not getattr(tokenizer, "is_fast", False):
    raise ValueError("encode needs a fast tokenizer (see load_tokenizer)")


# ------------------------------------------------------------------- labels


def label_vocabulary(kind: str, records: Sequence[Record]) -> tuple[str, ...]:
  """Sorted label names (classification) or tag names (tagging) in `records`.

  Used when a task does not fix its labels; non-string labels are turned
  into strings (`encode` looks up ``str(label)`` as a fallback).

  Raises:
    ValueError: `kind` has no label vocabulary (regression, qa).
    DataError: a record lacks its labels, or no label occurs at all.
  """
  names: set[str] = set()
  if kind == "classification":
    for i, r in enumerate(records):
      label = r.get("label")
      if label is None:
        raise DataError(f"record {i}: classification record has no 'label'")
      names.add(str(label))
  elif kind == "tagging":
    for i, r in enumerate(records):
      tags = r.get("tags")
      if not isinstance(tags, (list, tuple)):
        raise DataError(f"record {i}: tagging record has no 'tags' list")
      names.update(str(t) for t in tags)
  else:
    raise ValueError(f"kind {kind!r} has no label vocabulary")
  if not names:
    raise DataError(f"no {kind} labels found in {len(records)} records")
  return tuple(sorted(names))


def _label_id(label: Any, label_to_id: Mapping[str, int], where: str) -> int:
  if label is not None:
    if label in label_to_id:
      return int(label_to_id[label])
    if str(label) in label_to_id:
      return int(label_to_id[str(label)])
  known = ", ".join(repr(k) for k in sorted(label_to_id, key=str)[:20])
  raise DataError(f"{where}: unknown label {label!r} (known: {known})")


def _regression_value(label: Any, index: int) -> float:
  if isinstance(label, bool) or label is None:
    raise DataError(f"record {index}: regression label {label!r} is not a number")
  try:
    value = float(label)
  except (TypeError, ValueError):
    raise DataError(
        f"record {index}: regression label {label!r} is not a number") from None
  if not math.isfinite(value):
    raise DataError(f"record {index}: regression label {label!r} is not finite")
  return value


# ------------------------------------------------------------------- encode


def encode(kind: str,
           records: Sequence[Record],
           tokenizer,
           *,
           max_length: int,
           label_to_id: Mapping[str, int] | None = None,
           doc_stride: int = 128,
           max_query_length: int = 64) -> Features:
  """Tokenizes `records` of task kind `kind` into features.

  Args:
    kind: 'classification', 'regression', 'qa' or 'tagging'.
    records: records as described in `taskemb_jax.tasks`.
    tokenizer: a fast tokenizer (`load_tokenizer`).
    max_length: maximum number of tokens per feature, specials included.
    label_to_id: label (tag) name -> id; required for classification and
      tagging, ignored otherwise.
    doc_stride: QA only: number of tokens shared by consecutive context
      windows (the tokenizer's ``stride``, i.e. the overlap).
    max_query_length: QA only: questions are cut to this many tokens first.

  Returns:
    A dict of equal-length lists, one entry per feature (L_i = its length):

    * all kinds: ``input_ids`` (np.int32 [L_i]), ``token_type_ids``
      (np.int8 [L_i], segment 0 or 1; `batches` widens both to int32),
      ``example_index`` (int, index of the source record);
    * classification: ``label`` (int); regression: ``label`` (float);
    * qa: ``start_position``, ``end_position`` (int token indices, 0 = [CLS]
      when the answer is not in this window or there is none), ``offsets``
      (np.int32 [L_i, 2]: (char_start, char_end) of each token in the
      context, (-1, -1) for question and special tokens; an array rather
      than a list of tuples, which would cost ~45 KB per 384-token window,
      gigabytes for SQuAD), ``context_mask`` (np.bool_ [L_i], True on
      context tokens);
    * tagging: ``labels`` (np.int32 [L_i]; tag id on the first sub-token of
      each word, IGNORE elsewhere), ``word_ids`` (list of L_i word indices,
      None for specials), ``num_words`` (words in the record),
      ``num_words_kept`` (words with at least one token left after
      truncation; they always form a prefix).

  Raises:
    DataError: a malformed record, an unknown label/tag, a non-numeric
      regression target, or a QA answer that does not match its context.
    ConfigError: lengths that cannot work (see `_encode_qa`).
  """
  if kind not in _KINDS:
    raise ValueError(f"kind {kind!r} not in {_KINDS}")
  _check_tokenizer(tokenizer)
  if max_length < 4:
    raise ConfigError(f"max_length={max_length} is too small (need >= 4)")
  if kind in ("classification", "tagging") and label_to_id is None:
    raise ValueError(f"encode({kind!r}) needs label_to_id")
  if kind in ("classification", "regression"):
    return _encode_sequences(kind, records, tokenizer, max_length, label_to_id)
  if kind == "qa":
    return _encode_qa(records, tokenizer, max_length, doc_stride,
                      max_query_length)
  return _encode_tagging(records, tokenizer, max_length, label_to_id)


def _i32(values) -> np.ndarray:
  return np.asarray(values, dtype=np.int32)


def _segments(values) -> np.ndarray:
  """Token type ids (0 or 1) in one byte each: features of a large task are
  held for the whole run, and int32 would spend 3 more bytes per token."""
  return np.asarray(values, dtype=np.int8)


def _encode_sequences(kind, records, tokenizer, max_length,
                      label_to_id) -> Features:
  """Single sentences and sentence pairs, 'longest_first' truncation."""
  n = len(records)
  labels: list[int | float] = []
  singles, pairs = [], []
  for i, r in enumerate(records):
    text, pair = r.get("text"), r.get("text_pair")
    if not isinstance(text, str):
      raise DataError(f"record {i}: 'text' must be a string, got {text!r:.80}")
    if pair is not None and not isinstance(pair, str):
      raise DataError(
          f"record {i}: 'text_pair' must be a string or null, got {pair!r:.80}")
    if "label" not in r:
      raise DataError(f"record {i}: no 'label'")
    if kind == "classification":
      labels.append(_label_id(r["label"], label_to_id, f"record {i}"))
    else:
      labels.append(_regression_value(r["label"], i))
    (singles if pair is None else pairs).append(i)

  input_ids: list = [None] * n
  type_ids: list = [None] * n
  for group in (singles, pairs):
    for c in range(0, len(group), _CHUNK):
      idx = group[c:c + _CHUNK]
      texts = [records[i]["text"] for i in idx]
      second = ([records[i]["text_pair"] for i in idx]
                if records[idx[0]].get("text_pair") is not None else None)
      enc = tokenizer(texts, second, truncation="longest_first",
                      max_length=max_length, return_token_type_ids=True,
                      return_attention_mask=False)
      for j, i in enumerate(idx):
        input_ids[i] = _i32(enc["input_ids"][j])
        type_ids[i] = _segments(enc["token_type_ids"][j])
  return {"input_ids": input_ids, "token_type_ids": type_ids,
          "example_index": list(range(n)), "label": labels}


def _answer_char_span(context: str, text: str,
                      start: int) -> tuple[int, int] | None:
  """(char_start, char_end) of an answer in `context`, or None if it mismatches.

  An exact match ``context[start:start+len(text)] == text`` is used as is.
  Otherwise a *whitespace-stripped* match is accepted: the stripped answer
  text must occur at `start`, at `start` plus the answer's own leading
  whitespace, or at `start` plus the context's leading whitespace within the
  annotated span (datasets differ in whether answer_start / text include
  surrounding blanks). The returned span is then that of the stripped text.
  """
  if context[start:start + len(text)] == text:
    return start, start + len(text)
  stripped = text.strip()
  if not stripped:
    return None
  span = context[start:start + len(text)]
  for c in (start, start + len(text) - len(text.lstrip()),
            start + len(span) - len(span.lstrip())):
    if context[c:c + len(stripped)] == stripped:
      return c, c + len(stripped)
  return None


def _qa_record(record: Record, index: int) -> tuple[str, str, tuple[int, int] | None]:
  """Validates a QA record: (question, context, char span of answer 0 or None)."""
  rid = record_id(record, index)
  question, context = record.get("question"), record.get("context")
  answers = record.get("answers", [])
  if not isinstance(question, str):
    raise DataError(f"QA record {rid!r}: 'question' must be a string")
  if not isinstance(context, str):
    raise DataError(f"QA record {rid!r}: 'context' must be a string")
  if not isinstance(answers, (list, tuple)):
    raise DataError(f"QA record {rid!r}: 'answers' must be a list")
  spans = []
  for k, answer in enumerate(answers):
    if not isinstance(answer, Mapping):
      raise DataError(f"QA record {rid!r}: answer {k} is not an object")
    text, start = answer.get("text"), answer.get("answer_start")
    if not isinstance(text, str) or isinstance(start, bool) or not isinstance(
        start, (int, np.integer)):
      raise DataError(
          f"QA record {rid!r}: answer {k} needs a string 'text' and an integer "
          f"'answer_start', got {dict(answer)!r:.120}")
    if not text.strip():
      continue  # An empty answer ({"text": "", "answer_start": -1}) = none.
    span = None
    if 0 <= start <= len(context):
      span = _answer_char_span(context, text, int(start))
    if span is None:
      found = context[max(start, 0):max(start, 0) + len(text)]
      raise DataError(
          f"QA record {rid!r}: answer {k} {text!r:.60} does not match the "
          f"context at answer_start={start} (context there: {found!r:.60})")
    spans.append(span)
  return question, context, (spans[0] if spans else None)


def _encode_qa(records, tokenizer, max_length, doc_stride,
               max_query_length) -> Features:
  """SQuAD-style windows: [CLS] question [SEP] context window [SEP].

  Positions come from the *first* answer (as in HF run_squad training); all
  answers are validated against the context (`_answer_char_span`). Answers
  with empty or blank text are skipped, so a record whose answers are all
  empty counts as unanswerable.

  Raises:
    ConfigError: unless 0 <= doc_stride < max_length - max_query_length - 3
      (the tokenizer needs the overlap to be shorter than the room left for
      context in every window; it would otherwise abort the process).
  """
  room = max_length - max_query_length - 3
  if max_query_length < 1 or room < 1:
    raise ConfigError(
        f"max_length={max_length} leaves no room for the context after a "
        f"question of max_query_length={max_query_length} tokens")
  if not 0 <= doc_stride < room:
    raise ConfigError(
        f"doc_stride={doc_stride} must be >= 0 and < max_length - "
        f"max_query_length - 3 = {room} (max_length={max_length}, "
        f"max_query_length={max_query_length})")
  out: Features = {k: [] for k in (
      "input_ids", "token_type_ids", "example_index", "start_position",
      "end_position", "offsets", "context_mask")}
  parsed = [_qa_record(r, i) for i, r in enumerate(records)]
  for c in range(0, len(parsed), _CHUNK):
    chunk = parsed[c:c + _CHUNK]
    questions = [q.lstrip() for q, _, _ in chunk]
    # Cut questions to max_query_length tokens: slicing the string at the end
    # of the last kept token re-tokenizes to exactly those tokens (WordPiece
    # is greedy longest-match from the left).
    q_enc = tokenizer(questions, add_special_tokens=False,
                      return_offsets_mapping=True, return_attention_mask=False,
                      return_token_type_ids=False, verbose=False)
    for j, offs in enumerate(q_enc["offset_mapping"]):
      if len(offs) > max_query_length:
        questions[j] = questions[j][:offs[max_query_length - 1][1]]
    contexts = [ctx for _, ctx, _ in chunk]
    enc = tokenizer(questions, contexts, truncation="only_second",
                    max_length=max_length, stride=doc_stride,
                    return_overflowing_tokens=True,
                    return_offsets_mapping=True, return_token_type_ids=True,
                    return_attention_mask=False)
    for w in range(len(enc["input_ids"])):
      local = enc["overflow_to_sample_mapping"][w]
      mask = np.array([s == 1 for s in enc.sequence_ids(w)], np.bool_)
      offsets = _i32(enc["offset_mapping"][w]).reshape(-1, 2)
      offsets[~mask] = -1
      start_pos, end_pos = _window_positions(offsets, mask, chunk[local][2])
      out["input_ids"].append(_i32(enc["input_ids"][w]))
      out["token_type_ids"].append(_segments(enc["token_type_ids"][w]))
      out["example_index"].append(c + local)
      out["start_position"].append(start_pos)
      out["end_position"].append(end_pos)
      out["offsets"].append(offsets)
      out["context_mask"].append(mask)
  return out


def _window_positions(offsets: np.ndarray, mask: np.ndarray,
                      span: tuple[int, int] | None) -> tuple[int, int]:
  """Token (start, end) of char `span` in one window; (0, 0) if not inside.

  Args:
    offsets: int32 [L, 2] character offsets of the window's tokens.
    mask: bool [L], True on context tokens (a contiguous run).
    span: (char_start, char_end) of the answer, or None.
  """
  if span is None or not mask.any():
    return 0, 0
  ctx = np.flatnonzero(mask)
  first, last = int(ctx[0]), int(ctx[-1])
  start_char, end_char = span
  if not (offsets[first, 0] <= start_char and offsets[last, 1] >= end_char):
    return 0, 0
  s = first
  while s <= last and offsets[s, 0] <= start_char:
    s += 1
  e = last
  while e >= first and offsets[e, 1] >= end_char:
    e -= 1
  return s - 1, e + 1


def _encode_tagging(records, tokenizer, max_length, label_to_id) -> Features:
  """One feature per record; label on the first sub-token of each word.

  A word that tokenizes to no sub-token at all (a lone control character, a
  zero-width space, an empty string) is replaced by the tokenizer's [UNK]
  token, so every word keeps one position, its label and a prediction, and
  word alignment never shifts.
  """
  for i, r in enumerate(records):  # Every record checked before any work.
    tokens, tags = r.get("tokens"), r.get("tags")
    if not isinstance(tokens, (list, tuple)) or not all(
        isinstance(t, str) for t in tokens):
      raise DataError(f"record {i}: 'tokens' must be a list of strings")
    if not isinstance(tags, (list, tuple)) or len(tags) != len(tokens):
      raise DataError(
          f"record {i}: 'tags' must be a list as long as 'tokens' "
          f"({len(tokens)} words)")
    for k, t in enumerate(tags):
      _label_id(t, label_to_id, f"record {i}, word {k}")

  unk = tokenizer.unk_token
  out: Features = {k: [] for k in (
      "input_ids", "token_type_ids", "example_index", "labels", "word_ids",
      "num_words", "num_words_kept")}
  # Chunk by chunk, so that only one chunk's words and tag ids are copied.
  for c in range(0, len(records), _CHUNK):
    chunk = [list(r["tokens"]) for r in records[c:c + _CHUNK]]
    tag_ids = [[_label_id(t, label_to_id, "") for t in r["tags"]]
               for r in records[c:c + _CHUNK]]
    if unk is not None:
      unique = sorted({w for words in chunk for w in words})
      if unique:
        pieces = tokenizer(unique, add_special_tokens=False,
                           return_attention_mask=False,
                           return_token_type_ids=False, verbose=False)
        empty = {w for w, ids in zip(unique, pieces["input_ids"]) if not ids}
        if empty:
          chunk = [[unk if w in empty else w for w in words] for words in chunk]
    enc = tokenizer(chunk, is_split_into_words=True, truncation=True,
                    max_length=max_length, return_token_type_ids=True,
                    return_attention_mask=False)
    for j in range(len(chunk)):
      i = c + j
      word_ids = enc.word_ids(j)
      labels = np.full(len(word_ids), IGNORE, np.int32)
      previous = None
      kept = 0
      for pos, w in enumerate(word_ids):
        if w is not None and w != previous:
          labels[pos] = tag_ids[j][w]
          kept = max(kept, w + 1)
        previous = w
      out["input_ids"].append(_i32(enc["input_ids"][j]))
      out["token_type_ids"].append(_segments(enc["token_type_ids"][j]))
      out["example_index"].append(i)
      out["labels"].append(labels)
      out["word_ids"].append(list(word_ids))
      out["num_words"].append(len(chunk[j]))
      out["num_words_kept"].append(kept)
  return out
