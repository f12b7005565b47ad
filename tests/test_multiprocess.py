"""Jobs of 2 real processes on this machine (launch/local_processes.sh,
gloo collectives over loopback) against the same job in one process.

The one process has 2 CPU devices, the 2 processes 1 each: the same mesh,
so the results must agree (losses, weights and LogME within 1e-6
relative; the library byte for byte). The launches, in order:

* `library_runs`: build_library of a QA task (several windows a record) and
  a tagging task, with dropout, in 1 and in 2 processes at the same time;
* `sweep`: a transfer sweep (tagging <- QA) in the 2-process workdir, whose
  baseline run repeats the library's tagging run: 2 processes SIGKILLed
  at step 1 of the baseline run, 1 process resumes it from that
  checkpoint and is SIGKILLed at step 3, then 2 processes resume it and
  finish the sweep (the QA -> tagging run, a model started from the QA
  run's encoder, and the matrix), then evaluate it with LogME in 2
  processes;
* `failures`: a config error, a record of process 1's share that fails to
  tokenize (both processes stop with one line), and process 1 failing
  alone mid-training (it ends at once; the launcher stops process 0);
* start-up failures (no coordinator, too few processes, disagreeing
  counts), each ending with one line.

Every process runs under tests/multiprocess_hooks.py, which records the
train losses, evaluations, tokenizer calls and file writes of each process.
Every launch keeps all its compilations in the configs' persistent
compilation cache, so a launch reuses what an earlier one of the same
topology compiled (in this run, or an earlier run of the tests).
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
from taskemb_jax import checkpoint, files, library, sharding
from taskemb_jax.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOOKS = os.path.join(ROOT, "tests", "multiprocess_hooks.py")
LAUNCHER = os.path.join(ROOT, "launch", "local_processes.sh")
KINDS = ("qa", "tagging")
TRAIN, VAL, BATCH = 32, 19, 8  # 19: no even split over 2 processes.
STEPS = TRAIN // BATCH  # Tagging: one feature a record.
RTOL = 1e-6
KILLED = 128 + signal.SIGKILL  # The launcher's status for a SIGKILL.


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
             TASKEMB_TEST_TAG=tag, JAX_DISTRIBUTED_TIMEOUT="60",
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0", **env)
  if n == 1:
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    command = [sys.executable, HOOKS, "-m", "taskemb_jax.main", *args]
  else:
    env["PYTHON"] = f"{sys.executable} {HOOKS}"
    command = ["bash", LAUNCHER, str(n), *args]
  return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True,
                          start_new_session=True)


def _finish(proc, timeout=240):
  """(status, output) of a launch; the launch is killed (and the test
  fails) past `timeout` seconds."""
  try:
    out, _ = proc.communicate(timeout=timeout)
  except subprocess.TimeoutExpired:
    os.killpg(proc.pid, signal.SIGKILL)
    out, _ = proc.communicate()
    pytest.fail(f"still running after {timeout} s:\n{out[-3000:]}")
  return proc.returncode, out


def _record(folder, process, tag):
  """{event: [values]} recorded by one process of one launch."""
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


def _recipe_args(tasks):
  """The fine-tuning settings of every run (sweep overrides of all runs)."""
  return [
      "--config=configs/tiny.py", "--config.max_eval_examples=0",
      "--config.transfer.source_examples=0",
      "--config.transfer.target_examples=0",
      "--config.transfer.all.learning_rate=0.001",
      f"--config.transfer.all.batch_size={BATCH}",
      f"--config.transfer.all.eval_batch_size={BATCH}",
      "--config.transfer.all.num_epochs=1",
      "--config.transfer.all.max_length=16",  # QA: 2-6 windows a record.
      "--config.transfer.all.dropout=0.1",
      "--config.transfer.all.save_latest=false"]


@pytest.fixture(scope="module")
def library_runs(tasks, tmp_path_factory):
  """build_library in 1 process and in 2, at the same time."""
  root = tmp_path_factory.mktemp("library")
  procs = {}
  for n in (1, 2):
    work = str(root / f"n{n}")
    args = _recipe_args(tasks) + [
        "--config.transfer.sources=" + ",".join(
            f"{k}:{tasks[k]}" for k in KINDS),
        "--config.stage=build_library", f"--workdir={work}",
        f"--config.library={work}/library"]
    procs[n] = (work, time.time(),
                _start(n, args, str(root / "record"), f"n{n}"))
  out = {}
  for n, (work, start, proc) in procs.items():
    code, text = _finish(proc)
    assert code == 0, text[-3000:]
    out[n] = {"work": work, "seconds": time.time() - start, "record": [
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
    assert len(l1) >= STEPS, kind
    np.testing.assert_allclose(np.asarray(l2), np.asarray(l1), rtol=RTOL,
                               err_msg=kind)
    w1, _ = checkpoint.restore(dirs1[kind], checkpoint.BEST)
    w2, _ = checkpoint.restore(dirs2[kind], checkpoint.BEST)
    _assert_trees_close(w1, w2)
  # QA: 2+ windows a record, so more steps than records / batch.
  assert len(_losses(rec1, dirs1["qa"])) > 2 * STEPS


def test_evaluation_counts_every_record_once(library_runs, tasks):
  """19 validation records over 2 processes (9 and 10): same metrics,
  same counts."""
  one, two = library_runs[1], library_runs[2]
  dirs1 = _source_dirs(one["work"], tasks)
  dirs2 = _source_dirs(two["work"], tasks)
  for kind in KINDS:
    m1 = files.read_json(os.path.join(dirs1[kind], "metrics.json"))
    m2 = files.read_json(os.path.join(dirs2[kind], "metrics.json"))
    assert m1["history"] and m2["history"] == m1["history"], kind
  evals = {n: r["record"][0]["eval"] for n, r in library_runs.items()}
  assert evals[2] == evals[1] == library_runs[2]["record"][1]["eval"]
  # [records, loss count]: QA counts windows, tagging words.
  assert [e[0] for e in evals[2]] == [VAL] * len(KINDS)
  assert all(e[1] > VAL for e in evals[2])


def test_library_of_two_processes_equals_that_of_one(library_runs, tasks):
  """The same tasks and entries, whose SHA-256 of each embedding file makes
  the files byte for byte equal; the embeddings read back agree."""
  lib1 = os.path.join(library_runs[1]["work"], "library")
  lib2 = os.path.join(library_runs[2]["work"], "library")
  assert library.tasks(lib1) == library.tasks(lib2) == sorted(
      f"{k}:{t}" for k, t in tasks.items())
  for name in library.tasks(lib1):
    a, b = library.load(lib1, name), library.load(lib2, name)
    assert a["entry"]["num_examples"] == b["entry"]["num_examples"] >= TRAIN
    assert set(a["entry"]["files"]) == {"textemb.npy", "taskemb.npz"}
    assert a["entry"] == b["entry"]
    np.testing.assert_array_equal(b["textemb"], a["textemb"])
    assert sorted(a["taskemb"]) == sorted(b["taskemb"])
    for c in a["taskemb"]:
      np.testing.assert_array_equal(b["taskemb"][c], a["taskemb"][c],
                                    err_msg=f"{name} {c}")


def test_each_process_tokenizes_only_its_share(library_runs):
  """1 process: each split whole (32 and 19 records) in one call; 2
  processes: their half of each (16; 9 and 10), then the rows of their
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
  """The transfer sweep tagging <- QA in the 2-process workdir; its
  baseline run repeats the tagging source run of the library. Its lives:
  2 processes, SIGKILLed after saving step 1 of the baseline run (each
  kills itself; the launcher stops one still running); 1 process,
  SIGKILLed after saving step 3; 2 processes, which finish."""
  work = library_runs[2]["work"]
  record = os.path.join(work, "sweep-record")
  args = _recipe_args(tasks) + [
      "--config.stage=transfer", f"--workdir={work}",
      f"--config.transfer.sources=qa:{tasks['qa']}",
      f"--config.transfer.targets=tagging:{tasks['tagging']}",
      "--config.transfer.restarts=1", "--config.transfer.eval_split=validation",
      "--config.transfer.keep_checkpoints=true",
      "--config.transfer.target.save_latest=true",
      "--config.transfer.target.checkpoint_every_steps=1"]
  lives = []
  for k, (n, kill) in enumerate(((2, "0:1,1:1"), (1, "0:3"), (2, ""))):
    start = time.time()
    code, out = _finish(_start(n, args, record, f"k{k + 1}",
                               TASKEMB_TEST_KILL=kill))
    lives.append({"code": code, "out": out, "seconds": time.time() - start,
                  "record": [_record(record, p, f"k{k + 1}")
                             for p in range(n)]})
  # Its evaluation with LogME (the source models on the target's data).
  args = _recipe_args(tasks) + [
      "--config.stage=evaluate", f"--workdir={work}",
      f"--config.library={work}/library",
      "--config.evaluate.methods=logme,textemb",
      "--config.evaluate.random_draws=10",
      f"--config.transfer.sources=qa:{tasks['qa']}",
      f"--config.transfer.targets=tagging:{tasks['tagging']}"]
  code, out = _finish(_start(2, args, record, "evaluate"))
  evaluate = {"code": code, "out": out, "record": [
      _record(record, p, "evaluate") for p in range(2)]}
  return {"work": work, "lives": lives, "evaluate": evaluate}


