"""The task library: round trip, overwrite rule, atomic writes, refusals,
folders, hashes, repairs and the command line (processes at once:
test_library_concurrency.py)."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from taskemb_jax import files, library
from taskemb_jax.bank import catalog
from taskemb_jax.errors import LibraryError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = os.path.join(ROOT, "library", "minilm-l6")
LOCKS = [library.LOCK, library.TURN]  # Lock files every written library has.

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
      LOCKS + ["manifest.json", "a", manifest["tasks"]["b/c:d"]["folder"]])
  assert manifest["tasks"]["b/c:d"]["folder"] == files.safe_name("b/c:d")
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
  assert not os.path.exists(lib)  # Refused before anything is written.


def snapshot(lib):
  """Every path under `lib` with its size and mtime."""
  out = {}
  for root, dirs, names in os.walk(lib):
    for n in dirs + names:
      st = os.stat(os.path.join(root, n))
      out[os.path.relpath(os.path.join(root, n), lib)] = (st.st_size,
                                                           st.st_mtime_ns)
  return out


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

  monkeypatch.setattr(library.store.os, "replace", dying_replace)
  new_text, new_task = emb(1)
  try:
    library.add(lib, entry("a"), textemb=new_text, taskemb=new_task,
                textemb_options={"v": 2}, taskemb_options=TASKEMB_OPTS,
                overwrite=True)
    finished = True
  except KeyboardInterrupt:
    finished = False
  monkeypatch.setattr(library.store.os, "replace", real_replace)
  listing = snapshot(lib)
  got = library.load(lib, "a")  # Reads around an interrupted swap.
  assert snapshot(lib) == listing  # Reading changes nothing.
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
  # The next write repairs the library and succeeds; nothing temporary is
  # left.
  library.add(lib, entry("a"), textemb=new_text, textemb_options={"v": 3},
              overwrite=True)
  assert library.load(lib, "a")["entry"]["textemb"] == {"v": 3}
  assert sorted(d for d in os.listdir(lib) if d.startswith(".")) == LOCKS
  assert os.listdir(os.path.join(lib, "a")) != []
  assert not [f for f in os.listdir(os.path.join(lib, "a"))
              if f.startswith(".")]


def test_corrupt_manifest_is_one_clear_error(tmp_path):
  lib = tmp_path / "lib"
  lib.mkdir()
  (lib / "manifest.json").write_text("{not json")
  with pytest.raises(LibraryError, match="manifest.json:1: not valid JSON"):
    library.tasks(str(lib))


# ----------------------------------------------------------------------------
# Folders: exactly the task's safe name, never a path outside.


def test_shipped_library_holds_bank_tasks_and_loads_unchanged():
  before = snapshot(SHIPPED)
  names = library.tasks(SHIPPED)
  # Every bank task, and nothing else.
  assert sorted(names) == sorted(catalog.TASK_SPECS)
  families = set()
  for name in names:
    got = library.load(SHIPPED, name)  # Hashes verified.
    families.add(got["entry"]["family"])
    assert got["entry"]["folder"] == files.safe_name(name) == name
    assert got["textemb"].shape == (384,) and len(got["taskemb"]) >= 13
    assert library.problems(got) == []
    # Portable: the model by name and fingerprint, never a builder's path.
    assert got["entry"]["model"] == "minilm-l6"
    assert not any(os.sep in str(v) for v in got["entry"]["base"].values())
    assert got["entry"]["description"] == catalog.describe(name)
  assert families == {"classification", "qa", "tagging"}
  assert library.verify(SHIPPED) == {n: [] for n in names}
  assert snapshot(SHIPPED) == before  # Reading creates no lock file.


def set_entry(lib, name, **changes):
  """Edits a task's manifest entry (as a hand-edited manifest would)."""
  path = os.path.join(lib, "manifest.json")
  manifest = json.load(open(path))
  manifest["tasks"][name].update(changes)
  json.dump(manifest, open(path, "w"))


@pytest.mark.parametrize("folder", ["../outside", "/abs/outside", "a/../..",
                                    "b", ".", ""])
