"""The task library shared by real processes: writers at once, readers while
writers write, writers killed (SIGKILL) in the middle of a write."""

import multiprocessing
import os
import signal
import time

import numpy as np

from library_workers import (add, add_rounds, check_consistent, read_until,
                             write_forever, write_until)
from taskemb_jax import library

CTX = multiprocessing.get_context("spawn")


def run_all(procs, timeout_s=60):
  try:
    for p in procs:
      p.start()
    for p in procs:
      p.join(timeout_s)
    assert [p.exitcode for p in procs] == [0] * len(procs)
  finally:
    for p in procs:
      if p.is_alive():
        p.kill()
        p.join()


def drain(results, n):
  """[(passes, number of errors, first errors)] of `n` workers."""
  return [results.get(timeout=60) for _ in range(n)]


def test_two_processes_add_both_embeddings_of_one_task(tmp_path):
  rounds = 20
  barrier, results = CTX.Barrier(2), CTX.Queue()
  run_all([CTX.Process(target=add_rounds, args=(
      str(tmp_path), [("t", what)], rounds, barrier, results))
           for what in ("textemb", "taskemb")])
  assert drain(results, 2) == [(rounds, 0, [])] * 2
  for r in range(rounds):
    got = library.load(str(tmp_path / str(r)), "t")
    assert got["entry"]["textemb"] == {"v": r}
    assert got["entry"]["taskemb"]["v"] == r
    check_consistent(got)
    assert sorted(os.listdir(tmp_path / str(r))) == [
        library.LOCK, library.TURN, "manifest.json", "t"]


def test_processes_add_different_tasks(tmp_path):
  rounds, workers = 8, 3
  barrier, results = CTX.Barrier(workers), CTX.Queue()
  run_all([CTX.Process(target=add_rounds, args=(
      str(tmp_path), [(f"task/{i}", "textemb"), (f"task/{i}", "taskemb")],
      rounds, barrier, results)) for i in range(workers)])
  assert drain(results, workers) == [(rounds, 0, [])] * workers
  for r in range(rounds):
    lib = str(tmp_path / str(r))
    assert library.tasks(lib) == [f"task/{i}" for i in range(workers)]
    for name in library.tasks(lib):
      got = library.load(lib, name)
      assert "textemb" in got["entry"] and "taskemb" in got["entry"]
      check_consistent(got)


def test_reader_during_writes(tmp_path):
  lib = str(tmp_path / "lib")
  add(lib, "x", "textemb", 0)
  stop, results = CTX.Event(), CTX.Queue()
  passes = [CTX.Value("i", 0) for _ in range(3)]
  procs = [CTX.Process(target=read_until, args=(lib, stop, passes[0],
                                                 results))]
  procs += [CTX.Process(target=write_until, args=(lib, names, stop, n,
                                                   results))
            for names, n in ((["x", "y"], passes[1]), (["y", "z"], passes[2]))]
  try:
    for p in procs:
      p.start()
    # Until every process has done 10 passes (a reader pass loads every
    # task; a writer pass adds 4 embeddings), at most 60 s.
    deadline = time.monotonic() + 60
    while min(n.value for n in passes) < 10 and time.monotonic() < deadline:
      time.sleep(0.05)
    stop.set()
    done = drain(results, 3)
    for p in procs:
      p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
  finally:
    stop.set()
    for p in procs:
      if p.is_alive():
        p.kill()
        p.join()
  assert done == [(0, [])] * 3
  assert min(n.value for n in passes) >= 10
  assert library.tasks(lib) == ["x", "y", "z"]


def check_after_kill(lib):
  """Reads around what a killed writer left, then writes; True if it left
  anything to repair."""
  before = sorted(os.listdir(lib))
  # Readers: every task at its old or new version; nothing changed.
  names = library.tasks(lib)
  assert set(names) >= {"a", "b"}
  for name in names:
    check_consistent(library.load(lib, name))
  assert sorted(os.listdir(lib)) == before
  # The next write repairs what the killed one left, and succeeds.
  add(lib, "a", "textemb", 100)
  assert library.load(lib, "a")["entry"]["textemb"] == {"v": 100}
  locks = [library.LOCK, library.TURN]
  assert not [d for d in os.listdir(lib) if d.startswith(".")
              and d not in locks]
  for name in library.tasks(lib):
    assert not [f for f in os.listdir(os.path.join(lib, name))
                if f.startswith(".")]
  return any(d.startswith(".") and d not in locks for d in before)


def test_writer_killed_at_random_moments(tmp_path):
  lib = str(tmp_path / "lib")
  for name in "abc":
    add(lib, name, "textemb", 0)
  rng = np.random.default_rng(0)
  rounds = 10

  def writer():
    go, started = CTX.Event(), CTX.Event()
    p = CTX.Process(target=write_forever, args=(lib, go, started))
    p.start()
    return p, go, started

  # Writers start two rounds ahead, so that they have imported when due.
  upcoming = [writer() for _ in range(2)]
  interrupted = 0
  try:
    for r in range(rounds):
      p, go, started = upcoming.pop(0)
      if r + len(upcoming) + 1 < rounds:
        upcoming.append(writer())
      try:
        go.set()
        assert started.wait(60)
        time.sleep(float(rng.uniform(0.01, 0.2)))
      finally:
        os.kill(p.pid, signal.SIGKILL)
        p.join(60)
      assert p.exitcode == -signal.SIGKILL
      interrupted += check_after_kill(lib)
  finally:
    for p, _, _ in upcoming:
      p.kill()
      p.join()
  # Most kills land inside a write (staging, swap or backup deletion).
  assert interrupted >= 1
