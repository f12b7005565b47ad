"""Tests for taskemb_jax.formats: the generic readers and their memory."""

from __future__ import annotations

import json
import random
import tracemalloc

import pytest

from taskemb_jax import formats, input_pipeline, tasks
from taskemb_jax.errors import DataError
from taskemb_jax.records import SPLITS, normalize_key, split_of

BOM = b"\xef\xbb\xbf"


def _write(path, text: str, bom: bool = False):
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_bytes((BOM if bom else b"") + text.encode("utf-8"))
  return str(path)


def _squad(paragraphs) -> str:
  return json.dumps({"version": "1.1", "data": [{"paragraphs": paragraphs}]})


def test_the_readers_are_importable_from_tasks():
  for name in ("read_jsonl", "read_squad", "read_conll", "read_file",
               "find_split_file", "local_task", "local_file_task",
               "record_text"):
    assert getattr(tasks, name) is getattr(formats, name)


# ----------------------------------------------------------------------------
# A byte-order mark is accepted in every format.


@pytest.mark.parametrize("name, kind, text, first", [
    ("d.jsonl", "classification", '{"text": "good", "label": "pos"}\n',
     {"text": "good", "text_pair": None, "label": "pos"}),
    ("d.conll", "tagging", "EU B-ORG\nrejects O\n",
     {"tokens": ["EU", "rejects"], "tags": ["B-ORG", "O"]}),
    ("d.json", "qa", _squad([{"context": "Ottawa is big.", "qas": [
        {"id": "c1", "question": "Q?",
         "answers": [{"text": "Ottawa", "answer_start": 0}]}]}]),
     {"id": "c1", "question": "Q?", "context": "Ottawa is big.",
      "answers": [{"text": "Ottawa", "answer_start": 0}]}),
    ("q.jsonl", "qa", json.dumps({"id": "c1", "question": "Q?",
                                  "context": "Ottawa."}) + "\n",
     {"id": "c1", "question": "Q?", "context": "Ottawa.", "answers": []}),
])
def test_a_byte_order_mark_is_accepted(tmp_path, name, kind, text, first):
  path = _write(tmp_path / name, text, bom=True)
  assert formats.read_file(path, kind) == [first]
  # A BOM is not a character of the first record: the same as without one.
  assert formats.read_file(_write(tmp_path / "plain" / name, text),
                           kind) == [first]


def test_invalid_utf8_names_the_line(tmp_path):
  path = tmp_path / "bad.json"
  path.write_bytes(b'{"data": [\n  "caf\xe9"]}')
  with pytest.raises(DataError, match=r"bad\.json:2: not UTF-8 text"):
    formats.read_squad(str(path))
  path = tmp_path / "bad.conll"
  path.write_bytes(b"a O\n\ncaf\xe9 O\n")
  with pytest.raises(DataError, match=r"bad\.conll:3: not UTF-8 text"):
    formats.read_conll(str(path))


# ----------------------------------------------------------------------------
# CoNLL columns.


def test_conll_tab_separated_words_keep_their_spaces(tmp_path):
  path = _write(tmp_path / "d.tsv", "-DOCSTART- -X- O\n\nNew York\tNNP\tB-LOC"
                "\nis\tVBZ\tO\n \t \nSan  José \tNNP\tB-LOC\n")
  assert formats.read_conll(path) == [
      {"tokens": ["New York", "is"], "tags": ["B-LOC", "O"]},
      {"tokens": ["San  José"], "tags": ["B-LOC"]}]


@pytest.mark.parametrize("text, message", [
    # A stray extra column would silently become the tag.
    ("EU NNP B-ORG\nrejects VBZ O\nit O\n",
     r"d\.conll:3: 2 column\(s\), but line 1 has 3"),
    ("EU\tB-ORG\n\nrejects\tVBZ\tO\n",
     r"d\.conll:3: 3 column\(s\), but line 1 has 2"),
    ("EU\tB-ORG\nrejects O\n",
     r"d\.conll:2: columns separated by spaces, but line 1 separates them "
     r"with tabs"),
    ("EU B-ORG\nrejects\tO\n",
     r"d\.conll:2: a tab, but line 1 separates its columns with spaces"),
    ("EU\tB-ORG\n\tO\n", r"d\.conll:2: empty word in column 0"),
    ("EU B-ORG\nlonely\n",
     r"d\.conll:2: expected 'word \.\.\. tag' columns, got 'lonely'"),
])
def test_conll_inconsistent_columns_are_one_line_errors(tmp_path, text,
                                                        message):
  path = _write(tmp_path / "d.conll", text)
  with pytest.raises(DataError, match=message) as e:
    formats.read_conll(path)
  assert "\n" not in str(e.value)


