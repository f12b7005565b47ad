"""The data of a run: records of a split, tokenized, and its global batches.

The glue between a task's records (`taskemb_jax.tasks`) and the input
pipeline (`taskemb_jax.input_pipeline`, which knows nothing of tasks):
subsampling, label names, tokenizing a split with a `Window`, and this
process's share of every global batch. Everything here takes plain values.

With N processes no process tokenizes or holds the whole split: each
tokenizes its 1/N share of the records (`load_split`), the token counts of
all features are gathered (small integers), every process plans the global
batches from them exactly as one process would (so the data order does not
depend on N), and each tokenizes, batch by batch, only the rows of its own
slice of every global batch that its share does not hold
(`global_batches`).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Callable, Iterator, Sequence

import jax
import numpy as np

from taskemb_jax import batching
from taskemb_jax import input_pipeline
from taskemb_jax import sharding
from taskemb_jax import tasks as tasks_lib
from taskemb_jax.errors import DataError

Features = dict[str, list]
# The features' keys that batches hold (batching.make_batch).
_BATCH_KEYS = ("input_ids", "token_type_ids", "label", "start_position",
               "end_position", "labels")


@dataclasses.dataclass(frozen=True)
class Window:
  """How inputs are cut into model inputs.

  max_length: tokens per input (QA: per window); doc_stride: QA's overlap
  between the windows of a long context; max_query_length: QA's question
  cut. -1 = scaled to max_length (the paper's 128 and 64 at 384).
  """

  max_length: int
  doc_stride: int = -1
  max_query_length: int = -1

  @classmethod
  def from_config(cls, config) -> "Window":
    """The window fields of a stage's config."""
    return cls(config.max_length, config.doc_stride, config.max_query_length)

  def qa(self) -> tuple[int, int]:
    """(doc_stride, max_query_length) with -1 resolved."""
    query = self.max_query_length
    if query < 0:
      query = min(64, self.max_length * 3 // 8)
    stride = self.doc_stride
    if stride < 0:
      stride = min(128, self.max_length // 3)
    return stride, query


@dataclasses.dataclass
class Split:
  """One split of a task, tokenized: its records and this process's features.

  With one process `features` are those of every record. With several,
  each process tokenizes only its share of the records (a contiguous 1/N)
  and knows the token count of every feature of the split (`lengths`,
  gathered from all processes): enough to plan the global batches exactly
  as one process would. The rows of a batch that it feeds but does not hold
  it tokenizes when the batch is made (`encoder`).

  records: every record of the split (as read; not tokenized).
  features: input_pipeline.encode's output for this process's share of the
    records, `share_records` (example_index counts from its first record).
  lengths: int32 [num_features] tokens of every feature of the split.
  feature_record: int32 [num_features] the record of every feature.
  record_start, feature_start: the first record and feature of the share.
  encoder: tokenizes a list of records like `features` were (None when
    `features` hold every record).
  kind: the task kind ('' = read from the features).
  process, num_processes: which of how many processes holds this split.
  """

  records: list[dict]
  features: Features
  lengths: np.ndarray | None = None
  feature_record: np.ndarray | None = None
  record_start: int = 0
  feature_start: int = 0
  encoder: Callable[[list[dict]], Features] | None = None
  kind: str = ""
  process: int = 0
  num_processes: int = 1

  def __post_init__(self):
    if self.lengths is None:  # Every feature of the split is here.
      self.lengths = batching.lengths_of(self.features)
      self.feature_record = np.asarray(self.features["example_index"],
                                       np.int32).reshape(-1)

  @property
  def num_features(self) -> int:
    """Features of the whole split (of all processes)."""
    return len(self.lengths)

  @property
  def share(self) -> range:
    """Indices (in the split) of the features this process holds."""
    return range(self.feature_start,
                 self.feature_start + len(self.features["input_ids"]))

  @property
  def share_records(self) -> list[dict]:
    """The records whose features this process holds."""
    ends = self.feature_record[self.share.start:self.share.stop]
    stop = int(ends[-1]) + 1 if len(ends) else self.record_start
    return self.records[self.record_start:stop]


def subsample(records: list[dict], n: int, seed: int) -> list[dict]:
  """`n` records drawn without replacement with `seed` (all if n <= 0)."""
  if n <= 0 or n >= len(records):
    return records
  idx = np.sort(np.random.default_rng(seed).choice(len(records), n,
                                                   replace=False))
  return [records[i] for i in idx]


def label_names(task: tasks_lib.Task, train_records: list[dict]
                ) -> tuple[str, ...] | None:
  """The label names of a classification/tagging task (None otherwise).

  Refuses a train split that cannot teach the task anything
  (`tasks.check_trainable`).
  """
  tasks_lib.check_trainable(task, train_records)
  if task.kind in ("regression", "qa"):
    return None
  return task.labels or input_pipeline.label_vocabulary(task.kind,
                                                        train_records)


def load_split(task: tasks_lib.Task, split: str, tokenizer,
               labels: Sequence[str] | None, window: Window, *,
               data_dir: str | None = None, max_examples: int = 0,
               seed: int = 0, records: list[dict] | None = None) -> Split:
  """Loads (or takes) records, subsamples them and tokenizes this process's
  share of them (all of them with one process)."""
  if records is None:
    records = task.load(split, data_dir or None)
  records = subsample(records, max_examples, seed)
  label_to_id = {n: i for i, n in enumerate(labels)} if labels else None
  stride, query = window.qa()

  def encoder(recs: list[dict]) -> Features:
    return input_pipeline.encode(
        task.kind, recs, tokenizer, max_length=window.max_length,
        label_to_id=label_to_id, doc_stride=stride, max_query_length=query)
  return share_split(records, encoder, task.kind)


def share_split(records: list[dict], encoder: Callable[[list[dict]], Features],
                kind: str = "") -> Split:
  """Tokenizes this process's share of `records` and gathers the token
  counts of all features (a collective with several processes).

  A record that cannot be encoded is the same one-line error on every
  process (numbered within the whole split).
  """
  p, n = jax.process_index(), jax.process_count()
  lo, hi = len(records) * p // n, len(records) * (p + 1) // n
  features = sharding.agree(lambda: _encode(encoder, records[lo:hi], lo))
  if n == 1:
    return Split(records, features, encoder=encoder, kind=kind)
  record = np.asarray(features["example_index"], np.int32) + lo
  lengths = sharding.gather_rows(batching.lengths_of(features))
  feature_record = sharding.gather_rows(record)
  first = int(np.searchsorted(feature_record, lo, side="left"))
  return Split(records, features, lengths, feature_record, lo, first,
               encoder, kind, p, n)


def _encode(encoder, records: list[dict], offset: int) -> Features:
  """encoder(records); 'record i' in an error counts from the split's
  first record, not the share's."""
  try:
    return encoder(records)
  except DataError as e:
    if not offset:
      raise
    message = re.sub(r"^(QA )?record '?(\d+)'?",
                     lambda m: _renumbered(m, records, offset), str(e))
    raise DataError(message) from None


def _renumbered(m: re.Match, records: list[dict], offset: int) -> str:
  i = int(m.group(2))
  if m.group(1):  # QA records are named by id; by index only without one.
    if i < len(records) and records[i].get("id") is None:
      return f"QA record '{i + offset}'"
    return m.group(0)
  return f"record {i + offset}"


def rows(split: Split, indices: np.ndarray) -> Features:
  """The batch keys of the features at `indices` (indices in the split).

  Features of this process's share are taken as they are; the others are
  tokenized from their records now (all windows of a QA record, of which
  the wanted ones are kept).
  """
  indices = np.asarray(indices, np.int64)
  keys = [k for k in _BATCH_KEYS if k in split.features]
  out: Features = {k: [None] * len(indices) for k in keys}
  local = indices - split.feature_start
  held = (local >= 0) & (local < len(split.share))
  for j in np.flatnonzero(held):
    for k in keys:
      out[k][j] = split.features[k][local[j]]
  others = np.flatnonzero(~held)
  if not len(others):
    return out
  if split.encoder is None:
    raise ValueError("the split holds only some features and cannot "
                     "tokenize the others")
  recs = np.unique(split.feature_record[indices[others]])
  fresh = split.encoder([split.records[r] for r in recs])
  # Feature k of record r: its first feature in the split plus the window.
  first = np.searchsorted(split.feature_record, recs, side="left")
  fresh_first = np.searchsorted(np.asarray(fresh["example_index"]),
                                np.arange(len(recs)), side="left")
  for j in others:
    r = np.searchsorted(recs, split.feature_record[indices[j]])
    f = int(fresh_first[r] + indices[j] - first[r])
    if len(fresh["input_ids"][f]) != split.lengths[indices[j]]:
      raise RuntimeError(f"feature {indices[j]} tokenized to another length "
                         "than when the split was read")
    for k in keys:
      out[k][j] = fresh[k][f]
  return out


def num_batches(split: Split, batch_size: int, max_length: int) -> int:
  """Global batches of one pass over the split."""
  return batching.num_batches(split.lengths, batch_size,
                              batching.bucket_lengths(max_length))


def planned_batches(split: Split, batch_size: int, max_length: int, *,
                    shuffle: bool, seed: int = 0, epoch: int = 0,
                    skip: int = 0, packed: bool = False
                    ) -> Iterator[tuple[np.ndarray, dict[str, Any]]]:
  """(rows, batch) of every global batch but the first `skip`
  (`packed`: batching.plan's packed batches, for passes that only read).

  rows: int [batch_size] the global batch's feature indices (-1 = padding),
  the same on every process; batch: this process's slice of it (see
  batching.batches), padded to the length buckets of `max_length`.
  """
  label_dtype = None
  if "label" in split.features:
    label_dtype = np.float32 if split.kind == "regression" or (
        not split.kind and any(isinstance(v, (float, np.floating))
                               for v in split.features["label"])) else np.int32
  plan = batching.plan(split.lengths, batch_size,
                       batching.bucket_lengths(max_length), shuffle=shuffle,
                       seed=seed, epoch=epoch, packed=packed)
  for bucket_len, global_rows in plan[skip:]:
    mine = batching.shard_rows(global_rows, split.num_processes,
                               split.process)
    real = mine >= 0
    feats = rows(split, mine[real])
    positions = np.full(len(mine), -1, np.int64)
    positions[real] = np.arange(int(real.sum()))
    yield global_rows, batching.make_batch(
        feats, positions, bucket_len, index=mine, label_dtype=label_dtype)


def global_batches(split: Split, batch_size: int, max_length: int, *,
                   shuffle: bool, seed: int = 0, epoch: int = 0,
                   skip: int = 0) -> Iterator[dict[str, Any]]:
  """This process's rows of every global batch but the first `skip`.

  Batches are padded to the length buckets of `max_length`; with several
  processes each yields only its own slice of every global batch.
  """
  for _, batch in planned_batches(split, batch_size, max_length,
                                  shuffle=shuffle, seed=seed, epoch=epoch,
                                  skip=skip):
    yield batch
