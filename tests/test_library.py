"""The task library: round trip, overwrite rule, atomic writes, refusals."""

import json
import os

import numpy as np
import pytest

from taskemb_jax import library
from taskemb_jax.errors import LibraryError

BASE = {"model": "m1", "tokenizer": "t1"}
TASKEMB_OPTS = {"estimator": "empirical", "finetune": "full",
                "max_length": 128, "num_examples": 100, "seed": 0,
                "components": ["layer_0/output", "pooler"]}


def entry(name, base=BASE, n=100):
  return {"name": name, "kind": "classification", "family": "classification",
          "metric": "accuracy", "size": 1000, "num_examples": n, "base": base}


def emb(seed):
  rng = np.random.default_rng(seed)
  return (rng.normal(size=8).astype(np.float32),
          {"layer_0/output": rng.random(8).astype(np.float32),
           "pooler": rng.random(8).astype(np.float32)})


def test_round_trip_and_manifest(tmp_path):
  lib = str(tmp_path / "lib")
  text, task = emb(0)
  library.add(lib, entry("a"), textemb=text, textemb_options={"max_length": 1})
  library.add(lib, entry("a"), taskemb=task, taskemb_options=TASKEMB_OPTS)
  library.add(lib, entry("b/c:d"), textemb=text,
              textemb_options={"max_length": 1})
  got = library.load(lib, "a")
  np.testing.assert_array_equal(got["textemb"], text)
  assert set(got["taskemb"]) == set(task)
  for k in task:
    np.testing.assert_array_equal(got["taskemb"][k], task[k])
  assert library.tasks(lib) == ["a", "b/c:d"]
  manifest = json.load(open(os.path.join(lib, "manifest.json")))
  assert manifest["tasks"]["a"]["taskemb"]["estimator"] == "empirical"
  assert manifest["tasks"]["a"]["textemb"] == {"max_length": 1}
  # One folder per task with the two files and no leftovers.
  assert sorted(os.listdir(lib)) == sorted(
      ["manifest.json", "a", manifest["tasks"]["b/c:d"]["folder"]])
  assert sorted(os.listdir(os.path.join(lib, "a"))) == [
      "entry.json", "taskemb.npz", "textemb.npy"]


def test_existing_embedding_needs_overwrite(tmp_path):
  lib = str(tmp_path / "lib")
  text, task = emb(0)
  library.add(lib, entry("a"), textemb=text, textemb_options={})
  with pytest.raises(LibraryError, match="already has a textemb.*overwrite"):
    library.add(lib, entry("a"), textemb=text * 2, textemb_options={})
  np.testing.assert_array_equal(library.load(lib, "a")["textemb"], text)
  library.add(lib, entry("a"), textemb=text * 2, textemb_options={},
              overwrite=True)
  np.testing.assert_array_equal(library.load(lib, "a")["textemb"], text * 2)


def test_other_base_model_is_refused(tmp_path):
  lib = str(tmp_path / "lib")
  text, task = emb(0)
  library.add(lib, entry("a"), textemb=text, textemb_options={})
  other = {"model": "m2", "tokenizer": "t1"}
  with pytest.raises(LibraryError, match="another base model"):
    library.add(lib, entry("a", base=other), taskemb=task,
                taskemb_options=TASKEMB_OPTS)
  library.add(lib, entry("b", base=other), taskemb=task,
              taskemb_options=TASKEMB_OPTS)
  library.add(lib, entry("c"), taskemb=task, taskemb_options=TASKEMB_OPTS)
  entries = [library.load(lib, n)["entry"] for n in ("b", "c")]
  with pytest.raises(LibraryError, match="different base models"):
    library.check_compatible(entries, "taskemb")
  library.check_compatible([entries[1], entries[1]], "taskemb")


def test_other_options_are_refused_but_data_size_is_not(tmp_path):
  lib = str(tmp_path / "lib")
  _, task = emb(0)
  library.add(lib, entry("a"), taskemb=task, taskemb_options=TASKEMB_OPTS)
  library.add(lib, entry("b", n=7), taskemb=task,
              taskemb_options=dict(TASKEMB_OPTS, num_examples=7, seed=3))
  library.add(lib, entry("c"), taskemb=task,
              taskemb_options=dict(TASKEMB_OPTS, estimator="sampled"))
  a, b, c = (library.load(lib, n)["entry"] for n in "abc")
  library.check_compatible([a, b], "taskemb")
  with pytest.raises(LibraryError, match="different options \\(estimator\\)"):
    library.check_compatible([a, c], "taskemb")
  with pytest.raises(LibraryError, match="has no textemb"):
    library.check_compatible([a], "textemb")


def test_non_finite_is_never_stored(tmp_path):
  lib = str(tmp_path / "lib")
  text, _ = emb(0)
  text[2] = np.nan
  with pytest.raises(LibraryError, match="non-finite"):
    library.add(lib, entry("a"), textemb=text, textemb_options={})
  assert library.tasks(lib) == []


@pytest.mark.parametrize("kill_at", range(1, 7))
def test_kill_at_any_point_leaves_old_or_new(tmp_path, monkeypatch, kill_at):
  """A run killed at the k-th file operation of an overwrite."""
  lib = str(tmp_path / "lib")
  text, task = emb(0)
  library.add(lib, entry("a"), textemb=text, textemb_options={"v": 1})
  library.add(lib, entry("z"), textemb=text, textemb_options={"v": 1})
  calls = {"n": 0}
  real_replace = os.replace

  def dying_replace(src, dst):
    calls["n"] += 1
    if calls["n"] == kill_at:
      raise KeyboardInterrupt("killed")
    return real_replace(src, dst)

  monkeypatch.setattr(library.os, "replace", dying_replace)
  new_text, new_task = emb(1)
  try:
    library.add(lib, entry("a"), textemb=new_text, taskemb=new_task,
                textemb_options={"v": 2}, taskemb_options=TASKEMB_OPTS,
                overwrite=True)
    finished = True
  except KeyboardInterrupt:
    finished = False
  monkeypatch.setattr(library.os, "replace", real_replace)
  got = library.load(lib, "a")  # Opening recovers an interrupted swap.
  is_new = got["entry"]["textemb"] == {"v": 2}
  if is_new:
    np.testing.assert_array_equal(got["textemb"], new_text)
    assert set(got["taskemb"]) == set(new_task)
  else:
    assert not finished
    np.testing.assert_array_equal(got["textemb"], text)
    assert got["taskemb"] == {}
  # The other task is untouched, and nothing temporary is left.
  np.testing.assert_array_equal(library.load(lib, "z")["textemb"], text)
  assert not [d for d in os.listdir(lib) if d.startswith(".")]
  # And the library takes the next write normally.
  library.add(lib, entry("a"), textemb=new_text, textemb_options={"v": 3},
              overwrite=True)
  assert library.load(lib, "a")["entry"]["textemb"] == {"v": 3}


def test_corrupt_manifest_is_one_clear_error(tmp_path):
  lib = tmp_path / "lib"
  lib.mkdir()
  (lib / "manifest.json").write_text("{not json")
  with pytest.raises(LibraryError, match="manifest.json:1: not valid JSON"):
    library.tasks(str(lib))