def test_conll_unlabelled_one_column_and_docstart(tmp_path):
  path = _write(tmp_path / "u.txt", "-DOCSTART-\n\nNew\nYork\n\n\nis\n")
  assert formats.read_conll(path, labelled=False) == [
      {"tokens": ["New", "York"], "tags": None},
      {"tokens": ["is"], "tags": None}]
  with pytest.raises(DataError, match=r"u\.txt:3: expected 'word"):
    formats.read_conll(path)


def test_conll_options_for_other_corpora(tmp_path):
  path = _write(tmp_path / "d.conll",
                "EU NNP B-NP B-ORG\nrejects VBZ B-VP O\n")
  assert formats.read_conll(path, columns=(0, 1)) == [
      {"tokens": ["EU", "rejects"], "tags": ["NNP", "VBZ"]}]
  assert formats.read_conll(path, tagset=("B-ORG", "O")) == [
      {"tokens": ["EU", "rejects"], "tags": ["B-ORG", "O"]}]
  with pytest.raises(DataError, match=r"d\.conll:2: tag 'O' is not one of "
                     r"the 1 tags of this corpus \(B-ORG\)"):
    formats.read_conll(path, tagset=("B-ORG",))
  with pytest.raises(DataError, match=r"d\.conll:1: no column \(0, 4\) in a "
                     r"line of 4 columns"):
    formats.read_conll(path, columns=(0, 4))
  # WNUT-16 style: token<TAB>tag, a lone tab ends a sentence.
  path = _write(tmp_path / "w.conll", "@user\tO\nNew York\tB-geo-loc\n\t\n"
                "hi\tO\n")
  assert formats.read_conll(path, tagset=("O", "B-geo-loc")) == [
      {"tokens": ["@user", "New York"], "tags": ["O", "B-geo-loc"]},
      {"tokens": ["hi"], "tags": ["O"]}]


# ----------------------------------------------------------------------------
# SQuAD JSON and its JSON Lines form.


def test_squad_questions_without_ids_get_unique_ids(tmp_path):
  para = lambda n: {"context": "abc", "qas": [  # noqa: E731
      {"question": f"q{i}?", "answers": [{"text": "b", "answer_start": 1}]}
      for i in range(n)]}
  doc = {"data": [{"paragraphs": [para(2), para(1)]},
                  {"paragraphs": [para(1)]}]}
  path = _write(tmp_path / "x.json", json.dumps(doc))
  records = formats.read_squad(path)
  assert [r["id"] for r in records] == ["0-0-0", "0-0-1", "0-1-0", "1-0-0"]
  assert formats.read_squad(path) == records  # Deterministic.
  # Evaluation maps answers back by id: all of them, none lost.
  n = len(records)
  features = {"example_index": list(range(n)),
              "offsets": [[[0, 0], [1, 2]]] * n,
              "context_mask": [[False, True]] * n}
  logits = [[0.0, 1.0]] * n
  answers = input_pipeline.postprocess_qa(logits, logits, features, records)
  assert sorted(answers) == sorted(r["id"] for r in records)


def test_squad_duplicate_ids_name_both_places(tmp_path):
  qa = {"id": "a1", "question": "Q?", "answers": []}
  doc = {"data": [{"paragraphs": [{"context": "c", "qas": [qa]},
                                  {"context": "d", "qas": [dict(qa)]}]}]}
  path = _write(tmp_path / "x.json", json.dumps(doc))
  with pytest.raises(DataError, match=(
      r"x\.json: data\[0\]\.paragraphs\[1\]\.qas\[0\]: question id 'a1' is "
      r"also the id at data\[0\]\.paragraphs\[0\]\.qas\[0\]")):
    formats.read_squad(path)
  rows = [{"id": "z", "question": "Q?", "context": "c"},
          {"question": "Q?", "context": "c"},
          {"id": 2, "question": "Q?", "context": "c"}]  # Line 2's own id.
  path = _write(tmp_path / "x.jsonl",
                "\n".join(json.dumps(r) for r in rows) + "\n")
  with pytest.raises(DataError, match=r"x\.jsonl:3: question id '2' is also "
                     r"the id at line 2"):
    formats.read_squad(path)


_CTX = "The cat sat."
_OK_QA = {"id": "q", "question": "Who?",
          "answers": [{"text": "cat", "answer_start": 4}]}


