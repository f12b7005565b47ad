"""A worker: one long-lived consumer process of the job queue.

  python -m taskemb_jax.main --config=configs/serve.py --workdir=work/serve \
      --config.serve.role=worker [--config.serve.broker=redis://host:port]

It runs one job at a time in the same process, so the sentence encoder
stays loaded and the engine's jit-compiled steps stay compiled between
jobs (each job records its traces and compilations in ``timings``). A
heartbeat thread marks the worker and its job alive; a reaper thread
retries or fails the jobs of workers that stopped (`jobs.reap`). Progress
reports of the engine's loops (`taskemb_jax.progress`) become the job's
stage, progress (0-1) and ETA; a cancelled job stops at its next report.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging as logging_std
import os
import shutil
import signal
import socket
import threading
import time
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging

from taskemb_jax import description as description_lib
from taskemb_jax import files
from taskemb_jax import progress as progress_lib
from taskemb_jax.errors import UserError
from taskemb_jax.service import jobs
from taskemb_jax.service import pipeline

# Engine loop -> (label, start, end) of the job's progress.
STAGES = {"textemb": ("TextEmb", 0.0, 0.1), "train": ("fine-tuning", 0.1, 0.75),
          "eval": ("evaluating", None, None),
          "taskemb": ("TaskEmb", 0.75, 0.95)}
_WRITE_EVERY_S = 0.5
# Compilation events counted per job (jax.monitoring).
_EVENTS = {"/jax/core/compile/jaxpr_trace_duration": "traces",
           "/jax/core/compile/backend_compile_duration": "compiles",
           "/jax/compilation_cache/cache_retrieval_time_sec": "cache_hits"}
_COUNTS: dict[str, float] = {v: 0 for v in _EVENTS.values()}
_COUNTS["compile_s"] = 0.0


def _count(event: str, duration: float, **_) -> None:
  name = _EVENTS.get(event)
  if name:
    _COUNTS[name] += 1
    if name == "compiles":
      _COUNTS["compile_s"] += duration


jax.monitoring.register_event_duration_secs_listener(_count)


class JobCancelled(Exception):
  """Raised in the job's thread when the job was cancelled or taken away."""


@dataclasses.dataclass
class _Running:
  job_id: str
  attempt: int
  started: float
  stop: threading.Event
  progress: float = 0.0
  stage: str = "starting"
  written: float = 0.0
  # Seconds spent per stage (until the next report of another stage).
  spent: dict[str, float] = dataclasses.field(default_factory=dict)
  since: float = 0.0

  def account(self, stage: str, now: float) -> None:
    self.spent[self.stage] = self.spent.get(self.stage, 0.0) + now - self.since
    self.stage, self.since = stage, now