def test_killed_runs_resume_across_process_counts(sweep, library_runs,
                                                   tasks):
  """The baseline run: step 1 in 2 processes (SIGKILLed after saving it),
  steps 2-3 in 1 process from that checkpoint (SIGKILLed after saving
  step 3), step 4 in 2 processes from that one: equal to the library's
  uninterrupted tagging run in 2 processes; then the run from the QA run's
  encoder and the matrix, in 2 processes."""
  k1, k2, k3 = sweep["lives"]
  assert k1["code"] == KILLED, k1["out"][-3000:]
  assert "ended with status 137" in k1["out"], k1["out"][-3000:]
  assert k2["code"] == -signal.SIGKILL, k2["out"][-3000:]
  assert k3["code"] == 0, k3["out"][-3000:]
  for life, step in ((k2, 1), (k3, 3)):
    assert "resumed from" in life["out"] and f"at step {step}" in \
        life["out"], life["out"][-3000:]
  runs = os.path.join(sweep["work"], "runs", files.safe_name(
      f"tagging:{tasks['tagging']}"))
  base = os.path.join(runs, "_none", "seed0")
  source = _source_dirs(sweep["work"], tasks)["tagging"]
  parts = [_losses(k["record"][0], base) for k in (k1, k2, k3)]
  assert [[s for s, _ in part] for part in parts] == [
      [1], [2, 3], list(range(4, STEPS + 1))]
  for life in (k1, k3):  # Both processes of a life saw the same.
    assert _losses(life["record"][1], base) == _losses(life["record"][0],
                                                       base)
  whole = _losses(library_runs[2]["record"][0], source)
  np.testing.assert_allclose(np.asarray([x for part in parts for x in part]),
                             np.asarray(whole), rtol=RTOL)
  assert files.read_json(os.path.join(base, "metrics.json"))["history"] == \
      files.read_json(os.path.join(source, "metrics.json"))["history"]
  w_run, _ = checkpoint.restore(base, checkpoint.BEST)
  w_source, _ = checkpoint.restore(source, checkpoint.BEST)
  _assert_trees_close(w_run, w_source)
  # The run from the QA encoder, in 2 processes; the matrix holds its score.
  transfer = os.path.join(runs, files.safe_name(f"qa:{tasks['qa']}"), "seed0")
  assert [s for s, _ in _losses(k3["record"][0], transfer)] == list(
      range(1, STEPS + 1))
  matrix = files.read_json(os.path.join(sweep["work"],
                                        "transfer_matrix.json"))
  assert matrix["complete"]
  target = f"tagging:{tasks['tagging']}"
  result = files.read_json(os.path.join(transfer, "result.json"))
  history = files.read_json(os.path.join(transfer, "metrics.json"))["history"]
  assert matrix["pairs"][target][f"qa:{tasks['qa']}"]["runs"] == [
      result["score"]] == [history[-1][matrix["metric"][target]]]


