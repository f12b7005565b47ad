"""Transfer sweep workers as real concurrent processes (spawn)."""

import csv
import json
import multiprocessing
import os
import time

import jax

import synthetic
from configs import tiny
from taskemb_jax import recipe, sharding, transfer
from taskemb_jax import train as train_lib

TIMEOUT_S = 300


def _sweep_config(tasks):
  """Sources S, U; targets T, U: S is needed by both workers of 2."""
  cfg = tiny.get_config()
  s, u, t = (f"classification:{tasks[k]}" for k in "SUT")
  cfg.transfer.sources = f"{s},{u}"
  cfg.transfer.targets = f"{t},{u}"
  cfg.transfer.restarts = 1
  cfg.transfer.source_examples = 32
  cfg.transfer.target_examples = 32
  cfg.transfer.eval_split = "validation"
  cfg.transfer.all.num_epochs = 1
  cfg.transfer.all.batch_size = 16
  return cfg


def _append(path, line):
  with open(path, "a") as f:
    f.write(line + "\n")


def _wait_for_line(path, line, timeout_s):
  deadline = time.monotonic() + timeout_s
  while time.monotonic() < deadline:
    if os.path.exists(path) and line in open(path).read().splitlines():
      return
    time.sleep(0.1)


def _worker(tasks, workdir, shard, log, hold, cache):
  """One sweep worker; logs every training. `hold` = (run folder, log line):
  that run's training first waits for the line, so that the other worker
  reaches the run while it is being trained. Compilations are shared
  through the persistent cache `cache`, as the command line does."""
  cfg = _sweep_config(tasks)
  cfg.transfer.shard = shard
  cfg.compilation_cache = cache
  sharding.configure_jax(cfg)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  real = train_lib.train_and_evaluate

  def logged(c, run_dir):
    _append(log, f"start {run_dir}")
    if hold and run_dir == hold[0]:
      _wait_for_line(log, hold[1], 120)
      time.sleep(1.0)  # The other worker is now at this run's lock.
    out = real(c, run_dir)
    _append(log, f"end {run_dir}")
    return out

  train_lib.train_and_evaluate = logged
  transfer.transfer_stage(cfg, workdir)


def _start(procs):
  for p in procs:
    p.start()


def _join(procs):
  try:
    for p in procs:
      p.join(TIMEOUT_S)
    assert [p.exitcode for p in procs] == [0] * len(procs)
  finally:
    for p in procs:
      if p.is_alive():
        p.kill()
        p.join()


def test_two_workers_share_a_source_and_match_one_worker(tmp_path):
  tasks = {k: synthetic.write_task(str(tmp_path / k), "classification",
                                   n_train=32, n_val=16, seed=i)
           for i, k in enumerate("SUT")}
  cfg = _sweep_config(tasks)
  s, u, t = (f"classification:{tasks[k]}" for k in "SUT")
  work, ref = str(tmp_path / "work"), str(tmp_path / "ref")
  log = str(tmp_path / "log")
  # Plan: T<-none, T<-S, T<-U, U<-none, U<-S. Worker 1 starts with T<-S;
  # worker 0 does T<-none, fine-tunes U for T<-U, then needs S for U<-S.
  runs = transfer.plan(cfg)
  assert runs[1] == (t, s, 0) and runs[4] == (u, s, 0)
  source_s = recipe.source_run_dir(work, s)
  hold = (source_s, f"end {transfer.target_run_dir(work, t, u, 0)}")
  cache = str(tmp_path / "xla")
  ctx = multiprocessing.get_context("spawn")
  workers = [ctx.Process(target=_worker, args=(tasks, work, f"{i}/2", log,
                                               hold, cache))
             for i in range(2)]
  _start(workers)
  _join(workers)
  # The same sweep by one worker.
  ref_worker = ctx.Process(target=_worker, args=(
      tasks, ref, "0/1", str(tmp_path / "ref_log"), None, cache))
  _start([ref_worker])
  _join([ref_worker])
  started = [l.split(" ", 1)[1] for l in open(log).read().splitlines()
             if l.startswith("start ")]
  # Every run trained exactly once: 2 sources and 5 target runs.
  assert sorted(started) == sorted(set(started)) and len(started) == 7
  assert started.count(source_s) == 1
  for target, source, r in runs:
    res = json.load(open(os.path.join(
        transfer.target_run_dir(work, target, source, r), "result.json")))
    assert res["task"] == target
  matrix = json.load(open(os.path.join(work, transfer.MATRIX)))
  assert matrix["complete"]
  assert matrix == json.load(open(os.path.join(ref, transfer.MATRIX)))
  assert (open(os.path.join(work, transfer.MATRIX_CSV)).read() ==
          open(os.path.join(ref, transfer.MATRIX_CSV)).read())


def _matrix(k):
  return {"regime": f"writer{k}", "targets": ["a", "b"],
          "metric": {"a": "accuracy", "b": "f1"},
          "baseline": {"a": {"mean": 0.5 + k, "std": 0.0, "runs": [0.5 + k]}},
          "pairs": {"a": {"b": {"mean": 0.6, "std": 0.1, "runs": [0.5, 0.7],
                                "gain": 0.2}},
                    "b": {"a": {"mean": float(k), "std": 0.0,
                                "runs": [float(k)]}}}}


def _write_many(workdir, k, n):
  for _ in range(n):
    transfer.write_matrix(_matrix(k), workdir)


def test_concurrent_matrix_writes(tmp_path):
  work = str(tmp_path)
  ctx = multiprocessing.get_context("spawn")
  writers = [ctx.Process(target=_write_many, args=(work, k, 150))
             for k in range(4)]
  _start(writers)
  _join(writers)
  final = json.load(open(os.path.join(work, transfer.MATRIX)))
  assert final in [_matrix(k) for k in range(4)]
  rows = list(csv.reader(open(os.path.join(work, transfer.MATRIX_CSV))))
  assert rows[0] == ["target", "source", "metric", "mean", "std", "gain",
                     "runs"] and len(rows) == 4
  assert sorted(os.listdir(work)) == sorted([transfer.MATRIX,
                                            transfer.MATRIX_CSV])
