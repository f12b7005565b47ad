"""Jobs of 2 real processes on this machine (launch/local_processes.sh,
gloo collectives over loopback) against the same job in one process.

The one process has 2 CPU devices, the 2 processes 1 each: the same mesh,
so the results must agree bit for bit (the comparisons allow 1e-6
relative). Two runs of the tiny model share the work of the checks:

* `library`: build_library of a classification, a QA (several windows a
  record) and a tagging task with dropout, in 1 and in 2 processes;
* `sweep`: a transfer sweep in the 2-process workdir whose first target run
  repeats the tagging run above; it is killed in 2 processes, resumed in 2
  processes and killed again, resumed in 1 process, and merged again in 2.

Every process runs under tests/multiprocess_hooks.py, which records the
train losses, evaluations, tokenizer calls and file writes of each process.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

import synthetic
from taskemb_jax import checkpoint, files, library

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOOKS = os.path.join(ROOT, "tests", "multiprocess_hooks.py")
LAUNCHER = os.path.join(ROOT, "launch", "local_processes.sh")
KINDS = ("classification", "qa", "tagging")
TRAIN, VAL, BATCH = 64, 37, 8  # 37: no even split over 2 processes.
RTOL = 1e-6


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _start(n, args, record, tag, **env):
  """`python -m taskemb_jax.main args` in 1 process (2 devices) or in n
  processes through the launcher; each records into the folder `record`
  (process<i>-<tag>.jsonl)."""
  os.makedirs(record, exist_ok=True)
  env = dict(os.environ, PYTHONPATH=ROOT, TASKEMB_TEST_RECORD=record,
             TASKEMB_TEST_TAG=tag, JAX_DISTRIBUTED_TIMEOUT="120", **env)
  if n == 1:
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    command = [sys.executable, HOOKS, "-m", "taskemb_jax.main", *args]
  else:
    env["PYTHON"] = f"{sys.executable} {HOOKS}"
    command = ["bash", LAUNCHER, str(n), *args]
  return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)


def _finish(proc, timeout=600):
  out, _ = proc.communicate(timeout=timeout)
  return proc.returncode, out


def _record(folder, process, tag):
  """{event: [values]} recorded by one process of one run."""
  out = {"loss": [], "eval": [], "encoded": [], "touched": []}
  path = os.path.join(folder, f"process{process}-{tag}.jsonl")
  if os.path.exists(path):
    with open(path, encoding="utf-8") as f:
      for line in f:
        event, value = json.loads(line)
        out[event].append(value)
  return out


def _losses(record, workdir):
  """[step, loss] of the train steps of the run in `workdir`."""
  return [[s, x] for w, s, x in record["loss"] if w == workdir]


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
  root = tmp_path_factory.mktemp("data")
  return {k: synthetic.write_task(str(root / k), k, n_train=TRAIN, n_val=VAL)
          for k in KINDS}


def _common_args(tasks):
  return [
      "--config=configs/tiny.py", "--config.max_eval_examples=0",
      "--config.transfer.sources=" + ",".join(
          f"{k}:{tasks[k]}" for k in KINDS),
      "--config.transfer.source_examples=0",
      "--config.transfer.target_examples=0",
      "--config.transfer.all.learning_rate=0.001",
      f"--config.transfer.all.batch_size={BATCH}",
      f"--config.transfer.all.eval_batch_size={BATCH}",
      "--config.transfer.all.num_epochs=1",
      "--config.transfer.all.max_length=16",  # QA: 2-4 windows a record.
      "--config.transfer.all.dropout=0.1",
      "--config.transfer.all.save_latest=false"]


@pytest.fixture(scope="module")
def library_runs(tasks, tmp_path_factory):
  """build_library in 1 process and in 2, at the same time."""
  root = tmp_path_factory.mktemp("library")
  procs = {}
  for n in (1, 2):
    work = str(root / f"n{n}")
    args = _common_args(tasks) + [
        "--config.stage=build_library", f"--workdir={work}",
        f"--config.library={work}/library"]
    procs[n] = (work, _start(n, args, str(root / "record"), f"n{n}"))
  out = {}
  for n, (work, proc) in procs.items():
    code, text = _finish(proc)
    assert code == 0, text[-3000:]
    out[n] = {"work": work, "record": [
        _record(str(root / "record"), p, f"n{n}") for p in range(n)]}
  return out


def _source_dirs(work, tasks):
  return {k: os.path.join(work, "sources", files.safe_name(f"{k}:{t}"))
          for k, t in tasks.items()}


def _assert_trees_close(a, b):
  la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
  assert len(la) == len(lb) > 10
  for x, y in zip(la, lb):
    np.testing.assert_allclose(x, y, rtol=RTOL, atol=1e-7)


def test_each_kind_trains_alike_in_two_processes(library_runs, tasks):
  """Per-step losses (dropout 0.1) and the final weights of each head."""
  one, two = library_runs[1], library_runs[2]
  rec1, rec2 = one["record"][0], two["record"][0]
  assert two["record"][1]["loss"] == rec2["loss"]  # Both saw the same.
  dirs1 = _source_dirs(one["work"], tasks)
  dirs2 = _source_dirs(two["work"], tasks)
  for kind in KINDS:
    l1, l2 = _losses(rec1, dirs1[kind]), _losses(rec2, dirs2[kind])
    assert [s for s, _ in l1] == list(range(1, len(l1) + 1))
    assert len(l1) >= TRAIN // BATCH, kind
    np.testing.assert_allclose(np.asarray(l2), np.asarray(l1), rtol=RTOL,
                               err_msg=kind)
    w1, _ = checkpoint.restore(dirs1[kind], checkpoint.BEST)
    w2, _ = checkpoint.restore(dirs2[kind], checkpoint.BEST)
    _assert_trees_close(w1, w2)


def test_evaluation_counts_every_record_once(library_runs, tasks):
  """37 validation records over 2 processes: same metrics, same counts."""
  one, two = library_runs[1], library_runs[2]
  dirs1 = _source_dirs(one["work"], tasks)
  dirs2 = _source_dirs(two["work"], tasks)
  for kind in KINDS:
    m1 = files.read_json(os.path.join(dirs1[kind], "metrics.json"))
    m2 = files.read_json(os.path.join(dirs2[kind], "metrics.json"))
    assert m1["history"] and m2["history"] == m1["history"], kind
  evals = {n: r["record"][0]["eval"] for n, r in library_runs.items()}
  assert evals[2] == evals[1] == library_runs[2]["record"][1]["eval"]
  # [records, loss count]: cls counts records, QA windows, tagging words.
  assert [e[0] for e in evals[2]] == [VAL] * 3
  assert evals[2][0][1] == VAL and evals[2][1][1] > VAL


def test_textemb_and_taskemb_alike_in_two_processes(library_runs, tasks):
  lib1 = os.path.join(library_runs[1]["work"], "library")
  lib2 = os.path.join(library_runs[2]["work"], "library")
  assert library.tasks(lib1) == library.tasks(lib2) == sorted(
      f"{k}:{t}" for k, t in tasks.items())
  for name in library.tasks(lib1):
    a, b = library.load(lib1, name), library.load(lib2, name)
    assert a["entry"]["num_examples"] == b["entry"]["num_examples"] >= TRAIN
    np.testing.assert_allclose(b["textemb"], a["textemb"], rtol=RTOL)
    assert sorted(a["taskemb"]) == sorted(b["taskemb"])
    for c in a["taskemb"]:
      np.testing.assert_allclose(b["taskemb"][c], a["taskemb"][c], rtol=RTOL,
                                 err_msg=f"{name} {c}")


def test_each_process_tokenizes_only_its_share(library_runs):
  """1 process: each split whole (64 and 37 records) in one call; 2
  processes: their half of each (32; 18 and 19), then the rows of their
  slice of a batch (<= 4 records) that the other process holds."""
  one = library_runs[1]["record"][0]["encoded"]
  assert sorted(set(one)) == [VAL, TRAIN]
  for p in (0, 1):
    calls = library_runs[2]["record"][p]["encoded"]
    assert sorted(set(c for c in calls if c > BATCH // 2)) == [
        VAL // 2 + p, TRAIN // 2]
    assert len([c for c in calls if c <= BATCH // 2]) > 10


# --- A sweep killed and resumed across process counts ----------------------


@pytest.fixture(scope="module")
def sweep(library_runs, tasks):
  """The transfer sweep tagging <- classification in the 2-process workdir;
  its baseline run repeats the tagging source run of the library."""
  work = library_runs[2]["work"]
  record = os.path.join(work, "sweep-record")
  args = _common_args(tasks) + [
      "--config.stage=transfer", f"--workdir={work}",
      f"--config.transfer.sources=classification:{tasks['classification']}",
      f"--config.transfer.targets=tagging:{tasks['tagging']}",
      "--config.transfer.restarts=1", "--config.transfer.eval_split=validation",
      "--config.transfer.keep_checkpoints=true",
      "--config.transfer.target.save_latest=true",
      "--config.transfer.target.checkpoint_every_steps=3"]
  steps = []
  for k, (n, kill) in enumerate(((2, "1:3"), (2, "0:6"), (1, "0:3"),
                                  (2, ""))):
    start = time.time()
    code, out = _finish(_start(n, args, record, f"k{k + 1}",
                               TASKEMB_TEST_KILL=kill))
    steps.append({"code": code, "out": out, "seconds": time.time() - start,
                  "record": [_record(record, p, f"k{k + 1}")
                             for p in range(n)]})
  return {"work": work, "steps": steps}


def test_killed_two_process_runs_resume_in_two_and_in_one(sweep,
                                                          library_runs,
                                                          tasks):
  k1, k2, k3, k4 = sweep["steps"]
  # A process SIGKILLed: the launcher stops the other and fails.
  killed = 128 + signal.SIGKILL
  assert k1["code"] == killed, k1["out"][-3000:]
  assert f"process 1 of 2 ended with status {killed}" in k1["out"]
  assert k2["code"] == killed, k2["out"][-3000:]
  assert f"process 0 of 2 ended with status {killed}" in k2["out"]
  assert "resumed from" in k2["out"], k2["out"][-3000:]
  # 1 process finishes that run, starts the next and is killed at its step
  # 3; 2 processes finish it.
  assert k3["code"] == -signal.SIGKILL, k3["out"][-3000:]
  assert "resumed from" in k3["out"], k3["out"][-3000:]
  assert k4["code"] == 0, k4["out"][-3000:]
  assert "at step 3" in k4["out"], k4["out"][-3000:]
  run = os.path.join(sweep["work"], "runs", files.safe_name(
      f"tagging:{tasks['tagging']}"), "_none", "seed0")
  source = _source_dirs(sweep["work"], tasks)["tagging"]
  # The run's steps over three lives: 1-3 (k1), 4-6 (k2), 7-8 (k3).
  parts = [_losses(k["record"][0], run) for k in (k1, k2, k3)]
  assert [s for part in parts for s, _ in part] == list(range(1, 9))
  whole = _losses(library_runs[2]["record"][0], source)
  np.testing.assert_allclose(np.asarray([x for part in parts for x in part]),
                             np.asarray(whole), rtol=RTOL)
  assert files.read_json(os.path.join(run, "metrics.json"))["history"] == \
      files.read_json(os.path.join(source, "metrics.json"))["history"]
  w_run, _ = checkpoint.restore(run, checkpoint.BEST)
  w_source, _ = checkpoint.restore(source, checkpoint.BEST)
  _assert_trees_close(w_run, w_source)
  matrix = files.read_json(os.path.join(sweep["work"],
                                        "transfer_matrix.json"))
  assert matrix["complete"] and matrix["baseline"] and matrix["pairs"]
  transfer_run = os.path.join(os.path.dirname(os.path.dirname(run)),
                              files.safe_name(f"classification:"
                                              f"{tasks['classification']}"),
                              "seed0")
  steps = [s for k in (k3, k4) for s, _ in _losses(k["record"][0],
                                                   transfer_run)]
  assert steps == list(range(1, 9))


def test_only_process_zero_writes_shared_files(library_runs, sweep):
  """metrics.json, task.json, identity.json, settings.json, result.json,
  the library and the transfer matrix: process 0 writes all of them, the
  other process never writes, replaces or removes any of them."""
  def shared(path):
    name = os.path.basename(path)
    return (name in ("metrics.json", "task.json", "identity.json",
                     "settings.json", "result.json", "transfer_matrix.json",
                     "transfer_matrix.csv")
            or f"{os.sep}library{os.sep}" in path)
  lives = [library_runs[2]["record"]] + [
      k["record"] for k in sweep["steps"] if len(k["record"]) == 2]
  zero = [t for life in lives for t in life[0]["touched"]]
  other = [t for life in lives for t in life[1]["touched"]]
  assert len(lives) == 4
  written = {os.path.basename(p) for op, p in zero if shared(p)}
  assert {"metrics.json", "task.json", "identity.json", "settings.json",
          "result.json", "transfer_matrix.json", "transfer_matrix.csv",
          "manifest.json", "taskemb.npz", "textemb.npy"} <= written
  assert not [t for t in other if shared(t[1])]


# --- Start-up failures -------------------------------------------------------


def _main(env, *args):
  env = dict(os.environ, PYTHONPATH=ROOT, JAX_DISTRIBUTED_TIMEOUT="3", **env)
  return subprocess.Popen(
      [sys.executable, "-m", "taskemb_jax.main", "--config=configs/tiny.py",
       "--config.stage=list", *args], cwd=ROOT, env=env, text=True,
      stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_start_up_failures_end_with_one_line():
  """No coordinator; a process count that never completes; processes that
  disagree on the count: each ends (status 2) with one `error:` line."""
  def env(port, n, i):
    return {"JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}",
            "JAX_NUM_PROCESSES": str(n), "JAX_PROCESS_ID": str(i)}
  lonely, short, split = _free_port(), _free_port(), _free_port()
  start = time.time()
  procs = {
      "no coordinator": [_main(env(lonely, 2, 1))],
      "3 of 2": [_main(env(short, 3, i)) for i in (0, 1)],
      "2 or 3": [_main(env(split, 2, 0)), _main(env(split, 3, 1))],
  }
  results = {k: [(p.wait(timeout=120), p.stderr.read()) for p in ps]
             for k, ps in procs.items()}
  assert time.time() - start < 100
  for case, outs in results.items():
    assert [code for code, _ in outs] == [2] * len(outs), (case, outs)
    errors = [line for _, err in outs for line in err.splitlines()
              if line.startswith("error:")]
    assert "Traceback" not in "".join(err for _, err in outs), case
    assert len(errors) == (2 if case == "3 of 2" else 1), (case, outs)
    for _, err in outs:
      if err.strip():
        assert err.strip().splitlines()[-1].startswith("error:"), (case, err)
  (_, lone), = results["no coordinator"]
  assert f"cannot reach the coordinator at 127.0.0.1:{lonely}" in lone
  assert "within 3 s" in lone
  assert all("not all JAX_NUM_PROCESSES=3 processes joined" in err
             for _, err in results["3 of 2"])
  assert "the job has 2 processes" in results["2 or 3"][0][1]
