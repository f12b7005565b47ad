"""Tests for taskemb_jax.tasks: hub converters, local formats, the registry.

The Hugging Face hub is not reachable from the tests, so every hub task is
fed real `datasets.Dataset`s built from the small fixtures under
``tests/fixtures/hub/``. Each fixture holds rows in the hub's own schema,
its ``features`` in the hub's dataset-card form (``dataset_info.features``,
the form `datasets` itself reads from a README), the source the schema was
checked against, and the records the converter must produce.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest

from taskemb_jax import bank, metrics, paper_tasks, tasks
from taskemb_jax.errors import DataError

HUB = Path(__file__).parent / "fixtures" / "hub"

# ----------------------------------------------------------------------------
# A fake hub serving the fixtures.


def _load_fixtures() -> dict[tuple[str, str | None], dict]:
  out = {}
  for f in sorted(HUB.glob("*.json")):
    doc = json.loads(f.read_text(encoding="utf-8"))
    doc["file"] = f.name
    names = doc["name"] if isinstance(doc["name"], list) else [doc["name"]]
    for name in names:
      out[(doc["path"], name)] = doc
  return out


FIXTURES = _load_fixtures()


class FakeHub:
  """Stands in for `paper_tasks._load_hub`; records every (path, name, split)."""

  def __init__(self):
    self.calls: list[tuple[str, str | None, str]] = []

  def __call__(self, path, name, split):
    self.calls.append((path, name, split))
    doc = FIXTURES.get((path, name))
    if doc is None:
      raise DataError(f"fake hub: no fixture for {path}/{name}")
    if split not in doc["splits"]:
      # What the real loader turns `ValueError: Unknown split` into.
      raise DataError(f"fake hub: {path}/{name} has no split {split!r}")
    # The hub card's YAML form, read the way `load_dataset` reads a README.
    features = datasets.Features._from_yaml_list(doc["features"])  # pylint: disable=protected-access
    return datasets.Dataset.from_list(doc["splits"][split], features=features)


@pytest.fixture
def hub(monkeypatch):
  fake = FakeHub()
  monkeypatch.setattr(paper_tasks, "_load_hub", fake)
  return fake


@pytest.fixture
def no_hub(monkeypatch):
  def fail(path, name, split):
    raise AssertionError(f"the hub was asked for {path}/{name} {split}")
  monkeypatch.setattr(paper_tasks, "_load_hub", fail)


def _check_records(task: tasks.Task, records):
  """Shape invariants every record of `task` must meet."""
  for r in records:
    if task.kind == "classification":
      assert set(r) == {"text", "text_pair", "label"}
      assert isinstance(r["text"], str) and r["text"]
      assert r["label"] in task.labels
    elif task.kind == "regression":
      assert set(r) == {"text", "text_pair", "label"}
      assert isinstance(r["label"], float) and 0.0 <= r["label"] <= 5.0
    elif task.kind == "qa":
      assert set(r) == {"id", "question", "context", "answers"}
      assert isinstance(r["id"], str) and r["id"]
      for a in r["answers"]:
        assert set(a) == {"text", "answer_start"}
        assert isinstance(a["answer_start"], int)
        assert a["text"]
        s = a["answer_start"]
        assert r["context"][s:s + len(a["text"])] == a["text"]
    else:
      assert set(r) == {"tokens", "tags"}
      assert len(r["tokens"]) == len(r["tags"]) > 0
      assert all(isinstance(t, str) and t and t != "None" for t in r["tags"])


# ----------------------------------------------------------------------------
# 1. Hub converters on rows in the hub's schema.

# task -> (fixture file, key of its expected records in the fixture or None).
HUB_TASKS = {
    "cola": ("glue_cola.json", None),
    "sst-2": ("glue_sst2.json", None),
    "mrpc": ("glue_mrpc.json", None),
    "sts-b": ("glue_stsb.json", None),
    "qqp": ("glue_qqp.json", None),
    "mnli": ("glue_mnli.json", None),
    "qnli": ("glue_qnli.json", None),
    "rte": ("glue_rte.json", None),
    "wnli": ("glue_wnli.json", None),
    "snli": ("snli.json", None),
    "scitail": ("scitail.json", None),
    "squad-1.1": ("squad.json", None),
    "squad-2.0": ("squad_v2.json", None),
    "newsqa": ("mrqa.json", "newsqa"),
    "hotpotqa": ("mrqa.json", "hotpotqa"),
    "boolq": ("boolq.json", None),
    "drop": ("drop.json", None),
    "duorc-p": ("duorc.json", None),
    "duorc-s": ("duorc.json", None),
    "pos-ewt": ("universal_dependencies_en_ewt.json", None),
    "chunk": ("conll2000.json", None),
    "ner": ("conll2003.json", None),
}


def _fixture_doc(fname: str) -> dict:
  return next(d for d in FIXTURES.values() if d["file"] == fname)


def test_every_hub_task_has_a_fixture():
  hub_tasks = {n for n, t in tasks.TASKS.items() if t.source.startswith("hub:")}
  assert hub_tasks == set(HUB_TASKS)


@pytest.mark.parametrize("name", sorted(HUB_TASKS))
def test_hub_converter(hub, name):
  task = tasks.get_task(name)
  fname, key = HUB_TASKS[name]
  doc = _fixture_doc(fname)
  expected = doc["expected"][key] if key else doc["expected"]
  for split, want in expected.items():
    hub.calls.clear()
    if not want:  # Every row unlabelled (GLUE test, SNLI's -1): none kept.
      with pytest.raises(DataError, match=f"split '{split}' is empty"):
        task.load(split)
    else:
      got = task.load(split)
      _check_records(task, got)
      assert got == want, f"{name} {split}"
    # The converter read the hub dataset its `source` names.
    assert [(p, n) for p, n, _ in hub.calls] == [(doc["path"], hub.calls[0][1])]
    path, cfg, _ = hub.calls[0]
    assert task.source == f"hub:{path}" + (f"/{cfg}" if cfg else "")


def test_glue_labels_follow_the_hub_class_order():
  # ClassLabel names, in index order, of every GLUE config on the hub.
  for name, (fname, _) in HUB_TASKS.items():
    doc = _fixture_doc(fname)
    label = next((f for f in doc["features"] if f["name"] == "label"), None)
    if label is None or not isinstance(label.get("dtype"), dict):
      continue  # Regression (float32) or string labels.
    names = label["dtype"]["class_label"]["names"]
    hub_order = tuple(names[str(i)] for i in range(len(names)))
    assert tasks.TASKS[name].labels == hub_order, name
  assert tasks.TASKS["cola"].labels == ("unacceptable", "acceptable")
  assert tasks.TASKS["wnli"].labels == ("not_entailment", "entailment")
  assert tasks.TASKS["rte"].labels == ("entailment", "not_entailment")
  assert tasks.TASKS["sts-b"].labels is None
  assert tasks.TASKS["scitail"].labels == ("entails", "neutral")


def test_mnli_reads_the_matched_eval_splits(hub):
  task = tasks.get_task("mnli")
  task.load("train")
  task.load("validation")
  with pytest.raises(DataError, match="is empty"):  # Test labels are private.
    task.load("test")
  assert [c[2] for c in hub.calls] == ["train", "validation_matched",
                                      "test_matched"]


def test_chunk_validation_is_the_conll2000_test_split(hub):
  tasks.get_task("chunk").load("validation")
  assert hub.calls == [("eriktks/conll2000", None, "test")]


def test_conll2000_trailing_empty_rows_are_skipped(hub):
  rows = _fixture_doc("conll2000.json")["splits"]
  assert rows["train"][-1]["tokens"] == [] == rows["test"][-1]["tokens"]
  assert len(tasks.get_task("chunk").load("train")) == len(rows["train"]) - 1
  assert len(tasks.get_task("chunk").load("test")) == len(rows["test"]) - 1


def test_duorc_configs(hub):
  tasks.get_task("duorc-p").load("train")
  tasks.get_task("duorc-s").load("train")
  assert [c[:2] for c in hub.calls] == [("ibm/duorc", "ParaphraseRC"),
                                        ("ibm/duorc", "SelfRC")]


def test_glue_test_rows_are_skipped(hub):
  # Unlabelled GLUE test rows carry label -1 (STS-B: the score -1.0).
  for name in ("cola", "sst-2", "mrpc", "qqp", "qnli", "rte", "wnli", "sts-b"):
    with pytest.raises(DataError, match="split 'test' is empty"):
      tasks.get_task(name).load("test")


def test_snli_rows_without_gold_label_are_skipped(hub):
  records = tasks.get_task("snli").load("train")
  rows = _fixture_doc("snli.json")["splits"]["train"]
  assert len(rows) == 4 and len(records) == 3
  assert [r["label"] for r in records] == ["neutral", "contradiction",
                                          "entailment"]


def test_mrqa_spans_are_inclusive_and_other_subsets_skipped(hub):
  doc = _fixture_doc("mrqa.json")
  rows = {r["qid"]: r for r in doc["splits"]["train"]}
  records = tasks.get_task("newsqa").load("train")
  assert {r["id"] for r in records} == {
      q for q, r in rows.items() if r["subset"] == "NewsQA"}
  for rec in records:
    det = rows[rec["id"]]["detected_answers"]
    # One answer per detected answer, at its first char span; the span's
    # end is the index of the answer's last character.
    assert [a["text"] for a in rec["answers"]] == det["text"]
    for a, spans in zip(rec["answers"], det["char_spans"]):
      assert a["answer_start"] == spans["start"][0]
      assert a["answer_start"] + len(a["text"]) - 1 == spans["end"][0]
  hotpot = tasks.get_task("hotpotqa").load("train")
  assert [r["id"] for r in hotpot] == ["5a7a06935542990198eaf050"]


def test_squad_v2_keeps_unanswerable_questions(hub):
  records = tasks.get_task("squad-2.0").load("validation")
  assert records[0]["answers"] == []
  assert records[1]["answers"] == [{"text": "Houston, Texas",
                                    "answer_start": 139}]


def test_drop_keeps_only_span_answers_found_in_the_passage(hub):
  records = tasks.get_task("drop").load("train")
  rows = _fixture_doc("drop.json")["splits"]["train"]
  # Number "2" (found inside "20-yard" by a plain search) and a date are not
  # spans; "Oakland Raiders" is a span that is not in the passage.
  assert "2" in rows[1]["passage"] and rows[1]["answers_spans"]["types"] == [
      "number"]
  assert [r["id"] for r in records] == [rows[0]["query_id"],
                                        rows[4]["query_id"]]


def test_duorc_answers_must_occur_in_the_plot(hub):
  records = tasks.get_task("duorc-s").load("train")
  rows = _fixture_doc("duorc.json")["splits"]["train"]
  by_id = {r["id"]: r for r in records}
  assert rows[2]["question_id"] not in by_id  # "By boat": free-form.
  # The first listed answer is a paraphrase; the second is in the plot.
  assert by_id[rows[1]["question_id"]]["answers"][0]["text"] == (
      "a stolen painting")
  assert by_id[rows[3]["question_id"]]["answers"] == []  # no_answer.


def test_boolq_ids_are_stable_across_processes():
  code = ("from taskemb_jax import paper_tasks; print(paper_tasks._boolq("
          "{'question': 'is it', 'answer': True, 'passage': 'It is.'}, "
          "None)['id'])")
  ids = set()
  for seed in ("1", "2"):
    env = dict(os.environ, PYTHONHASHSEED=seed)
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True,
                         capture_output=True, text=True,
                         cwd=Path(__file__).parent.parent)
    ids.add(out.stdout.strip())
  assert len(ids) == 1 and len(ids.pop()) == 16


def test_pos_ewt_drops_multiword_ranges_and_empty_nodes(hub):
  records = tasks.get_task("pos-ewt").load("train")
  rows = _fixture_doc("universal_dependencies_en_ewt.json")["splits"]["train"]
  assert "don't" in rows[2]["tokens"] and None in rows[2]["xpos"]
  assert rows[1]["tokens"].count("likes") == 2  # Empty node 5.1 = "likes".
  assert records[1]["tokens"] == ["Sue", "likes", "coffee", "and", "Bill",
                                  "tea"]
  assert records[2] == {"tokens": ["I", "do", "n't", "know", "."],
                        "tags": ["PRP", "VBP", "RB", "VB", "."]}


def test_ner_and_chunk_tags_are_bio_names(hub):
  for name in ("ner", "chunk"):
    records = tasks.get_task(name).load("train")
    tags = {t for r in records for t in r["tags"]}
    assert metrics.uses_span_scheme(tags)
    assert all(t == "O" or t[:2] in ("B-", "I-") for t in tags)


def test_hub_failure_is_a_data_error(monkeypatch):
  def load_dataset(*args, **kwargs):
    raise ConnectionError("Couldn't reach 'nyu-mll/glue' on the Hub")
  monkeypatch.setattr(datasets, "load_dataset", load_dataset)
  with pytest.raises(DataError, match=r"nyu-mll/glue/cola split 'train'.*"
                     r"ConnectionError.*data_dir"):
    tasks.get_task("cola").load("train")


# ----------------------------------------------------------------------------
# 2. data_dir: local files win over the hub; local-only tasks.


def _write(path: Path, text: str) -> Path:
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(text, encoding="utf-8")
  return path


def _jsonl(path: Path, rows) -> Path:
  return _write(path, "".join(json.dumps(r) + "\n" for r in rows))


def test_data_dir_folder_wins_over_the_hub(tmp_path, no_hub):
  _jsonl(tmp_path / "cola" / "train.jsonl",
         [{"text": "Local sentence.", "label": "acceptable"}])
  _jsonl(tmp_path / "sts-b" / "dev.jsonl",
         [{"text": "a", "text_pair": "b", "label": "4.5"}])
  _write(tmp_path / "ner" / "test.conll", "Paris B-LOC\nis O\n")
  squad = {"data": [{"paragraphs": [{"context": "Local context.", "qas": [
      {"id": "q1", "question": "What?",
       "answers": [{"text": "Local", "answer_start": 0}]}]}]}]}
  _write(tmp_path / "squad-1.1" / "train.json", json.dumps(squad))
  data_dir = str(tmp_path)
  assert tasks.get_task("cola").load("train", data_dir) == [
      {"text": "Local sentence.", "text_pair": None, "label": "acceptable"}]
  assert tasks.get_task("sts-b").load("validation", data_dir) == [
      {"text": "a", "text_pair": "b", "label": 4.5}]
  assert tasks.get_task("ner").load("test", data_dir) == [
      {"tokens": ["Paris", "is"], "tags": ["B-LOC", "O"]}]
  assert tasks.get_task("squad-1.1").load("train", data_dir)[0]["id"] == "q1"


def test_data_dir_without_the_task_folder_uses_the_hub(tmp_path, hub):
  _jsonl(tmp_path / "sst-2" / "train.jsonl",
         [{"text": "x", "label": "positive"}])
  records = tasks.get_task("cola").load("train", str(tmp_path))
  assert hub.calls == [("nyu-mll/glue", "cola", "train")]
  assert records[0]["label"] == "acceptable"


def test_data_dir_folder_missing_a_split(tmp_path, no_hub):
  _jsonl(tmp_path / "rte" / "train.jsonl", [{"text": "x", "label": "y"}])
  with pytest.raises(DataError, match="no validation file"):
    tasks.get_task("rte").load("validation", str(tmp_path))


LOCAL_ONLY = ["wikihop", "cq", "comqa", "ccg", "pos-ptb", "parent", "gparent",
              "ggparent", "st", "ged", "conj"]


@pytest.mark.parametrize("name", LOCAL_ONLY)
def test_local_only_task_needs_data_dir(name):
  task = tasks.get_task(name)
  assert task.source == "local"
  with pytest.raises(DataError, match=r"data_dir") as e:
    task.load("train")
  assert f"<data_dir>/{name}/" in str(e.value)
  assert "no public copy" in str(e.value)


def test_local_only_tasks_read_data_dir(tmp_path):
  _write(tmp_path / "ccg" / "train.txt",
         "-DOCSTART- -X- O\n\nPierre N/N\nVinken N\n\n")
  _write(tmp_path / "ccg" / "dev.conll", "He NP\n")
  squad = {"version": "v2.0", "data": [{"paragraphs": [{
      "context": "Ottawa is the capital of Canada.",
      "qas": [{"id": "c1", "question": "Capital of Canada?",
               "answers": [{"text": "Ottawa", "answer_start": 0}]}]}]}]}
  _write(tmp_path / "cq" / "train.json", json.dumps(squad))
  data_dir = str(tmp_path)
  assert tasks.get_task("ccg").load("train", data_dir) == [
      {"tokens": ["Pierre", "Vinken"], "tags": ["N/N", "N"]}]
  assert tasks.get_task("ccg").load("validation", data_dir) == [
      {"tokens": ["He"], "tags": ["NP"]}]
  assert tasks.get_task("cq").load("train", data_dir) == [
      {"id": "c1", "question": "Capital of Canada?",
       "context": "Ottawa is the capital of Canada.",
       "answers": [{"text": "Ottawa", "answer_start": 0}]}]
  with pytest.raises(DataError, match=r"ged: no train file \(looked for "
                     r"train\.conll, train\.txt, train\.tsv\)"):
    tasks.get_task("ged").load("train", data_dir)


# ----------------------------------------------------------------------------
# 3. Generic readers.


def test_read_jsonl_classification(tmp_path):
  path = _write(tmp_path / "d.jsonl", "\n".join([
      json.dumps({"text": "good", "label": "pos"}),
      "",
      "   ",
      json.dumps({"text": "a", "text_pair": "b", "label": 1}),
      json.dumps({"text": "c", "label": True}),
      json.dumps({"text": "d", "label": False, "extra": 3}),
  ]) + "\n")
  assert tasks.read_jsonl(str(path), "classification") == [
      {"text": "good", "text_pair": None, "label": "pos"},
      {"text": "a", "text_pair": "b", "label": "1"},
      {"text": "c", "text_pair": None, "label": "true"},
      {"text": "d", "text_pair": None, "label": "false"},
  ]


def test_read_jsonl_regression(tmp_path):
  path = _jsonl(tmp_path / "r.jsonl", [
      {"text": "a", "label": 3}, {"text": "b", "label": 2.5},
      {"text": "c", "label": "4.25"}, {"text": "d", "label": " -1e-1 "}])
  labels = [r["label"] for r in tasks.read_jsonl(str(path), "regression")]
  assert labels == [3.0, 2.5, 4.25, -0.1]
  assert all(isinstance(x, float) for x in labels)


@pytest.mark.parametrize("line, kind, message", [
    ('{"text": "a", "label": 1', "classification", r":3: not valid JSON"),
    ('[1, 2]', "classification", r":3: expected a JSON object"),
    ('{"label": "x"}', "classification", r":3: field 'text' missing"),
    ('{"text": "  ", "label": "x"}', "classification", r":3: field 'text'"),
    ('{"text": 5, "label": "x"}', "classification", r":3: field 'text'"),
    ('{"text": "a", "text_pair": 3, "label": "x"}', "classification",
     r":3: field 'text_pair' must be a string"),
    ('{"text": "a"}', "classification", r":3: field 'label' missing"),
    ('{"text": "a", "label": 0.5}', "classification",
     r":3: classification label 0\.5 must be a string or an integer"),
    ('{"text": "a", "label": ["x"]}', "classification", r":3: classification"),
    ('{"text": "a", "label": "high"}', "regression",
     r":3: regression label 'high' is not a number"),
    ('{"text": "a", "label": true}', "regression",
     r":3: regression label True is not a number"),
    ('{"text": "a", "label": {"v": 1}}', "regression", r":3: regression label"),
    ('{"text": "a", "label": NaN}', "regression", r":3: .* is not finite"),
    ('{"text": "a", "label": "nan"}', "regression", r":3: .* is not finite"),
    ('{"text": "a", "label": Infinity}', "regression", r":3: .* not finite"),
])
def test_read_jsonl_errors_name_file_and_line(tmp_path, line, kind, message):
  # Line 2 is blank: line numbers count every line of the file.
  path = _write(tmp_path / "bad.jsonl",
                '{"text": "ok", "label": 1}\n\n' + line + "\n")
  with pytest.raises(DataError, match=str(path).replace(".", r"\.") + message):
    tasks.read_jsonl(str(path), kind)


def test_read_jsonl_unlabelled_and_missing_file(tmp_path):
  path = _jsonl(tmp_path / "u.jsonl", [{"text": "a"}])
  assert tasks.read_jsonl(str(path), "classification", labelled=False) == [
      {"text": "a", "text_pair": None, "label": None}]
  with pytest.raises(DataError, match="file not found"):
    tasks.read_jsonl(str(tmp_path / "missing.jsonl"), "classification")
  latin1 = tmp_path / "latin1.jsonl"
  latin1.write_bytes('{"text": "caf\xe9", "label": 1}\n'.encode("latin-1"))
  with pytest.raises(DataError, match="not UTF-8"):
    tasks.read_jsonl(str(latin1), "classification")


SQUAD_V1 = {"version": "1.1", "data": [{"title": "T", "paragraphs": [
    {"context": "The cat sat on the mat. The dog sat too.",
     "qas": [{"id": "a1", "question": "Where did the cat sit?",
              "answers": [{"text": "on the mat", "answer_start": 12},
                          {"text": "the mat", "answer_start": 15}]},
             {"id": "a2", "question": "Who else sat?",
              "answers": [{"text": "The dog", "answer_start": 24}]}]},
    {"context": "Second paragraph.",
     "qas": [{"id": "a3", "question": "Which?",
              "answers": [{"text": "Second", "answer_start": 0}]}]}]}]}


def test_read_squad_v1(tmp_path):
  path = _write(tmp_path / "v1.json", json.dumps(SQUAD_V1))
  records = tasks.read_squad(str(path))
  assert [r["id"] for r in records] == ["a1", "a2", "a3"]
  assert records[0] == {
      "id": "a1", "question": "Where did the cat sit?",
      "context": "The cat sat on the mat. The dog sat too.",
      "answers": [{"text": "on the mat", "answer_start": 12},
                  {"text": "the mat", "answer_start": 15}]}
  assert records[2]["context"] == "Second paragraph."


def test_read_squad_v2_impossible(tmp_path):
  doc = {"version": "v2.0", "data": [{"title": "T", "paragraphs": [{
      "context": "Normandy is a region in France.",
      "qas": [{"id": "p1", "question": "In what country is Normandy?",
               "answers": [{"text": "France", "answer_start": 24}],
               "is_impossible": False},
              {"id": "p2", "question": "What is France a region of?",
               "answers": [], "is_impossible": True,
               "plausible_answers": [{"text": "Normandy",
                                      "answer_start": 0}]}]}]}]}
  path = _write(tmp_path / "v2.json", json.dumps(doc))
  records = tasks.read_squad(str(path))
  assert records[0]["answers"] == [{"text": "France", "answer_start": 24}]
  assert records[1]["answers"] == []


def test_read_squad_flat_jsonl(tmp_path):
  path = _write(tmp_path / "qa.jsonl", "\n".join([
      json.dumps({"id": "x", "question": "Q?", "context": "Answer here.",
                  "answers": [{"text": "here", "answer_start": 7}]}),
      "",
      json.dumps({"question": "None?", "context": "Nothing."}),
  ]) + "\n")
  assert tasks.read_squad(str(path)) == [
      {"id": "x", "question": "Q?", "context": "Answer here.",
       "answers": [{"text": "here", "answer_start": 7}]},
      {"id": "3", "question": "None?", "context": "Nothing.", "answers": []}]


def test_read_squad_errors(tmp_path):
  bad = json.loads(json.dumps(SQUAD_V1))
  bad["data"][0]["paragraphs"][0]["qas"][1]["answers"][0]["answer_start"] = 23
  path = _write(tmp_path / "bad.json", json.dumps(bad))
  with pytest.raises(DataError, match=r"question a2: answer 'The dog' is not "
                     r"in the context at answer_start=23"):
    tasks.read_squad(str(path))
  bad["data"][0]["paragraphs"][0]["qas"][1]["answers"][0] = {"text": "x"}
  path = _write(tmp_path / "bad2.json", json.dumps(bad))
  with pytest.raises(DataError, match=r"question a2: an answer needs 'text' "
                     r"and an integer 'answer_start'"):
    tasks.read_squad(str(path))
  for i, doc in enumerate(([{"context": "c"}], {"version": "1.1"},
                           {"data": {"paragraphs": []}})):
    path = _write(tmp_path / f"not{i}.json", json.dumps(doc))
    with pytest.raises(DataError, match="not SQuAD JSON"):
      tasks.read_squad(str(path))
  path = _write(tmp_path / "broken.json", '{"data": [\n  {"paragraphs": ]}')
  with pytest.raises(DataError, match=r"broken\.json:2: not valid JSON"):
    tasks.read_squad(str(path))
  path = _write(tmp_path / "flat.jsonl",
                json.dumps({"id": "q", "question": "Q?"}) + "\n")
  with pytest.raises(DataError, match=r"flat\.jsonl:1: field 'context'"):
    tasks.read_squad(str(path))
  path = _write(tmp_path / "flat2.jsonl", json.dumps(
      {"id": "q9", "question": "Q?", "context": "abc",
       "answers": [{"text": "abd", "answer_start": 0}]}) + "\n")
  with pytest.raises(DataError, match=r"question q9: answer 'abd'"):
    tasks.read_squad(str(path))
  with pytest.raises(DataError, match="file not found"):
    tasks.read_squad(str(tmp_path / "missing.json"))


def test_read_conll(tmp_path):
  path = _write(tmp_path / "d.conll", "\n".join([
      "-DOCSTART- -X- -X- O",
      "",
      "EU NNP B-NP B-ORG",
      "rejects VBZ  B-VP O",
      "",
      "",
      "-DOCSTART- -X- -X- O",
      "",
      "Peter NNP B-NP B-PER",
      "Blackburn NNP I-NP I-PER",
      "",
      "BRUSSELS NNP B-NP B-LOC",
      "1996-08-22 CD I-NP O",  # No blank line at the end of the file.
  ]))
  assert tasks.read_conll(str(path)) == [
      {"tokens": ["EU", "rejects"], "tags": ["B-ORG", "O"]},
      {"tokens": ["Peter", "Blackburn"], "tags": ["B-PER", "I-PER"]},
      {"tokens": ["BRUSSELS", "1996-08-22"], "tags": ["B-LOC", "O"]},
  ]


def test_read_conll_one_column_line_is_an_error(tmp_path):
  path = _write(tmp_path / "d.conll", "a B\nb C\n\nc D\nlonely\n")
  with pytest.raises(DataError, match=r"d\.conll:5: expected 'word \.\.\. "
                     r"tag' columns, got 'lonely'"):
    tasks.read_conll(str(path))
  # Unlabelled files (for prediction) may have one column.
  path = _write(tmp_path / "u.conll", "a\nb\n\nc\nlonely\n")
  assert tasks.read_conll(str(path), labelled=False) == [
      {"tokens": ["a", "b"], "tags": None},
      {"tokens": ["c", "lonely"], "tags": None}]


def test_read_file_dispatch(tmp_path):
  with pytest.raises(DataError, match="file not found"):
    tasks.read_file(str(tmp_path / "nope.conll"), "tagging")
  path = _write(tmp_path / "t.tsv", "w\tT\n")
  assert tasks.read_file(str(path), "tagging") == [
      {"tokens": ["w"], "tags": ["T"]}]
  path = _write(tmp_path / "u.txt", "w\nx\n")
  task = tasks.local_file_task(str(path), "tagging")
  assert task.load("test") == [{"tokens": ["w", "x"], "tags": None}]


def test_local_task_folder(tmp_path):
  folder = tmp_path / "mytask"
  _jsonl(folder / "train.jsonl", [{"text": "a", "label": "x"},
                                  {"text": "b", "label": "y"}])
  _jsonl(folder / "dev.jsonl", [{"text": "c", "label": "x"}])
  task = tasks.local_task(str(folder), "classification")
  assert task.name == f"classification:{folder}"
  assert task.source == "local" and task.family == "classification"
  assert [r["text"] for r in task.load("train")] == ["a", "b"]
  assert [r["text"] for r in task.load("validation")] == ["c"]
  with pytest.raises(DataError, match=r"no test file \(looked for "
                     r"test\.jsonl\)"):
    task.load("test")
  _write(folder / "test.jsonl", "")
  with pytest.raises(DataError, match="split 'test' is empty"):
    task.load("test")


def test_local_task_folder_valid_alias_and_precedence(tmp_path):
  _jsonl(tmp_path / "valid.jsonl", [{"text": "v", "label": 1.5}])
  task = tasks.local_task(str(tmp_path), "regression")
  assert task.load("validation") == [
      {"text": "v", "text_pair": None, "label": 1.5}]
  _jsonl(tmp_path / "validation.jsonl", [{"text": "w", "label": 2}])
  assert task.load("validation")[0]["text"] == "w"  # 'validation' first.


def test_local_task_single_file_split_is_deterministic(tmp_path):
  rows = [{"text": f"Example sentence number {i}.", "label": str(i % 3)}
          for i in range(200)]
  path = _jsonl(tmp_path / "all.jsonl", rows)

  def splits_of(p):
    task = tasks.local_task(str(p), "classification")
    return {s: [r["text"] for r in task.load(s)] for s in tasks.SPLITS}

  got = splits_of(path)
  texts = [t for s in tasks.SPLITS for t in got[s]]
  assert sorted(texts) == sorted(r["text"] for r in rows)  # Once each.
  assert all(got[s] for s in tasks.SPLITS)
  assert 120 <= len(got["train"]) <= 190
  for split, members in got.items():
    for text in members:
      assert bank.split_of(bank.normalize_key(text)) == split
  # The split of a record depends on its text only, not on the file order.
  shuffled = list(rows)
  random.Random(0).shuffle(shuffled)
  again = splits_of(_jsonl(tmp_path / "shuffled.jsonl", shuffled))
  assert {s: sorted(v) for s, v in again.items()} == {
      s: sorted(v) for s, v in got.items()}


def test_local_task_single_file_tagging(tmp_path):
  sentences = [f"w{i} x{i}" for i in range(30)]
  path = _write(tmp_path / "all.conll", "\n\n".join(
      "\n".join(f"{w} T" for w in s.split()) for s in sentences) + "\n")
  task = tasks.local_task(str(path), "tagging")
  seen = []
  for split in tasks.SPLITS:
    try:
      seen += [" ".join(r["tokens"]) for r in task.load(split)]
    except DataError:  # A small file may leave a split empty.
      pass
  assert sorted(seen) == sorted(sentences)


def test_local_task_errors(tmp_path):
  with pytest.raises(DataError, match="no such file or folder"):
    tasks.local_task(str(tmp_path / "nope"), "qa")
  with pytest.raises(DataError, match="unknown task kind 'ranking'"):
    tasks.local_task(str(tmp_path), "ranking")


def test_get_task_kind_and_path(tmp_path):
  _jsonl(tmp_path / "train.jsonl", [{"text": "a", "label": 0.5}])
  task = tasks.get_task(f"regression:{tmp_path}")
  assert task.kind == "regression" and task.metric == "pearson"
  assert task.load("train")[0]["label"] == 0.5
  assert tasks.get_task(f"qa:{tmp_path}").kind == "qa"
  with pytest.raises(DataError, match="no such file or folder"):
    tasks.get_task(f"tagging:{tmp_path / 'missing'}")


def test_unknown_task_lists_the_known_ones():
  with pytest.raises(DataError) as e:
    tasks.get_task("no-such-task")
  message = str(e.value)
  assert "unknown task 'no-such-task'" in message
  for name in ("cola", "squad-1.1", "ner", "ccg"):
    assert name in message
  assert "<kind>:<path>" in message
  with pytest.raises(DataError, match="unknown task 'sentiment:x'"):
    tasks.get_task("sentiment:x")  # Not a kind: not a path spec either.


@pytest.mark.parametrize("kind, names", [
    ("classification", "validation.jsonl, dev.jsonl, valid.jsonl"),
    ("qa", "validation.json, validation.jsonl, dev.json, dev.jsonl, "
     "valid.json, valid.jsonl"),
    ("tagging", "validation.conll, validation.txt, validation.tsv, dev.conll, "
     "dev.txt, dev.tsv, valid.conll, valid.txt, valid.tsv"),
])
def test_find_split_file_lists_the_names_it_tried(tmp_path, kind, names):
  with pytest.raises(DataError) as e:
    tasks.find_split_file(str(tmp_path), "validation", kind)
  assert str(e.value) == (f"{tmp_path}: no validation file (looked for "
                          f"{names})")
  _write(tmp_path / "dev.json", "{}")
  if kind == "qa":
    assert tasks.find_split_file(str(tmp_path), "validation", kind) == str(
        tmp_path / "dev.json")


# ----------------------------------------------------------------------------
# 4. Registry invariants.


def _metric_names() -> dict[str, set[str]]:
  """Metric names each kind's scorer in taskemb_jax.metrics returns."""
  cls = set(metrics.classification_metrics(np.array([[2, 1], [0, 3]])))
  cls |= set(metrics.classification_metrics(np.eye(3) * 2 + 1))
  reg = set(metrics.regression_metrics(np.array([1.0, 2.0, 3.0]),
                                       np.array([1.0, 2.5, 2.0])))
  qa = set(metrics.squad_metrics({"a": "x", "b": ""}, {"a": ["x"], "b": []}))
  tag = set(metrics.tagging_metrics([["B-NP", "I-NP", "O"]],
                                    [["B-NP", "O", "O"]]))
  return {"classification": cls, "regression": reg, "qa": qa, "tagging": tag}