def test_entry_naming_another_folder_is_refused(tmp_path, folder):
  lib = str(tmp_path / "lib")
  outside = tmp_path / "outside"
  outside.mkdir()
  text, _ = emb(0)
  np.save(outside / "textemb.npy", text)
  library.add(lib, entry("a"), textemb=text, textemb_options={})
  library.add(lib, entry("b"), textemb=text, textemb_options={})
  set_entry(lib, "a", folder=folder)
  with pytest.raises(LibraryError) as e:
    library.load(lib, "a")
  assert str(e.value) == (
      f"{lib}/manifest.json: task 'a': folder {folder!r} is not the task's "
      "folder 'a'; refusing to use it")
  assert "refusing" in library.verify(lib)["a"][0]
  library.remove(lib, "a")  # Deletes the task's own folder, nothing else.
  assert library.tasks(lib) == ["b"]
  assert os.path.exists(outside / "textemb.npy")
  assert not os.path.exists(os.path.join(lib, "a"))
  np.testing.assert_array_equal(library.load(lib, "b")["textemb"], text)
  # A writer restores the entry from the task's own folder's entry.json.
  library.add(lib, entry("a"), textemb=text, textemb_options={})
  set_entry(lib, "a", folder=folder)
  assert library.repair(lib)["tasks"]["a"]["folder"] == "a"
  np.testing.assert_array_equal(library.load(lib, "a")["textemb"], text)
  assert os.path.exists(outside / "textemb.npy")


def test_entry_naming_other_files_is_refused(tmp_path):
  lib = str(tmp_path / "lib")
  text, _ = emb(0)
  library.add(lib, entry("a"), textemb=text, textemb_options={})
  set_entry(lib, "a", files={"../../x.npy": "0" * 64})
  with pytest.raises(LibraryError, match="task 'a': 'files' must hold"):
    library.load(lib, "a")


def test_reserved_task_name_is_refused(tmp_path):
  text, _ = emb(0)
  with pytest.raises(LibraryError, match="reserved"):
    library.add(str(tmp_path / "lib"), entry("manifest.json"), textemb=text,
                textemb_options={})


# ----------------------------------------------------------------------------
# Degenerate embeddings, hashes.


def test_zero_embeddings_are_refused(tmp_path):
  lib = str(tmp_path / "lib")
  text, task = emb(0)
  with pytest.raises(LibraryError) as e:
    library.add(lib, entry("a"), textemb=np.zeros(8), textemb_options={})
  assert str(e.value) == ("task 'a': textemb is all zeros (degenerate "
                          "training data?); not stored")
  with pytest.raises(LibraryError,
                     match="taskemb component 'pooler' is all zeros"):
    library.add(lib, entry("a"), taskemb=dict(task, pooler=np.zeros(8)),
                taskemb_options=TASKEMB_OPTS)
  with pytest.raises(LibraryError, match="taskemb has no component"):
    library.add(lib, entry("a"), taskemb={}, taskemb_options=TASKEMB_OPTS)
  assert not os.path.exists(lib)
  # A parameter the head does not use legitimately has zero Fisher.
  library.add(lib, entry("a"), taskemb=dict(task, **{"params/p": np.zeros(3)}),
              taskemb_options=TASKEMB_OPTS)
  assert library.problems(library.load(lib, "a")) == []


def test_load_verifies_hashes(tmp_path):
  lib = str(tmp_path / "lib")
  text, task = emb(0)
  library.add(lib, entry("a"), textemb=text, taskemb=task,
              textemb_options={}, taskemb_options=TASKEMB_OPTS)
  path = os.path.join(lib, "a", "textemb.npy")
  data = bytearray(open(path, "rb").read())
  data[-1] ^= 1  # One bit of the last value.
  open(path, "wb").write(bytes(data))
  with pytest.raises(LibraryError) as e:
    library.load(lib, "a")
  assert str(e.value) == (f"{path}: sha256 does not match the entry of task "
                          "'a' in manifest.json (damaged or changed)")
  assert library.load(lib, "a", verify=False)["textemb"][-1] != text[-1]
  data[-1] ^= 1
  open(path, "wb").write(bytes(data))
  assert library.verify(lib) == {"a": []}
  os.remove(os.path.join(lib, "a", "taskemb.npz"))
  assert library.verify(lib)["a"] == [
      f"{lib}/a/taskemb.npz: cannot read it (No such file or directory)"]


# ----------------------------------------------------------------------------
# Interrupted writes: readers read around them, the next writer repairs.


def test_interrupted_swap_is_read_around_and_repaired(tmp_path):
  """The task's folder set aside, the new one not yet in place."""
  lib = str(tmp_path / "lib")
  text, _ = emb(0)
  library.add(lib, entry("a"), textemb=text, textemb_options={"v": 1})
  os.replace(os.path.join(lib, "a"), os.path.join(lib, ".a.old-1234"))
  os.makedirs(os.path.join(lib, ".a.new-5678"))
  open(os.path.join(lib, ".a.new-5678", ".tmp-x"), "w").write("partial")
  open(os.path.join(lib, ".tmp-y"), "w").write("partial manifest")
  before = snapshot(lib)
  np.testing.assert_array_equal(library.load(lib, "a")["textemb"], text)
  assert library.tasks(lib) == ["a"]
  assert snapshot(lib) == before
  library.repair(lib)
  assert sorted(os.listdir(lib)) == LOCKS + ["a", "manifest.json"]
  np.testing.assert_array_equal(library.load(lib, "a")["textemb"], text)