def test_logme_of_two_processes_equals_that_of_one(sweep, tasks):
  """The LogME score the 2-process evaluation cached equals the score
  computed here, in one process."""
  from configs import tiny  # pylint: disable=import-outside-toplevel
  from taskemb_jax import logme  # pylint: disable=import-outside-toplevel
  res = sweep["evaluate"]
  assert res["code"] == 0, res["out"][-3000:]
  target, source = f"tagging:{tasks['tagging']}", f"qa:{tasks['qa']}"
  cached = files.read_json(os.path.join(sweep["work"], logme.SCORES))
  config = tiny.get_config()
  config.transfer.all.max_length = 16
  config.transfer.all.eval_batch_size = BATCH
  here = logme.logme_score(_source_dirs(sweep["work"], tasks)["qa"], target,
                           config, sharding.make_mesh())
  np.testing.assert_allclose(cached["scores"][target][source], here,
                             rtol=RTOL)
  evaluation = files.read_json(os.path.join(sweep["work"], "evaluation.json"))
  assert evaluation["methods"] == ["logme", "textemb"]
  written = {os.path.basename(p) for _, p in res["record"][0]["touched"]}
  assert {logme.SCORES, "evaluation.json"} <= written
  assert not res["record"][1]["touched"]


def test_only_process_zero_writes_shared_files(library_runs, sweep):
  """metrics.json, task.json, identity.json, settings.json, result.json,
  the library and the transfer matrix: process 0 writes each of them, the
  other process never writes, replaces or removes any of them."""
  def shared(path):
    name = os.path.basename(path)
    return (name in ("metrics.json", "task.json", "identity.json",
                     "settings.json", "result.json", "transfer_matrix.json",
                     "transfer_matrix.csv")
            or f"{os.sep}library{os.sep}" in path)
  lives = [library_runs[2]["record"]] + [
      life["record"] for life in sweep["lives"] if len(life["record"]) == 2]
  zero = [t for life in lives for t in life[0]["touched"]]
  other = [t for life in lives for t in life[1]["touched"]]
  written = {os.path.basename(p) for op, p in zero if shared(p)}
  assert {"metrics.json", "task.json", "identity.json", "settings.json",
          "result.json", "transfer_matrix.json", "transfer_matrix.csv",
          "manifest.json", "taskemb.npz", "textemb.npy"} <= written
  assert not [t for t in other if shared(t[1])]
  # Process 0 of 2 writes the library exactly as 1 process does (no file
  # written twice): the same writes, in the same order.
  def library_writes(record):  # Temporaries (random names) left out.
    return [(op, os.path.basename(p)) for op, p in record["touched"]
            if f"{os.sep}library{os.sep}" in p and
            not os.path.basename(p).startswith(".")]
  one = library_writes(library_runs[1]["record"][0])
  assert len([w for w in one if w == ("write", "taskemb.npz")]) == len(KINDS)
  assert library_writes(library_runs[2]["record"][0]) == one