def test_paper_tasks_are_registered():
  assert set(tasks.PAPER_TASKS) == {"classification", "qa", "tagging"}
  names = [n for group in tasks.PAPER_TASKS.values() for n in group]
  assert len(names) == len(set(names)) == 33
  for family, group in tasks.PAPER_TASKS.items():
    assert len(group) == 11, family
    for name in group:
      task = tasks.get_task(name)
      assert task.name == name
      assert task.family == family, name
      assert task.size and task.size > 0, name
      assert task.description
      assert task.source == "local" or task.source.startswith("hub:")
  assert tasks.get_task("sts-b").kind == "regression"
  assert {tasks.get_task(n).kind for n in tasks.PAPER_TASKS["classification"]
          if n != "sts-b"} == {"classification"}


def test_every_task_metric_is_computed_by_the_metrics_module():
  known = _metric_names()
  assert {"accuracy", "f1", "mcc", "macro_f1"} <= known["classification"]
  assert {"pearson", "spearman"} <= known["regression"]
  assert {"f1", "exact_match"} <= known["qa"]
  assert {"accuracy", "span_f1"} <= known["tagging"]
  for name, task in tasks.TASKS.items():
    assert task.metric in known[task.kind], (name, task.kind, task.metric)
    if task.kind == "classification" and task.labels:
      assert len(set(task.labels)) == len(task.labels) >= 2, name
  for kind, metric in tasks.DEFAULT_METRIC.items():
    assert metric in known[kind]
  # Paper metrics: MCC for CoLA, F1 for MRPC/QQP, Pearson for STS-B.
  assert tasks.TASKS["cola"].metric == "mcc"
  assert tasks.TASKS["mrpc"].metric == tasks.TASKS["qqp"].metric == "f1"
  assert tasks.TASKS["sts-b"].metric == "pearson"
  assert {tasks.TASKS[n].metric for n in tasks.PAPER_TASKS["qa"]} == {"f1"}
  assert tasks.TASKS["ner"].metric == tasks.TASKS["chunk"].metric == "span_f1"


def test_task_validation_and_registration():
  with pytest.raises(ValueError, match="kind 'ranking'"):
    tasks.Task(name="x", kind="ranking", loader=lambda s, d: [])
  task = tasks.Task(name="x", kind="qa", loader=lambda s, d: [])
  assert task.metric == "f1" and task.family == "qa"
  with pytest.raises(ValueError, match="registered twice"):
    tasks.register(tasks.Task(name="cola", kind="classification",
                              loader=lambda s, d: []))


def test_list_stage_prints_every_task(capsys):
  names = tasks.list_stage(None, None)
  out = capsys.readouterr().out
  assert names == sorted(tasks.TASKS)
  for group in tasks.PAPER_TASKS.values():
    for name in group:
      assert name in names
  assert len(out.splitlines()) == len(names)