def test_swapped_but_unrecorded_version_is_rolled_forward(tmp_path):
  """The new folder in place, the manifest not yet written."""
  lib = str(tmp_path / "lib")
  text, _ = emb(0)
  library.add(lib, entry("a"), textemb=text, textemb_options={"v": 1})
  manifest = open(os.path.join(lib, "manifest.json")).read()
  shutil.copytree(os.path.join(lib, "a"), str(tmp_path / "v1"))
  library.add(lib, entry("a"), textemb=text * 2, textemb_options={"v": 2},
              overwrite=True)
  shutil.copytree(str(tmp_path / "v1"), os.path.join(lib, ".a.old-1"))
  open(os.path.join(lib, "manifest.json"), "w").write(manifest)
  # Readers read the version the manifest names (the backup) ...
  got = library.load(lib, "a")
  assert got["entry"]["textemb"] == {"v": 1}
  np.testing.assert_array_equal(got["textemb"], text)
  # ... the next writer records the complete new one and drops the backup.
  library.add(lib, entry("b"), textemb=text, textemb_options={})
  assert library.load(lib, "a")["entry"]["textemb"] == {"v": 2}
  assert sorted(os.listdir(lib)) == LOCKS + ["a", "b", "manifest.json"]


def test_removed_task_is_not_resurrected(tmp_path):
  """remove killed after the manifest write, before the folder's deletion."""
  lib = str(tmp_path / "lib")
  text, _ = emb(0)
  library.add(lib, entry("a"), textemb=text, textemb_options={})
  library.add(lib, entry("b"), textemb=text, textemb_options={})
  shutil.copytree(os.path.join(lib, "a"), str(tmp_path / "a"))
  library.remove(lib, "a")
  shutil.copytree(str(tmp_path / "a"), os.path.join(lib, ".a.old-9"))
  assert library.tasks(lib) == ["b"]
  library.repair(lib)
  assert library.tasks(lib) == ["b"]
  assert sorted(os.listdir(lib)) == LOCKS + ["b", "manifest.json"]


# ----------------------------------------------------------------------------
# Command line.


def cli(*args):
  return subprocess.run([sys.executable, "-m", "taskemb_jax.library", *args],
                        cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_command_line_list_verify_remove(tmp_path):
  lib = str(tmp_path / "lib")
  text, task = emb(0)
  library.add(lib, entry("a"), textemb=text, taskemb=task,
              textemb_options={}, taskemb_options=TASKEMB_OPTS)
  library.add(lib, entry("b/c"), textemb=text, textemb_options={})
  out = cli("list", lib)
  assert out.returncode == 0, out.stderr
  assert out.stdout.splitlines()[1].split() == [
      "a", "classification", "100", "textemb,taskemb"]
  assert out.stdout.splitlines()[-1] == f"2 tasks in {lib}"
  assert cli("verify", lib).returncode == 0
  # A damaged file: verify names it and fails.
  open(os.path.join(lib, "a", "textemb.npy"), "ab").write(b"x")
  out = cli("verify", lib)
  assert out.returncode == 1
  assert out.stdout.splitlines()[0].startswith("BAD a: ")
  assert "sha256 does not match" in out.stdout
  out = cli("remove", lib, "a", "nope")
  assert (out.returncode, out.stdout) == (2, "")
  assert out.stderr == f"error: {lib}: no task 'nope' (has: a, b/c)\n"
  out = cli("remove", lib, "a")
  assert (out.returncode, out.stdout) == (0, f"removed a from {lib}\n")
  assert library.tasks(lib) == ["b/c"]
  out = cli("list", str(tmp_path / "none"))
  assert (out.returncode, out.stderr) == (
      2, f"error: {tmp_path / 'none'}: no task library here\n")
  assert not os.path.exists(tmp_path / "none")


def test_shared_locks_coexist_and_exclude_a_writer(tmp_path):
  path = str(tmp_path / ".lock")
  with files.lock(path, shared=True), files.lock(path, shared=True,
                                                 timeout_s=0.1):
    with pytest.raises(files.UserError, match="busy"):
      with files.lock(path, timeout_s=0.1):
        pass
  with files.lock(path, timeout_s=0.1):
    with pytest.raises(files.UserError, match="busy"):
      with files.lock(path, shared=True, timeout_s=0.1):
        pass
