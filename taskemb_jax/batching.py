"""Length buckets and fixed-shape global batches of encoded features.

`batches` groups the features of `taskemb_jax.input_pipeline.encode` into
length buckets and yields dicts of numpy arrays of fixed shape
``[batch_size, bucket_len]`` (padding rows get weight 0, so evaluation sees
every feature exactly once), so that jit compiles once per bucket. With
several processes each yields only its own slice of every global batch.
Knows nothing of the model or the tasks.
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence

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


def lengths_of(features: Features) -> np.ndarray:
  """Token count of every feature: int32 [num_features]."""
  ids = features["input_ids"]
  return np.fromiter((len(x) for x in ids), np.int32, count=len(ids))


def plan(lengths: np.ndarray, batch_size: int, buckets: Sequence[int], *,
         shuffle: bool, seed: int = 0, epoch: int = 0, packed: bool = False
         ) -> list[tuple[int, np.ndarray]]:
  """The global batches of features of these token counts, in order.

  Per bucket (the smallest bucket >= a feature's length) by default, each
  bucket's last batch padded with rows. `packed` (passes that only read the
  model: evaluation, embeddings; not with shuffle): that plan or the
  features sorted by length and cut into full batches, each padded to the
  bucket of its longest feature (only the last batch has padding rows),
  whichever has fewer rows x tokens -- a small split spread over several
  buckets then costs far fewer padded rows (200 features over 4 buckets in
  batches of 128: 2 batches instead of 4).

  Args:
    lengths: int [num_features] tokens of each feature.
  Returns:
    (bucket_len, feature indices [batch_size], -1 = padding row) per batch:
    what `batches` yields, computed from the lengths alone (so every process
    of a job computes the same plan from the lengths of all features).
  """
  if batch_size < 1:
    raise ValueError(f"batch_size must be positive, got {batch_size}")
  edges = sorted(set(int(b) for b in buckets))
  if not edges:
    raise ValueError("no buckets given")
  lengths = np.asarray(lengths, np.int64)
  which = np.searchsorted(np.asarray(edges), lengths, side="left")
  if lengths.size and which.max() >= len(edges):
    bad = int(np.argmax(which >= len(edges)))
    raise ValueError(
        f"feature {bad} has {lengths[bad]} tokens, more than the largest "
        f"bucket {edges[-1]}")
  if packed:
    if shuffle:
      raise ValueError("packed batches are not shuffled")
    order = np.argsort(lengths, kind="stable")
    out = []
    for s in range(0, len(order), batch_size):
      part = order[s:s + batch_size]
      rows = np.full(batch_size, -1, np.int64)
      rows[:len(part)] = part
      out.append((edges[int(which[part].max())], rows))
    per_bucket = plan(lengths, batch_size, edges, shuffle=False)
    return min(per_bucket, out, key=lambda p: sum(b for b, _ in p))
  rng = np.random.default_rng([seed, epoch]) if shuffle else None
  out = []
  for b, bucket_len in enumerate(edges):
    idx = np.flatnonzero(which == b)
    if rng is not None:
      idx = rng.permutation(idx)
    for s in range(0, len(idx), batch_size):
      rows = np.full(batch_size, -1, np.int64)
      part = idx[s:s + batch_size]
      rows[:len(part)] = part
      out.append((bucket_len, rows))
  if rng is not None:
    out = [out[k] for k in rng.permutation(len(out))]
  return out


def num_batches(features: Features | np.ndarray, batch_size: int,
                buckets: Sequence[int]) -> int:
  """Number of (global) batches `batches` yields for these arguments
  (`features`: encoded features, or their lengths)."""
  lengths = lengths_of(features) if isinstance(features, dict) else features
  return len(plan(lengths, batch_size, buckets, shuffle=False))


def shard_rows(rows: np.ndarray, num_shards: int, shard_index: int
               ) -> np.ndarray:
  """Rows [shard_index * B/num_shards, (shard_index + 1) * B/num_shards)
  of a global batch of B = len(rows) rows."""
  if num_shards < 1 or not 0 <= shard_index < num_shards:
    raise ValueError(f"bad shard {shard_index} of {num_shards}")
  if len(rows) % num_shards:
    raise ValueError(f"batch_size={len(rows)} is not divisible by "
                     f"num_shards={num_shards}")
  per = len(rows) // num_shards
  return rows[shard_index * per:(shard_index + 1) * per]


def make_batch(features: Features, positions: np.ndarray, bucket_len: int, *,
               index: np.ndarray | None = None,
               label_dtype: Any = None) -> dict[str, np.ndarray]:
  """One fixed-shape batch of the features at `positions` (-1 = padding).

  Args:
    features: encoded features (only the keys a batch holds are read).
    positions: int [b] positions into `features`' lists, -1 for padding rows.
    bucket_len: T, the padded length.
    index: int [b] the rows' feature indices in the split (default:
      `positions`).
    label_dtype: dtype of ``label`` (default: float32 if any label is a
      float, else int32).
  Returns:
    The dict described in `batches`.
  """
  per = len(positions)
  real = positions >= 0
  index = positions if index is None else np.where(real, index, -1)
  batch = {
      "input_ids": np.zeros((per, bucket_len), np.int32),
      "token_type_ids": np.zeros((per, bucket_len), np.int32),
      "attention_mask": np.zeros((per, bucket_len), np.int32),
      "weights": real.astype(np.float32),
      "index": np.asarray(index, np.int32),
  }
  token_labels = features.get("labels")
  if token_labels is not None:
    batch["labels"] = np.full((per, bucket_len), IGNORE, np.int32)
  for r, f in enumerate(positions):
    if f < 0:
      continue
    ids = features["input_ids"][f]
    n = len(ids)
    batch["input_ids"][r, :n] = ids
    batch["token_type_ids"][r, :n] = features["token_type_ids"][f]
    batch["attention_mask"][r, :n] = 1
    if token_labels is not None:
      batch["labels"][r, :n] = token_labels[f]
  for key in ("label", "start_position", "end_position"):
    if key not in features:
      continue
    values = features[key]
    dtype = np.int32
    if key == "label":
      dtype = label_dtype or (np.float32 if any(
          isinstance(v, (float, np.floating)) for v in values) else np.int32)
    col = np.zeros(per, dtype)
    for r, f in enumerate(positions):
      if f >= 0:
        col[r] = values[f]
    batch[key] = col
  return batch


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
  of each global batch of B = `batch_size` rows (`taskemb_jax.data` does
  this without holding the other processes' features).

  Yields:
    Dicts with (b = batch_size // num_shards, T = the bucket length):
    ``input_ids``, ``token_type_ids``, ``attention_mask``: int32 [b, T]
    (padding 0); ``weights``: float32 [b] (0 for padding rows); ``index``:
    int32 [b] (feature index, -1 for padding rows); and what the features
    label: ``label`` int32 or float32 [b] (0 on padding rows),
    ``start_position`` / ``end_position`` int32 [b] (0 on padding rows),
    ``labels`` int32 [b, T] (IGNORE on padding).
  """
  shard_rows(np.zeros(batch_size), num_shards, shard_index)  # Checks.
  label_dtype = None
  if "label" in features:
    label_dtype = np.float32 if any(isinstance(v, (float, np.floating))
                                    for v in features["label"]) else np.int32
  for bucket_len, rows in plan(lengths_of(features), batch_size, buckets,
                               shuffle=shuffle, seed=seed, epoch=epoch):
    yield make_batch(features, shard_rows(rows, num_shards, shard_index),
                     bucket_len, label_dtype=label_dtype)