@pytest.mark.parametrize("doc, message", [
    ({"data": [["x"]]}, r"x\.json: data\[0\]: expected an object with "
     r"'paragraphs'"),
    ({"data": [{"title": "t"}]}, r"x\.json: data\[0\]: expected an object "
     r"with 'paragraphs'"),
    ({"data": [{"paragraphs": [{"context": _CTX, "qas": []}, {"qas": []}]}]},
     r"x\.json: data\[0\]\.paragraphs\[1\]: expected an object with a "
     r"string 'context' and a list 'qas'"),
    ({"data": [{"paragraphs": ["p"]}]},
     r"x\.json: data\[0\]\.paragraphs\[0\]: expected an object with a "
     r"string 'context'"),
    ({"data": [{"paragraphs": [{"context": _CTX, "qas": {"id": "q"}}]}]},
     r"x\.json: data\[0\]\.paragraphs\[0\]: expected an object with a "
     r"string 'context' and a list 'qas'"),
    ({"data": [{"paragraphs": [{"context": _CTX,
                                "qas": [_OK_QA, dict(_OK_QA, id="r"), 3]}]}]},
     r"x\.json: data\[0\]\.paragraphs\[0\]\.qas\[2\]: expected an object"),
    ({"data": [{"paragraphs": [{"context": _CTX, "qas": [
        {"id": "q", "answers": []}]}]}]},
     r"qas\[0\]: field 'question' missing or not a string"),
    ({"data": [{"paragraphs": [{"context": _CTX, "qas": [
        dict(_OK_QA, answers=["cat"])]}]}]},
     r"x\.json: data\[0\]\.paragraphs\[0\]\.qas\[0\]\.answers\[0\]: question "
     r"q: expected an object with 'text' and 'answer_start'"),
    ({"data": [{"paragraphs": [{"context": _CTX, "qas": [
        dict(_OK_QA, answers={"text": "cat"})]}]}]},
     r"qas\[0\]: question q: field 'answers' must be a list"),
    ({"data": [{"paragraphs": [{"context": _CTX, "qas": [
        dict(_OK_QA, id=["q"])]}]}]},
     r"qas\[0\]: field 'id' must be a non-empty string or an integer"),
    ({"data": [{"paragraphs": [{"context": _CTX, "qas": [dict(
        _OK_QA, answers=[{"text": "cat", "answer_start": True}])]}]}]},
     r"qas\[0\]: question q: an answer needs 'text' and an integer "
     r"'answer_start'"),
])
def test_squad_wrong_shapes_are_one_line_errors(tmp_path, doc, message):
  path = _write(tmp_path / "x.json", json.dumps(doc))
  with pytest.raises(DataError, match=message) as e:
    formats.read_squad(path)
  assert "\n" not in str(e.value)


@pytest.mark.parametrize("row, message", [
    (dict(_OK_QA, context=_CTX, answers=["cat"]),
     r"x\.jsonl:2: answers\[0\]: question q: expected an object"),
    (dict(_OK_QA, context=_CTX, answers="cat"),
     r"x\.jsonl:2: question q: field 'answers' must be a list"),
    (dict(_OK_QA, context=["c"]), r"x\.jsonl:2: field 'context' missing"),
    (dict(_OK_QA, context=_CTX, id={"a": 1}),
     r"x\.jsonl:2: field 'id' must be"),
    (dict(_OK_QA, context=_CTX, answers=[{"text": "dog", "answer_start": 4}]),
     r"x\.jsonl:2: question q: answer 'dog' is not in the context at "
     r"answer_start=4"),
])
def test_squad_jsonl_gets_the_same_checks(tmp_path, row, message):
  first = dict(_OK_QA, id="first", context=_CTX)
  path = _write(tmp_path / "x.jsonl",
                json.dumps(first) + "\n" + json.dumps(row) + "\n")
  with pytest.raises(DataError, match=message):
    formats.read_squad(path)


def test_squad_answer_starts_as_written_in_the_wild(tmp_path):
  answers = [{"text": "cat", "answer_start": "4"},
             {"text": "cat", "answer_start": 4.0}]
  path = _write(tmp_path / "x.json", _squad([{"context": _CTX, "qas": [
      dict(_OK_QA, answers=answers)]}]))
  assert formats.read_squad(path)[0]["answers"] == [
      {"text": "cat", "answer_start": 4}] * 2


# ----------------------------------------------------------------------------
# Size limits and memory.


