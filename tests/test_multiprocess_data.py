"""The input pipeline of a job of N processes, each simulated here: every
process tokenizes only its share of the records and the rows of its slice
of each batch, and the slices make up exactly the batches of one process."""

import numpy as np
import pytest

import synthetic
from configs import tiny
from taskemb_jax import batching, data, encoders, input_pipeline
from taskemb_jax.errors import DataError


@pytest.fixture(scope="module")
def tokenizer():
  spec = encoders.spec_from_config(tiny.get_config())
  return input_pipeline.load_tokenizer(spec.tokenizer_dir)


def _encoder(kind, records, tokenizer, calls):
  labels = None
  if kind in ("classification", "tagging"):
    labels = input_pipeline.label_vocabulary(kind, records)
  label_to_id = {n: i for i, n in enumerate(labels)} if labels else None

  def encode(recs):
    calls.append(len(recs))
    # QA at 16 tokens: several windows per record (question cut to 6).
    return input_pipeline.encode(kind, recs, tokenizer, max_length=16,
                                 label_to_id=label_to_id, doc_stride=5,
                                 max_query_length=6)
  return encode


def _process_split(records, encoder, kind, p, n):
  """The Split process p of n builds (share_split, its gather done here)."""
  whole = encoder(records)  # The gathered lengths, computed at once here.
  lo, hi = len(records) * p // n, len(records) * (p + 1) // n
  feats = encoder(records[lo:hi])
  first = int(np.searchsorted(whole["example_index"], lo))
  return data.Split(records, feats, batching.lengths_of(whole),
                    np.asarray(whole["example_index"], np.int32), lo, first,
                    encoder, kind, p, n)


@pytest.mark.parametrize("kind", ["classification", "qa", "tagging"])
def test_slices_of_three_processes_make_the_batches_of_one(kind, tokenizer):
  records = synthetic.make_records(kind, 29, seed=3)
  calls = []
  encoder = _encoder(kind, records, tokenizer, calls)
  one = data.Split(records, encoder(records), encoder=encoder, kind=kind)
  batch_size, n = 6, 3
  expected = list(data.global_batches(one, batch_size, 16, shuffle=True,
                                      seed=1, epoch=2))
  if kind == "qa":
    assert one.num_features > len(records) + 10  # Records of 2+ windows.
  slices = []
  for p in range(n):
    split = _process_split(records, encoder, kind, p, n)
    calls.clear()
    slices.append(list(data.global_batches(split, batch_size, 16,
                                           shuffle=True, seed=1, epoch=2)))
    # Each process tokenizes at most its 2 rows of a batch at a time.
    assert calls and max(calls) <= batch_size // n, calls
  assert len(expected) == data.num_batches(one, batch_size, 16) > 3
  for k, batch in enumerate(expected):
    for key, value in batch.items():
      joined = np.concatenate([slices[p][k][key] for p in range(n)])
      np.testing.assert_array_equal(joined, value, err_msg=f"{k} {key}")


def test_a_process_tokenizes_its_share_once_and_its_rows_per_pass(tokenizer):
  """Work per process: its 1/N of the split, then per pass the rows of its
  slices that other processes hold."""
  records = synthetic.make_records("classification", 60, seed=0)
  calls = []
  encoder = _encoder("classification", records, tokenizer, calls)
  n, fed = 4, 0
  for p in range(n):
    split = _process_split(records, encoder, "classification", p, n)
    assert len(split.features["input_ids"]) == 15
    assert split.share_records == records[15 * p:15 * (p + 1)]
    calls.clear()
    batches = list(data.global_batches(split, 8, 16, shuffle=True, seed=0))
    rows = np.concatenate([b["index"] for b in batches])
    rows = rows[rows >= 0]
    fed += len(rows)
    held = (rows >= 15 * p) & (rows < 15 * (p + 1))
    assert sum(calls) == int((~held).sum()) < len(rows) <= 16
  assert fed == 60


def test_a_process_with_no_rows_in_a_batch_feeds_padding(tokenizer):
  """5 records, 4 processes, batches of 4: a slice may hold no real row; it
  still has every key, with the task's dtypes."""
  records = synthetic.make_records("regression", 5, seed=0)
  calls = []
  encoder = _encoder("regression", records, tokenizer, calls)
  shapes = []
  for p in range(4):
    split = _process_split(records, encoder, "regression", p, 4)
    for b in data.global_batches(split, 4, 16, shuffle=False):
      shapes.append({k: (v.shape, v.dtype) for k, v in b.items()})
  assert all(s == shapes[0] for s in shapes)
  assert shapes[0]["label"][1] == np.float32


def test_errors_name_the_record_in_the_whole_split(tokenizer):
  records = synthetic.make_records("classification", 10, seed=0)
  records[7] = dict(records[7], label="no-such-label")
  encoder = _encoder("classification", records[:7], tokenizer, [])
  with pytest.raises(DataError, match=r"^record 7: "):
    data._encode(encoder, records[5:], 5)  # pylint: disable=protected-access
  with pytest.raises(DataError, match=r"^record 2: "):
    data._encode(encoder, records[5:], 0)  # pylint: disable=protected-access