# --- Failures of one process or of both ---------------------------------------


@pytest.fixture(scope="module")
def failures(tasks, tmp_path_factory):
  """2-process train runs, launched at the same time: one with a config
  error, one with a record of process 1's share that fails to tokenize,
  one whose process 1 fails alone after step 2."""
  root = tmp_path_factory.mktemp("failures")
  procs = {}
  for case, fail, extra in (("config", "", ["--config.learning_rate=-1"]),
                            ("share", "1:encode", []),
                            ("alone", "1:step2", [])):
    args = [
        "--config=configs/tiny.py", "--config.stage=train",
        f"--config.task=tagging:{tasks['tagging']}", f"--workdir={root / case}",
        "--config.train_examples=0", "--config.max_eval_examples=0",
        "--config.learning_rate=0.001", f"--config.batch_size={BATCH}",
        f"--config.eval_batch_size={BATCH}", "--config.num_epochs=1",
        "--config.max_length=16", "--config.dropout=0.1", *extra]
    procs[case] = (time.time(), _start(2, args, str(root / "record"), case,
                                       TASKEMB_TEST_FAIL=fail))
  out = {}
  for case, (start, proc) in procs.items():
    code, text = _finish(proc, timeout=120)
    out[case] = {"code": code, "out": text, "seconds": time.time() - start,
                 "work": str(root / case),
                 "record": [_record(str(root / "record"), p, case)
                            for p in (0, 1)]}
  return out