def test_a_squad_json_file_over_the_limit_is_refused_before_reading(
    tmp_path, monkeypatch):
  path = _write(tmp_path / "x.json", _squad([{"context": _CTX,
                                              "qas": [_OK_QA]}]))
  monkeypatch.setattr(formats, "MAX_JSON_BYTES", 64)
  with pytest.raises(DataError) as e:
    formats.read_squad(path)
  size = (tmp_path / "x.json").stat().st_size
  assert str(e.value) == (
      f"{path}: {size:,} bytes ({size} bytes) is over the 64 bytes limit for "
      "a SQuAD JSON file; split it or convert it to JSON Lines (one question "
      "per line)")
  assert formats.MAX_JSON_BYTES == 64 and formats._human(1 << 30) == "1 GiB"  # pylint: disable=protected-access


def test_a_line_over_the_limit_is_refused(tmp_path, monkeypatch):
  monkeypatch.setattr(formats, "MAX_LINE_BYTES", 40)
  path = _write(tmp_path / "d.jsonl", '{"text": "a", "label": 1}\n'
                '{"text": "' + "a" * 40 + '", "label": 1}\n')
  with pytest.raises(DataError, match=r"d\.jsonl:2: line longer than the 40 "
                     r"bytes limit"):
    formats.read_jsonl(path, "classification")


def test_line_formats_are_read_as_streams(tmp_path):
  path = _write(tmp_path / "d.jsonl", '{"text": "a", "label": 1}\nnot json\n')
  records = formats.iter_jsonl(path, "classification")
  assert next(records)["text"] == "a"  # Line 2 not read yet.
  with pytest.raises(DataError, match=r"d\.jsonl:2: not valid JSON"):
    next(records)
  path = _write(tmp_path / "d.conll", "a O\n\nb O\nc\td\n")
  records = formats.iter_conll(path)
  assert next(records) == {"tokens": ["a"], "tags": ["O"]}
  with pytest.raises(DataError, match=r"d\.conll:4: a tab"):
    next(records)


def _vocabulary(n: int) -> list[str]:
  rng = random.Random(3)
  return ["".join(rng.choice("abcdefghij") for _ in range(rng.randint(3, 9)))
          for _ in range(n)]


def _traced(fn):
  """(result, peak bytes, bytes still held) of fn() under tracemalloc."""
  tracemalloc.start()
  try:
    result = fn()
    current, peak = tracemalloc.get_traced_memory()
  finally:
    tracemalloc.stop()
  return result, peak, current


def test_a_single_file_split_holds_only_its_own_records(tmp_path):
  rng = random.Random(0)
  words = _vocabulary(2000)
  lines = [json.dumps({"text": " ".join(rng.choices(words, k=20)) + f" {i}",
                       "label": str(i % 3)}) for i in range(4000)]
  path = _write(tmp_path / "all.jsonl", "\n".join(lines) + "\n")
  size = (tmp_path / "all.jsonl").stat().st_size
  task = formats.local_task(path, "classification")
  records, peak, kept = _traced(lambda: task.load("validation"))
  expected = [json.loads(l)["text"] for l in lines
              if split_of(normalize_key(json.loads(l)["text"])) ==
              "validation"]
  assert [r["text"] for r in records] == expected
  assert 300 < len(records) < 500
  # About 10% of the records: they take well under the file's size, and
  # reading never held the whole file's records at once.
  assert kept < 0.5 * size, kept / size
  assert peak < 0.6 * size, peak / size
  assert sorted(r["text"] for s in SPLITS for r in task.load(s)) == sorted(
      json.loads(l)["text"] for l in lines)


def test_conll_records_share_repeated_strings(tmp_path):
  rng = random.Random(1)
  words = _vocabulary(3000)
  tags = ("O", "B-PER", "I-PER", "B-LOC")
  blocks = ["".join(f"{w} {rng.choice(tags)}\n"
                    for w in rng.choices(words, k=rng.randint(5, 25)))
            for _ in range(1500)]
  path = _write(tmp_path / "d.conll", "\n".join(blocks))
  size = (tmp_path / "d.conll").stat().st_size
  records, peak, kept = _traced(lambda: formats.read_conll(path))
  assert sum(len(r["tokens"]) for r in records) == sum(
      b.count("\n") for b in blocks)
  outside = [t for r in records for t in r["tags"] if t == "O"]
  assert len(outside) > 500 and all(t is outside[0] for t in outside)
  # One string object per distinct word or tag (two new strings per line
  # would take ~11x the size of the file).
  assert kept < 5.5 * size, kept / size
  assert peak < 6 * size, peak / size
