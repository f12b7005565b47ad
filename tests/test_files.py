"""Tests of taskemb_jax.files: atomic writes, strict JSON, names, locks."""

import json
import multiprocessing
import os
import time

import numpy as np
import pytest

from taskemb_jax import files
from taskemb_jax.errors import UserError


def test_write_json_is_strict_and_converts_numpy(tmp_path):
  path = str(tmp_path / "m.json")
  files.write_json(path, {"a": np.float32(0.5), "b": float("nan"),
                          "c": [np.int64(3), float("inf")],
                          "d": np.arange(2)})
  text = open(path).read()
  assert "NaN" not in text and "Infinity" not in text
  assert json.loads(text) == {"a": 0.5, "b": None, "c": [3, None],
                              "d": [0, 1]}
  assert not [n for n in os.listdir(tmp_path) if n.startswith(".tmp-")]
  umask = os.umask(0)
  os.umask(umask)
  assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask


def test_read_json_errors_name_file_and_line(tmp_path):
  bad = tmp_path / "bad.json"
  bad.write_text('{\n"a": 1,\n}')
  with pytest.raises(UserError, match=r"bad.json:3: not valid JSON"):
    files.read_json(str(bad))
  with pytest.raises(UserError, match="file not found"):
    files.read_json(str(tmp_path / "none.json"))
  bom = tmp_path / "bom.json"
  bom.write_bytes(b"\xef\xbb\xbf{\"a\": 1}")
  assert files.read_json(str(bom)) == {"a": 1}


def test_safe_name_is_one_component_and_collision_free():
  assert files.safe_name("mr-polarity") == "mr-polarity"
  a = files.safe_name("classification:/d/a_b.jsonl")
  b = files.safe_name("classification:/d/a/b.jsonl")
  assert a != b
  for n in (a, b, files.safe_name(".."), files.safe_name("../../x"),
            files.safe_name("x" * 500), files.safe_name("")):
    assert files.is_safe_component(n) and not n.startswith(".")
    assert len(n) < 120
  assert files.safe_name("../../x") != files.safe_name("x")
  assert not files.is_safe_component("../x")
  assert not files.is_safe_component("..")
  assert not files.is_safe_component("a/b")


def test_comma_list():
  assert files.comma_list(" a, b,,c ") == ["a", "b", "c"]
  assert files.comma_list("") == []


def test_remove_temporaries(tmp_path):
  (tmp_path / ".tmp-abc").write_text("x")
  (tmp_path / "keep.json").write_text("{}")
  assert files.remove_temporaries(str(tmp_path)) == [".tmp-abc"]
  assert sorted(os.listdir(tmp_path)) == ["keep.json"]


def _hold(path, ready, seconds):
  with files.lock(path):
    ready.set()
    time.sleep(seconds)


def test_lock_excludes_another_process_and_is_released_on_exit(tmp_path):
  path = str(tmp_path / ".lock")
  ctx = multiprocessing.get_context("spawn")
  ready = ctx.Event()
  proc = ctx.Process(target=_hold, args=(path, ready, 60))
  proc.start()
  try:
    assert ready.wait(60)
    with files.try_lock(path) as got:
      assert not got
    with pytest.raises(UserError, match="busy"):
      with files.lock(path, timeout_s=0.2, what="the library"):
        pass
    proc.kill()  # The kernel drops a killed holder's lock.
    proc.join()
    with files.lock(path, timeout_s=10):
      pass
  finally:
    if proc.is_alive():
      proc.kill()