def _error_lines(text):
  return [line for line in text.splitlines() if line.startswith("error:")]


def test_a_config_error_is_one_line_for_both_processes(failures):
  res = failures["config"]
  assert res["code"] == 2, res["out"][-3000:]
  lines = _error_lines(res["out"])
  assert len(lines) == 1, res["out"][-3000:]
  assert lines[0].startswith("error: config.learning_rate=-1"), lines
  assert not os.path.exists(res["work"])  # Checked before any write.


def test_a_bad_record_of_one_share_stops_both_with_one_line(failures):
  """Process 1's 3rd record is record 16 + 2 of the split; process 0, which
  read its share without fault, stops with the same error, printed once."""
  res = failures["share"]
  assert res["code"] == 2, res["out"][-3000:]
  assert _error_lines(res["out"]) == [
      "error: record 18: injected failure of its encoding"], res["out"][-3000:]
  assert "Traceback" not in res["out"]
  assert not res["record"][0]["loss"] and not res["record"][1]["loss"]


def test_a_process_failing_alone_ends_the_job_at_once(failures):
  """Process 1 fails after step 2 while process 0 waits in step 3's
  collective: process 1 ends at once (JAX's shutdown would wait minutes for
  process 0) and the launcher stops process 0."""
  res = failures["alone"]
  assert res["code"] == 2, res["out"][-3000:]
  assert _error_lines(res["out"]) == [
      "error: injected failure of process 1 after step 2"], res["out"][-3000:]
  assert "process 1 of 2 ended with status 2" in res["out"]
  # Process 0, if its step failed before the launcher stopped it, says why.
  assert "Traceback" not in res["out"], res["out"][-3000:]
  assert all(line.startswith("process 0 of 2: stopped: another process of "
                             "the job ended (")
             for line in res["out"].splitlines() if "process 0 of 2" in line)
  assert [s for _, s, _ in res["record"][1]["loss"]] == [1, 2]
  assert res["seconds"] < 100, res["seconds"]


# --- Start-up failures -------------------------------------------------------


