"""What a job computes besides the engine's ranking: validation of uploads,
the views' ranks and agreement, the class warning, the task map."""

import json
import os

import numpy as np
import pytest

import service_fixtures as sf
import synthetic
from taskemb_jax.errors import DataError
from taskemb_jax.service import pipeline


def test_shown_names_are_never_paths():
  assert pipeline.shown_name("../../etc/passwd.jsonl") == "passwd.jsonl"
  assert pipeline.shown_name("C:\\Users\\me\\my data.jsonl") == \
      "my_data.jsonl"
  assert pipeline.shown_name("..") == "upload"
  assert pipeline.shown_name("<img src=x onerror=alert(1)>.jsonl") == \
      "img_src_x_onerror_alert_1_.jsonl"
  assert pipeline.shown_name(None) == "upload"
  assert pipeline.extension("a.JSONL", "classification", b"") == ".jsonl"
  assert pipeline.extension("a.txt", "classification", b"") == ".jsonl"
  assert pipeline.extension("squad", "qa", b'\xef\xbb\xbf {"data": [') == \
      ".json"
  assert pipeline.extension("squad", "qa", b'{"question": "q"}') == ".jsonl"
  assert pipeline.extension("x.tsv", "tagging", b"") == ".tsv"


def test_the_page_s_sample_is_a_valid_upload():
  path = os.path.join(os.path.dirname(pipeline.__file__), "static", "samples",
                      "rt-freshness-200.jsonl")
  d = pipeline.detect(path, "classification", "sample.jsonl", 1000)
  assert d["splits"] == {"train": 160, "validation": 20, "test": 20}
  assert d["labels"] == {"fresh": 100, "rotten": 100}


def test_detect_reports_what_the_pipeline_will_see(tmp_path):
  path = sf.classification_file(str(tmp_path / "c.jsonl"), n=100)
  d = pipeline.detect(path, "classification", "c.jsonl", 1000)
  assert d["examples"] == 100 and sum(d["splits"].values()) == 100
  assert d["labels"] == {"negative": 50, "positive": 50}
  assert d["splits"]["train"] > d["splits"]["validation"] > 0
  reg = sf.write_jsonl(str(tmp_path / "r.jsonl"), [
      {"text": f"text {i}", "label": [1.5, -2, 4.5][i % 3]}
      for i in range(30)])
  d = pipeline.detect(reg, "regression", "r.jsonl", 1000)
  assert d["range"] == [-2.0, 4.5] and d["mean"] == pytest.approx(4 / 3)
  # The engine's own checks of the split: a duplicated text is one example.
  dup = sf.write_jsonl(str(tmp_path / "dup.jsonl"),
                       [{"text": "same", "label": i % 2} for i in range(30)])
  with pytest.raises(DataError, match=r"^dup.jsonl: no example falls into "
                     r"the (validation|test) split \(1 distinct texts"):
    pipeline.detect(dup, "classification", "dup.jsonl", 1000)
  folder = synthetic.write_task(str(tmp_path / "t"), "tagging", n_train=20)
  d = pipeline.detect(folder + "/train.conll", "tagging", "t.conll", 1000)
  assert d["examples"] == 20 and set(d["labels"]) == {"O", "B-ANIMAL"}
  assert d["tokens"] == sum(d["labels"].values())
  qa = synthetic.write_task(str(tmp_path / "q"), "qa", n_train=20)
  d = pipeline.detect(qa + "/train.jsonl", "qa", "q.jsonl", 1000)
  assert d["questions"] == 20 and d["answered"] == 20


@pytest.mark.parametrize("lines, kind, message", [
    (['{"text": "a", "label": "x"}', '{"text": "b", "label": }'],
     "classification", "mine.jsonl:2: "),
    (['{"text": "a", "label": "x"}', '{"text": "b"}'], "classification",
     "mine.jsonl:2: field 'label' missing"),
    (['{"text": "a", "label": "abc"}'], "regression",
     "mine.jsonl:1: regression label 'abc' is not a number"),
])
def test_bad_lines_are_named_as_the_cli_names_them(tmp_path, lines, kind,
                                                    message):
  path = tmp_path / "mine.jsonl"
  path.write_text("\n".join(lines) + "\n")
  with pytest.raises(DataError) as e:
    pipeline.detect(str(path), kind, "mine.jsonl", 1000)
  assert str(e.value).startswith(message), str(e.value)
  assert str(tmp_path) not in str(e.value)