class Worker:
  """State of one worker process: its queue, encoder and current job."""

  def __init__(self, config: ml_collections.ConfigDict, workdir: str):
    self.config, self.workdir = config, workdir
    self.queue = jobs.open_queue(config, workdir)
    self.id = f"{socket.gethostname()}:{os.getpid()}"
    self.current: _Running | None = None
    self.done = 0
    self._encoder = None
    self._thread: int | None = None  # The thread running the current job.
    self._closing = threading.Event()

  # -- threads ----------------------------------------------------------------

  def start(self) -> None:
    """Heartbeat and reaper threads; registers as the queue's executor."""
    jobs._EXECUTOR = self.execute  # pylint: disable=protected-access
    progress_lib.add_listener(self.on_progress)
    self.beat()
    for fn in (self._beat_loop, self._reap_loop):
      threading.Thread(target=fn, daemon=True).start()

  def close(self) -> None:
    """Stops the threads; a job still running goes back to the queue."""
    self._closing.set()
    progress_lib.remove_listener(self.on_progress)
    cur = self.current
    if cur is not None:
      cur.stop.set()
      new = self.queue.store.update(cur.job_id, jobs.release(cur.attempt,
                                                             self.id))
      if new is not None:
        self.queue.enqueue(new)
        logging.info("worker %s: job %s put back in the queue", self.id,
                     cur.job_id)
    self.queue.store.beat(self.id, None)

  def beat(self) -> None:
    now = time.time()
    cur = self.current
    self.queue.store.beat(self.id, {
        "host": socket.gethostname(), "pid": os.getpid(), "seen": now,
        "job": cur.job_id if cur else None, "jobs_done": self.done})
    if cur is None:
      return
    new = self.queue.store.update(cur.job_id, jobs.owned(
        cur.attempt, self.id, lambda j: j.update(heartbeat=now)))
    if new is None or new["cancel"]:
      cur.stop.set()  # Cancelled, or no longer this worker's: stop.

  def _beat_loop(self) -> None:
    period = float(self.queue.settings.heartbeat_s)
    while not self._closing.wait(period):
      try:
        self.beat()
      except Exception:  # pylint: disable=broad-except
        logging.exception("worker %s: heartbeat failed", self.id)

  def _reap_loop(self) -> None:
    period = max(0.5, float(self.queue.settings.stale_s) / 4)
    while not self._closing.wait(period):
      try:
        for job_id in jobs.reap(self.queue):
          logging.warning("reaper: job %s was lost; requeued or failed",
                          job_id)
      except Exception:  # pylint: disable=broad-except
        logging.exception("worker %s: reaper failed", self.id)

  # -- progress ---------------------------------------------------------------

  def on_progress(self, report: progress_lib.Report) -> None:
    """Engine progress -> the job's stage, progress and ETA (throttled)."""
    cur = self.current
    if cur is None or threading.get_ident() != self._thread:
      return
    if cur.stop.is_set():
      raise JobCancelled()
    label, lo, hi = STAGES.get(report.name, (report.name, None, None))
    if lo is not None and report.total > 0:
      cur.progress = max(cur.progress, lo + (hi - lo) * min(
          1.0, report.done / report.total))
    now = time.time()
    cur.account(label, now)
    if report.name == "taskemb" and report.done >= report.total:
      cur.account("ranking", now)  # The rest: ranking, views, map.
    if now - cur.written < _WRITE_EVERY_S and report.done < report.total:
      return
    cur.written = now
    self._write_progress(cur, now)

  def _write_progress(self, cur: _Running, now: float) -> None:
    elapsed = now - cur.started
    eta = elapsed * (1 - cur.progress) / cur.progress \
        if cur.progress > 0.02 else None

    def change(job):
      job.update(stage=cur.stage, progress=round(cur.progress, 4),
                 eta_s=None if eta is None else round(eta, 1))
    self.queue.store.update(cur.job_id, jobs.owned(cur.attempt, self.id,
                                                   change))

  # -- jobs -------------------------------------------------------------------

  def encoder(self) -> description_lib.SentenceEncoder:
    """The description encoder, loaded once per process."""
    if self._encoder is None:
      model = self.config.serve.description_model or self.config.model
      self._encoder = description_lib.load_encoder(model)
    return self._encoder

  def execute(self, job_id: str, attempt: int) -> None:
    """Runs one message of the queue (the Huey task's body)."""
    store = self.queue.store
    job = store.update(job_id, jobs.claim(job_id, attempt, self.id))
    if job is None:
      logging.info("worker %s: message for job %s attempt %d skipped (not "
                   "queued at that attempt)", self.id, job_id, attempt)
      return
    self._thread = threading.get_ident()
    now = time.time()
    cur = _Running(job_id, attempt, now, threading.Event(), since=now)
    self.current = cur
    self.beat()  # The health endpoint shows the job at once.
    before = dict(_COUNTS)
    rundir = os.path.join(self.workdir, "runs", job_id)
    state, error = "failed", None
    try:
      self._run(job, rundir)
      state = "done"
    except JobCancelled:
      state, error = "cancelled", "cancelled while running"
    except UserError as e:
      error = str(e)
    except Exception as e:  # pylint: disable=broad-except
      logging.exception("job %s failed", job_id)
      first = (str(e).splitlines() or [""])[0][:300]
      error = f"internal error ({type(e).__name__}): {first}"
    finally:
      self.current = None
      if not self.config.serve.keep_runs:
        shutil.rmtree(rundir, ignore_errors=True)
    if error:  # The server's folders are no business of the user's.
      for folder in (os.path.abspath(self.workdir), self.workdir):
        error = error.replace(folder, "<workdir>")
    cur.account("end", time.time())
    timings = {k: round(_COUNTS[k] - before[k], 3) for k in _COUNTS}
    timings.update(seconds=round(time.time() - cur.started, 2),
                   worker_job=self.done + 1,
                   **{f"s_{k}": round(v, 2) for k, v in cur.spent.items()})
    self.done += 1
    store.update(job_id, jobs.finish(attempt, self.id, state, error, timings))
    self.beat()
    logging.info("worker %s: job %s %s in %.1f s (%s)", self.id, job_id, state,
                 timings["seconds"], timings)

  def _run(self, job: dict[str, Any], rundir: str) -> None:
    store, job_id = self.queue.store, job["id"]
    shutil.rmtree(rundir, ignore_errors=True)  # An earlier attempt's files.
    data_path = None
    if job["kind"] and job.get("ext"):
      data = store.get_blob(job_id, "upload")
      if data is None:
        raise UserError(f"job {job_id}: its uploaded file is missing from "
                        "the queue's store; submit it again")
      data_path = os.path.join(rundir, "data" + job["ext"])
      files.write_bytes(data_path, data)
    result, target = pipeline.rank_job(
        self.config, os.path.join(rundir, "run"), kind=job["kind"],
        data_path=data_path, description=job["description"],
        shown=job["filename"],
        encoder=self.encoder() if job["description"] else None)
    result["description"] = job["description"]
    result["detected"] = job["detected"]
    store.put_blob(job_id, "result", json.dumps(result).encode())
    if target is not None:
      store.put_blob(job_id, "target", target_bytes(target))


