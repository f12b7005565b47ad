"""Degenerate training data is refused before training; library entries that
cannot be ranked (zero vectors, missing components, damaged files) are
skipped by the rank stage, one line each."""

import hashlib
import io
import json
import logging
import os

import numpy as np
import pytest

from configs import tiny
from taskemb_jax import data, embed, library, rank
from taskemb_jax.errors import DataError, LibraryError
from taskemb_jax.records import Task

# kind: (degenerate train split, the one-line error, a record that fixes it)
DEGENERATE = {
    "classification": (
        [{"text": "a b", "label": "pos"}] * 3,
        "task 'x': only one label in train split ('pos'); a classification "
        "task needs at least two",
        {"text": "c d", "label": "neg"}),
    "regression": (
        [{"text": "a b", "label": 0.5}] * 3,
        "task 'x': every label in train split is 0.5; a regression task "
        "needs labels that vary",
        {"text": "c d", "label": 0.7}),
    "tagging": (
        [{"tokens": ["a", "b"], "tags": ["O", "O"]}] * 2,
        "task 'x': only one tag in train split ('O'); a tagging task needs "
        "at least two",
        {"tokens": ["c"], "tags": ["B-X"]}),
    "qa": (
        [{"id": "1", "question": "q", "context": "c d", "answers": []}],
        "task 'x': no question in train split has an answer; a qa task "
        "needs at least one answered question",
        {"id": "2", "question": "q", "context": "c d",
         "answers": [{"text": "d", "answer_start": 2}]}),
}


@pytest.mark.parametrize("kind", sorted(DEGENERATE))
def test_degenerate_train_split_is_refused(kind):
  records, message, fix = DEGENERATE[kind]
  task = Task(name="x", kind=kind, loader=lambda split, data_dir: records)
  with pytest.raises(DataError) as e:
    data.label_names(task, records)
  assert str(e.value) == message
  data.label_names(task, records + [fix])  # Trainable with one more.


def test_embedding_stage_refuses_single_label_data(tmp_path):
  data = tmp_path / "data"
  data.mkdir()
  for split in ("train", "validation"):
    (data / f"{split}.jsonl").write_text("".join(
        json.dumps({"text": f"text {i}", "label": "pos"}) + "\n"
        for i in range(8)))
  cfg = tiny.get_config()
  cfg.task = f"classification:{data}"
  cfg.library = str(tmp_path / "lib")
  with pytest.raises(DataError, match="only one label in train split "
                     r"\('pos'\)"):
    embed.textemb_stage(cfg, str(tmp_path / "wd"))
  assert not os.path.exists(cfg.library)


# ----------------------------------------------------------------------------
# Ranking skips unusable entries.

BASE = {"model": "m", "tokenizer": "t"}
COMPONENTS = ["layer_0/output", "layer_1/output"]
OPTS = {"estimator": "empirical", "finetune": "full", "max_length": 64,
        "num_samples": 1, "sigma": 0.25, "dtype": "float32",
        "num_examples": 10, "components": COMPONENTS}


def add(lib, name, text, l0, l1):
  library.add(lib, {"name": name, "kind": "classification",
                    "family": "classification", "metric": "accuracy",
                    "size": 10, "num_examples": 10, "base": BASE},
              textemb=np.array(text, np.float32),
              textemb_options={"max_length": 64},
              taskemb={"layer_0/output": np.array(l0, np.float32),
                       "layer_1/output": np.array(l1, np.float32)},
              taskemb_options=OPTS)


def replace_file(lib, name, fname, arrays, keep_hash=False):
  """Replaces a task's file as a damaged disk (keep_hash) or an older
  version of the library that stored degenerate vectors would have."""
  buf = io.BytesIO()
  if fname == library.TEXTEMB:
    np.save(buf, arrays)
  else:
    np.savez(buf, **arrays)
  with open(os.path.join(lib, name, fname), "wb") as f:
    f.write(buf.getvalue())
  if keep_hash:
    return
  digest = hashlib.sha256(buf.getvalue()).hexdigest()
  for path in (os.path.join(lib, "manifest.json"),
               os.path.join(lib, name, "entry.json")):
    doc = json.load(open(path))
    e = doc["tasks"][name] if "tasks" in doc else doc
    e["files"][fname] = digest
    json.dump(doc, open(path, "w"), indent=2, sort_keys=True)