def test_untrainable_and_oversized_files(tmp_path):
  one = sf.write_jsonl(str(tmp_path / "one.jsonl"),
                       [{"text": f"t {i}", "label": "same"} for i in range(30)])
  with pytest.raises(DataError, match=r"^task 'classification:one.jsonl': "
                     r"only one label in train split \('same'\)"):
    pipeline.detect(one, "classification", "one.jsonl", 1000)
  many = sf.classification_file(str(tmp_path / "many.jsonl"), n=31)
  with pytest.raises(DataError, match=r"^many.jsonl: 31 examples; this "
                     r"server takes at most 30 \(config.serve.max_examples\)"):
    pipeline.detect(many, "classification", "many.jsonl", 30)
  empty = tmp_path / "empty.jsonl"
  empty.write_text("\n")
  with pytest.raises(DataError, match="^empty.jsonl: no examples"):
    pipeline.detect(str(empty), "classification", "empty.jsonl", 30)
  with pytest.raises(DataError, match="kind 'text'"):
    pipeline.detect(str(empty), "text", "empty.jsonl", 30)


def _loaded(classes):
  return {n: {"entry": {"family": c, "num_examples": 10},
              "taskemb": {}, "textemb": None} for n, c in classes.items()}


def test_views_ranks_agreement_and_class_warning():
  loaded = _loaded({"A": "qa", "B": "tagging", "C": "classification",
                    "D": "classification"})
  views = {"taskemb": {"A": 0.9, "B": 0.8, "C": 0.7, "D": 0.1},
           "textemb": {"A": 0.1, "B": 0.9, "C": 0.8, "D": 0.7},
           "description": {"C": 0.5, "D": 0.4}}
  r = pipeline.build_result(
      target="t.jsonl", kind="regression", method="taskemb", views=views,
      loaded=loaded, descriptions={"A": "about A"}, top_k=2)
  assert [row["source"] for row in r["ranking"]] == ["A", "B", "C", "D"]
  a, b, c, d = r["ranking"]
  assert a["ranks"] == {"taskemb": 1, "textemb": 4}
  assert c["ranks"] == {"taskemb": 3, "textemb": 2, "description": 1}
  assert a["top_in"] == ["taskemb"] and b["top_in"] == ["taskemb", "textemb"]
  assert c["top_in"] == ["textemb", "description"]
  assert d["top_in"] == ["description"] and a["description"] == "about A"
  assert r["agreement"] == {"taskemb/textemb": 1, "taskemb/description": 0,
                            "textemb/description": 1}
  assert r["class"] == "classification"
  assert r["warnings"] and "2 of the best 2 sources are qa / tagging" in \
      r["warnings"][0]
  # Half of the top of the target's class: no warning.
  r = pipeline.build_result(
      target="t", kind="tagging", method="taskemb", views=views,
      loaded=loaded, descriptions={}, top_k=2)
  assert r["warnings"] == []
  assert json.loads(json.dumps(r)) == r  # Plain JSON.


def test_task_map_is_a_pca_of_normalised_taskemb():
  rng = np.random.default_rng(0)
  loaded = {}
  for name, fam in (("a", "qa"), ("b", "tagging"), ("c", "classification"),
                    ("new", "classification")):
    loaded[name] = {"entry": {"family": fam}, "textemb": None, "taskemb": {
        "x": rng.normal(size=4) * 10, "y": rng.normal(size=4),
        "only_some": rng.normal(size=4)}}
  del loaded["a"]["taskemb"]["only_some"]  # Not shared: left out.
  points = pipeline.task_map(loaded, target="new")
  assert [p["name"] for p in points] == ["a", "b", "c", "new"]
  assert [p["target"] for p in points] == [False, False, False, True]
  vec = {n: np.concatenate([t["taskemb"][c] / np.linalg.norm(t["taskemb"][c])
                            for c in ("x", "y")]) for n, t in loaded.items()}
  xy = {p["name"]: np.array([p["x"], p["y"]]) for p in points}
  # Two components keep most of the spread: distances shrink, never grow.
  for m in vec:
    for n in vec:
      assert np.linalg.norm(xy[m] - xy[n]) <= np.linalg.norm(
          vec[m] - vec[n]) + 1e-9
  total = sum(np.sum((vec[n] - np.mean(list(vec.values()), 0)) ** 2)
              for n in vec)
  kept = sum(np.sum(xy[n] ** 2) for n in xy)
  assert kept <= total + 1e-9 and kept >= 0.6 * total