def target_bytes(target: dict[str, Any]) -> bytes:
  """A task's library record as one .npz: entry (JSON), textemb, taskemb/*."""
  arrays = {"entry": np.frombuffer(json.dumps(target["entry"]).encode(),
                                   np.uint8)}
  if target["textemb"] is not None:
    arrays["textemb"] = np.asarray(target["textemb"], np.float32)
  for comp, v in target["taskemb"].items():
    arrays[f"taskemb/{comp}"] = np.asarray(v, np.float32)
  buf = io.BytesIO()
  np.savez(buf, **arrays)
  return buf.getvalue()


def target_from_bytes(data: bytes) -> dict[str, Any]:
  with np.load(io.BytesIO(data)) as z:
    entry = json.loads(z["entry"].tobytes().decode())
    return {"entry": entry,
            "textemb": z["textemb"] if "textemb" in z.files else None,
            "taskemb": {k.split("/", 1)[1]: z[k] for k in z.files
                        if k.startswith("taskemb/")}}


def _quiet_orbax(record: logging_std.LogRecord) -> bool:
  """Drops INFO lines of orbax (dozens per checkpoint), as `main` does."""
  return record.levelno > logging_std.INFO or "/orbax/" not in record.pathname


def _exit_with(parent_pid: int) -> None:
  """SIGTERM to this process once its parent is gone."""
  while os.getppid() == parent_pid:
    time.sleep(1.0)
  os.kill(os.getpid(), signal.SIGTERM)


def worker_main(config: ml_collections.ConfigDict, workdir: str,
                parent_pid: int | None = None) -> None:
  """Runs a worker until SIGINT (after its job) or SIGTERM (its job goes
  back to the queue): the `serve` stage's role 'worker', and the processes
  that role 'all' starts (`parent_pid`: theirs; they stop with it)."""
  if parent_pid is not None:
    threading.Thread(target=_exit_with, args=(parent_pid,),
                     daemon=True).start()
  from taskemb_jax import sharding  # pylint: disable=import-outside-toplevel
  logging_std.basicConfig(level=logging_std.INFO,
                          format="%(asctime)s %(name)s %(message)s")
  for handler in logging_std.getLogger().handlers:
    handler.addFilter(_quiet_orbax)
  logging.set_verbosity(logging.INFO)
  sharding.configure_jax(config)
  if config.compilation_cache:
    # Every compiled step goes to the persistent cache: a restarted or new
    # worker on this host loads them instead of compiling again.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  worker = Worker(config, workdir)
  if config.serve.description_model:
    worker.encoder()  # Loaded before the first job.
  worker.start()
  redis = bool(config.serve.broker)
  consumer = worker.queue.huey.create_consumer(
      workers=1, worker_type="thread", periodic=False,
      initial_delay=0.05, backoff=1.5, max_delay=1.0 if redis else 0.25)
  logging.info("worker %s: consuming queue %r (%s)", worker.id,
               config.serve.queue, config.serve.broker or "sqlite")
  try:
    consumer.run()
  finally:
    worker.close()
