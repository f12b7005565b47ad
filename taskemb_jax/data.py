"""The data of a run: records of a split, tokenized, and its global batches.

The glue between a task's records (`taskemb_jax.tasks`) and the input
pipeline (`taskemb_jax.input_pipeline`, which knows nothing of tasks):
subsampling, label names, tokenizing a split with a `Window`, and this
process's share of every global batch. Everything here takes plain values.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator, Sequence

import jax
import numpy as np

from taskemb_jax import batching
from taskemb_jax import input_pipeline
from taskemb_jax import tasks as tasks_lib


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
  """One split of a task, tokenized: its records and their features.

  features: input_pipeline.encode's output (lists with one entry per
  feature; a QA record may have several windows).
  """

  records: list[dict]
  features: dict[str, list]


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
  """Loads (or takes) records, subsamples them and tokenizes them."""
  if records is None:
    records = task.load(split, data_dir or None)
  records = subsample(records, max_examples, seed)
  label_to_id = {n: i for i, n in enumerate(labels)} if labels else None
  stride, query = window.qa()
  features = input_pipeline.encode(
      task.kind, records, tokenizer, max_length=window.max_length,
      label_to_id=label_to_id, doc_stride=stride, max_query_length=query)
  return Split(records, features)


def global_batches(split: Split, batch_size: int, max_length: int, *,
                   shuffle: bool, seed: int = 0, epoch: int = 0
                   ) -> Iterator[dict[str, Any]]:
  """This process's rows of every global batch (see batching.batches).

  Batches are padded to the length buckets of `max_length`; with several
  processes each yields only its own slice of every global batch.
  """
  return batching.batches(
      split.features, batch_size,
      buckets=batching.bucket_lengths(max_length),
      shuffle=shuffle, seed=seed, epoch=epoch,
      num_shards=jax.process_count(), shard_index=jax.process_index())