@pytest.fixture
def lib(tmp_path):
  path = str(tmp_path / "lib")
  add(path, "T", [1, 0, 0], [1, 0], [1, 1])
  add(path, "B", [1, 0.1, 0], [0, 1], [1, 1])
  add(path, "C", [0, 1, 0], [1, 0.1], [1, 0])
  for name in ("Zt", "Zc", "H", "M"):
    add(path, name, [1, 1, 1], [1, 1], [1, 1])
  zero = np.zeros(3, np.float32)
  replace_file(path, "Zt", library.TEXTEMB, zero)
  replace_file(path, "Zc", library.TASKEMB, {"layer_0/output": np.zeros(2),
                                             "layer_1/output": np.ones(2)})
  replace_file(path, "H", library.TEXTEMB, np.ones(3, np.float32) * 2,
               keep_hash=True)
  replace_file(path, "M", library.TASKEMB, {"layer_0/output": np.ones(2)})
  return path


def rank_with(lib, method, workdir):
  cfg = tiny.get_config()
  cfg.library = lib
  cfg.task = "T"
  cfg.rank.method = method
  return rank.rank_stage(cfg, workdir)


def test_rank_skips_unusable_entries(lib, tmp_path, caplog):
  with caplog.at_level(logging.WARNING):
    out = rank_with(lib, "taskemb", str(tmp_path / "rank"))
  # RRF of the two components: layer_0 ranks C, Zt, B; layer_1 ranks B and
  # Zt (tied, by name), then C.
  scores = {s["name"]: s["score"] for s in out["sources"]}
  assert scores == pytest.approx({"B": 1 / 61 + 1 / 63, "C": 1 / 61 + 1 / 63,
                                  "Zt": 2 / 62})
  skipped = {s["name"]: s["reason"] for s in out["skipped"]}
  assert sorted(skipped) == ["H", "M", "Zc"]
  assert skipped["H"].endswith("H/textemb.npy: sha256 does not match the "
                               "entry of task 'H' in manifest.json (damaged "
                               "or changed)")
  assert skipped["M"] == "TaskEmb component 'layer_1/output' is missing"
  assert skipped["Zc"] == ("TaskEmb component 'layer_0/output' is a zero or "
                           "non-finite vector")
  saved = json.load(open(tmp_path / "rank" / "ranking.json"))
  assert saved["skipped"] == out["skipped"]
  warned = [r.getMessage() for r in caplog.records
            if "skipped source" in r.getMessage()]
  assert len(warned) == 3 and all("\n" not in w for w in warned)
  # TextEmb uses the other embedding: Zt is skipped, Zc and M take part.
  out = rank_with(lib, "textemb", str(tmp_path / "rank2"))
  assert sorted(s["name"] for s in out["skipped"]) == ["H", "Zt"]
  assert sorted(s["name"] for s in out["sources"]) == ["B", "C", "M", "Zc"]
  # The command line names the same entries; removing them mends the library.
  bad = {n for n, found in library.verify(lib).items() if found}
  assert bad == {"H", "M", "Zc", "Zt"}
  library.remove(lib, *sorted(bad))
  out = rank_with(lib, "textemb+taskemb", str(tmp_path / "rank3"))
  assert (out["skipped"], len(out["sources"])) == ([], 2)


def test_unusable_target_is_one_error(lib, tmp_path):
  replace_file(lib, "T", library.TEXTEMB, np.zeros(3, np.float32))
  with pytest.raises(LibraryError, match="^target 'T': TextEmb is a zero, "
                     "non-finite or malformed vector; embed it again"):
    rank_with(lib, "textemb", str(tmp_path / "rank"))
  # Its TaskEmb is fine: ranking by TaskEmb skips the same sources as ever.
  out = rank_with(lib, "taskemb", "")
  assert [s["name"] for s in out["skipped"]] == ["H", "M", "Zc"]