def _main(env, *args):
  env = dict(os.environ, PYTHONPATH=ROOT, **env)
  return subprocess.Popen(
      [sys.executable, "-m", "taskemb_jax.main", "--config=configs/tiny.py",
       "--config.stage=list", *args], cwd=ROOT, env=env, text=True,
      stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_start_up_failures_end_with_one_line():
  """No coordinator; a process count that never completes; processes that
  disagree on the count: each ends (status 2) with one `error:` line.

  The jobs of 2 processes wait 10 s, so that both start within that time
  on a busy machine."""
  def env(port, n, i, timeout=10):
    return {"JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}",
            "JAX_NUM_PROCESSES": str(n), "JAX_PROCESS_ID": str(i),
            "JAX_DISTRIBUTED_TIMEOUT": str(timeout)}
  lonely, short, split = _free_port(), _free_port(), _free_port()
  start = time.time()
  procs = {
      "no coordinator": [_main(env(lonely, 2, 1, timeout=3))],
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
  (_, first), (_, second) = results["3 of 2"]
  assert "process 0 of 3: not all JAX_NUM_PROCESSES=3 processes joined" in \
      first
  assert "within 10 s" in first
  # Process 1 finds the coordinator gone if process 0 gave up first.
  assert ("process 1 of 3: not all JAX_NUM_PROCESSES=3 processes joined" in
          second or "process 1 of 3: cannot reach the coordinator" in second)
  assert "the job has 2 processes" in results["2 or 3"][0][1]


# --- What the launchers set is what the start-up reads ----------------------


@pytest.mark.parametrize("env, expected", [
    ({}, None),
    ({"SLURM_NTASKS": "1"}, None),
    ({"SLURM_NTASKS": "4"}, {}),
    ({"TPU_WORKER_HOSTNAMES": "h0,h1"}, {}),
    ({"TASKEMB_MULTIHOST": "1"}, {}),
    ({"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234", "JAX_NUM_PROCESSES": "4",
      "JAX_PROCESS_ID": "3"}, {"coordinator_address": "10.0.0.1:1234",
                               "num_processes": 4, "process_id": 3}),
])
def test_launch_settings(monkeypatch, env, expected):
  for name in ("SLURM_NTASKS", "TPU_WORKER_HOSTNAMES", "TASKEMB_MULTIHOST",
               "JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES",
               "JAX_PROCESS_ID"):
    monkeypatch.delenv(name, raising=False)
  for name, value in env.items():
    monkeypatch.setenv(name, value)
  assert sharding._launch_settings() == expected  # pylint: disable=protected-access


def test_bad_launch_settings_are_one_line(monkeypatch):
  monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "127.0.0.1:1")
  monkeypatch.setenv("JAX_NUM_PROCESSES", "2")
  monkeypatch.setenv("JAX_PROCESS_ID", "2")
  with pytest.raises(ConfigError, match=r"JAX_PROCESS_ID=2 must be in \[0, "):
    sharding._launch_settings()  # pylint: disable=protected-access
  monkeypatch.delenv("JAX_PROCESS_ID")
  with pytest.raises(ConfigError, match="JAX_PROCESS_ID must be set too"):
    sharding._launch_settings()  # pylint: disable=protected-access


def _fake_tool(folder, name):
  """A stand-in for `name` that records its arguments, one a line."""
  path = os.path.join(folder, name)
  with open(path, "w", encoding="utf-8") as f:
    f.write('#!/usr/bin/env bash\nprintf "%s\\n" "$@" > "$0.args"\n')
  os.chmod(path, 0o755)
  return path + ".args"


def test_tpu_and_slurm_launchers_start_what_the_code_expects(tmp_path,
                                                            monkeypatch):
  """tpu_vm.sh runs the command on every host with TASKEMB_MULTIHOST=1 (and
  the start-up timeout); slurm_gpu.sbatch runs it under srun, which stops
  every task when one fails."""
  gcloud, srun = _fake_tool(tmp_path, "gcloud"), _fake_tool(tmp_path, "srun")
  env = dict(os.environ, PATH=f"{tmp_path}:{os.environ['PATH']}",
             JAX_DISTRIBUTED_TIMEOUT="77", SLURM_SUBMIT_DIR=ROOT)
  flags = ["--config=configs/tiny.py", "--workdir=/shared/a b"]
  subprocess.run(["bash", "launch/tpu_vm.sh", "tpu1", "zone1", "--", *flags],
                 cwd=ROOT, env=env, check=True, timeout=30)
  subprocess.run(["bash", "launch/slurm_gpu.sbatch", *flags], cwd=ROOT,
                 env=env, check=True, timeout=30)
  args = open(gcloud, encoding="utf-8").read().splitlines()
  assert "--worker=all" in args
  command = args[args.index("--command") + 1]
  prefix, _, main = command.partition(" .venv/bin/python -m taskemb_jax.main")
  assert main == " --config=configs/tiny.py --workdir=/shared/a\\ b"
  assigned = dict(a.split("=", 1) for a in prefix.split("&& ")[1].split())
  assert assigned == {"TASKEMB_MULTIHOST": "1",
                      "JAX_DISTRIBUTED_TIMEOUT": "77"}
  for name, value in assigned.items():
    monkeypatch.setenv(name, value)
  assert sharding._launch_settings() == {}  # pylint: disable=protected-access
  assert sharding._timeout_s() == 77  # pylint: disable=protected-access
  assert open(srun, encoding="utf-8").read().splitlines() == [
      "--kill-on-bad-exit=1", ".venv/bin/python", "-m", "taskemb_jax.main",
      *flags]
