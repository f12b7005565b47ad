"""Length buckets and fixed-shape global batches of encoded features.

`batches` groups the features of `taskemb_jax.input_pipeline.encode` into
length buckets and yields dicts of numpy arrays of fixed shape
``[batch_size, bucket_len]`` (padding rows get weight 0, so evaluation sees
every feature exactly once), so that jit compiles once per bucket. With
several processes each yields only its own slice of every global batch.
Knows nothing of the model or the tasks.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

# Label id of positions (or rows) that carry no label.
IGNORE = -100

Features = dict[str, list]


# Candidate bucket lengths: multiples of 16 for short inputs (most sentences
# of the bank are 15-30 tokens), coarser steps for long ones.
_BUCKETS = (16, 32, 48, 64, 96, 128, 192, 256, 384, 512)


def bucket_lengths(max_length: int) -> tuple[int, ...]:
  """A few sequence-length buckets ending at `max_length`.

  The candidates in `_BUCKETS` that are >= max(16, max_length / 8) and below
  `max_length`, then `max_length` itself: 64 -> (16, 32, 48, 64),
  128 -> (16, 32, 48, 64, 96, 128), 384 -> (48, 64, 96, 128, 192, 256, 384).
  jit compiles one step per bucket, so the count stays small.
  """
  if max_length < 1:
    raise ValueError(f"max_length must be positive, got {max_length}")
  low = max(16, max_length / 8)
  return tuple(b for b in _BUCKETS if low <= b < max_length) + (max_length,)


def _plan(features: Features, batch_size: int, buckets: Sequence[int],
          shuffle: bool, seed: int, epoch: int) -> list[tuple[int, np.ndarray]]:
  """Global batch plan: (bucket_len, feature indices [batch_size], -1 = pad)."""
  if batch_size < 1:
    raise ValueError(f"batch_size must be positive, got {batch_size}")
  edges = sorted(set(int(b) for b in buckets))
  if not edges:
    raise ValueError("no buckets given")
  lengths = np.fromiter((len(x) for x in features["input_ids"]), np.int64,
                        count=len(features["input_ids"]))
  which = np.searchsorted(np.asarray(edges), lengths, side="left")
  if lengths.size and which.max() >= len(edges):
    bad = int(np.argmax(which >= len(edges)))
    raise ValueError(
        f"feature {bad} has {lengths[bad]} tokens, more than the largest "
        f"bucket {edges[-1]}")
  rng = np.random.default_rng([seed, epoch]) if shuffle else None
  plan = []
  for b, bucket_len in enumerate(edges):
    idx = np.flatnonzero(which == b)
    if rng is not None:
      idx = rng.permutation(idx)
    for s in range(0, len(idx), batch_size):
      rows = np.full(batch_size, -1, np.int64)
      part = idx[s:s + batch_size]
      rows[:len(part)] = part
      plan.append((bucket_len, rows))
  if rng is not None:
    plan = [plan[k] for k in rng.permutation(len(plan))]
  return plan


def num_batches(features: Features, batch_size: int,
                buckets: Sequence[int]) -> int:
  """Number of (global) batches `batches` yields for these arguments."""
  return len(_plan(features, batch_size, buckets, False, 0, 0))


def batches(features: Features,
            batch_size: int,
            *,
            buckets: Sequence[int],
            shuffle: bool,
            seed: int = 0,
            epoch: int = 0,
            num_shards: int = 1,
            shard_index: int = 0) -> Iterator[dict[str, np.ndarray]]:
  """Yields fixed-shape batches of features, bucketed by length.

  Each feature goes to the smallest bucket >= its length. Without shuffle:
  buckets in ascending length, features in their original order within a
  bucket. With shuffle: features shuffled within buckets and the batches of
  all buckets interleaved in a shuffled order, deterministic in
  (seed, epoch). Every feature appears exactly once; the last batch of a
  bucket is padded with rows of weight 0 (never dropped).

  With `num_shards` > 1 every process computes the same global order and
  takes rows [shard_index * B/num_shards, (shard_index + 1) * B/num_shards)
  of each global batch of B = `batch_size` rows.

  Yields:
    Dicts with (b = batch_size // num_shards, T = the bucket length):
    ``input_ids``, ``token_type_ids``, ``attention_mask``: int32 [b, T]
    (padding 0); ``weights``: float32 [b] (0 for padding rows); ``index``:
    int32 [b] (feature index, -1 for padding rows); and what the features
    label: ``label`` int32 or float32 [b] (0 on padding rows),
    ``start_position`` / ``end_position`` int32 [b] (0 on padding rows),
    ``labels`` int32 [b, T] (IGNORE on padding).
  """
  if num_shards < 1 or not 0 <= shard_index < num_shards:
    raise ValueError(f"bad shard {shard_index} of {num_shards}")
  if batch_size % num_shards:
    raise ValueError(
        f"batch_size={batch_size} is not divisible by num_shards={num_shards}")
  per = batch_size // num_shards
  lo = shard_index * per
  input_ids, type_ids = features["input_ids"], features["token_type_ids"]
  scalars = {}
  if "label" in features:
    values = features["label"]
    is_float = any(isinstance(v, (float, np.floating)) for v in values)
    scalars["label"] = np.asarray(values, np.float32 if is_float else np.int32)
  for key in ("start_position", "end_position"):
    if key in features:
      scalars[key] = np.asarray(features[key], np.int32)
  token_labels = features.get("labels")

  for bucket_len, rows in _plan(features, batch_size, buckets, shuffle, seed,
                                epoch):
    rows = rows[lo:lo + per]
    real = rows >= 0
    batch = {
        "input_ids": np.zeros((per, bucket_len), np.int32),
        "token_type_ids": np.zeros((per, bucket_len), np.int32),
        "attention_mask": np.zeros((per, bucket_len), np.int32),
        "weights": real.astype(np.float32),
        "index": rows.astype(np.int32),
    }
    if token_labels is not None:
      batch["labels"] = np.full((per, bucket_len), IGNORE, np.int32)
    for r, f in enumerate(rows):
      if f < 0:
        continue
      n = len(input_ids[f])
      batch["input_ids"][r, :n] = input_ids[f]
      batch["token_type_ids"][r, :n] = type_ids[f]
      batch["attention_mask"][r, :n] = 1
      if token_labels is not None:
        batch["labels"][r, :n] = token_labels[f]
    safe = np.where(real, rows, 0)
    for key, values in scalars.items():
      col = values[safe] if len(values) else np.zeros(per, values.dtype)
      batch[key] = np.where(real, col, 0).astype(values.dtype)
    yield batch
