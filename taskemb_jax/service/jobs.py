"""The job queue (Huey) and a job's life: queued, running, done | failed |
cancelled.

Queue. Huey carries one message per run of a job, ``run_job(id, attempt)``:
embedded, a `huey.SqliteHuey` in ``<workdir>/queue.db`` (no server); with
``serve.broker=redis://host:port`` a `huey.RedisHuey` that worker
processes on many hosts consume. The records that the API shows (state,
stage, progress, result) live in the same backend (`service.store`).

A job's runs. A worker claims a message only for a queued job whose
attempt matches (a duplicate message is dropped), marks it running and
beats every ``serve.heartbeat_s``. A killed worker stops beating and no
consumer re-enqueues its message, so a reaper (in the API server and in
every worker) takes a running job without a heartbeat for
``serve.stale_s`` as lost: it is queued again as the next attempt, or,
after ``serve.max_attempts`` runs, failed with an error that says so. A
queued job whose message is missing (a server killed between recording and
enqueueing it) is enqueued again. Nothing stays "running" for a dead
worker, nothing runs twice at once.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import time
from typing import Any, Callable

import huey as huey_lib
import ml_collections

from taskemb_jax.errors import ConfigError
from taskemb_jax.service import store as store_lib

TASK_NAME = "taskemb_rank_job"
# Set in a worker process: runs one message, fn(job_id, attempt).
_EXECUTOR: Callable[[str, int], None] | None = None


def _run_job(job_id: str, attempt: int) -> None:
  if _EXECUTOR is None:
    raise RuntimeError("run_job executes in worker processes only")
  _EXECUTOR(job_id, attempt)


@dataclasses.dataclass
class Queue:
  """The queue of one service: Huey, its job store and its settings."""

  huey: huey_lib.Huey
  store: Any  # store.SqliteStore | store.RedisStore
  run: Any  # Huey task wrapper: run(job_id, attempt) enqueues a message.
  settings: ml_collections.ConfigDict  # config.serve

  def enqueue(self, job: store_lib.Job) -> None:
    self.run(job["id"], job["attempt"])


def open_queue(config: ml_collections.ConfigDict, workdir: str) -> Queue:
  """The queue of config.serve.broker ('' = SQLite in the workdir)."""
  s = config.serve
  broker = s.broker
  if not broker:
    os.makedirs(workdir, exist_ok=True)
    h = huey_lib.SqliteHuey(name=s.queue, results=False,
                            filename=os.path.join(workdir, "queue.db"))
  elif broker.startswith(("redis://", "rediss://", "unix://")):
    h = huey_lib.RedisHuey(name=s.queue, results=False, url=broker)
  else:
    raise ConfigError(f"config.serve.broker={broker!r}: use '' (embedded "
                      "SQLite queue) or redis://host:port")
  run = h.task(name=TASK_NAME, retries=0)(_run_job)
  return Queue(h, store_lib.open_store(h), run, s)


def new_id() -> str:
  """An unguessable job id (URL-safe)."""
  return secrets.token_urlsafe(16)


def new_job(key: str, *, kind: str | None, description: str, filename: str,
            ext: str, size: int, detected: dict[str, Any] | None,
            max_attempts: int) -> store_lib.Job:
  """A queued job's record. `filename` is for display only; the worker's
  copy of the upload is named data<ext>."""
  now = time.time()
  return {"id": new_id(), "key": key, "state": "queued", "kind": kind,
          "description": description, "filename": filename, "ext": ext,
          "bytes": size,
          "detected": detected, "created": now, "queued_at": now,
          "started": None, "finished": None, "attempt": 1,
          "max_attempts": max_attempts, "worker": None, "heartbeat": None,
          "stage": "queued", "progress": 0.0, "eta_s": None, "error": None,
          "cancel": False, "runs": [], "timings": None, "published": None}


def submit(queue: Queue, job: store_lib.Job, upload: bytes | None
           ) -> tuple[store_lib.Job, bool]:
  """Records and enqueues `job`; (the job, whether it is new).

  An earlier live job of the same content (`job['key']`) is returned
  instead. The upload is stored before the message is sent, so a worker
  never runs a job without its file.
  """
  got = queue.store.submit(job)
  if got["id"] != job["id"]:
    return got, False
  if upload is not None:
    queue.store.put_blob(job["id"], "upload", upload)
  queue.enqueue(job)
  return job, True


# ----------------------------------------------------------------------------
# Changes of a record (functions for store.update).


def _runs(job: store_lib.Job, outcome: str, now: float) -> None:
  job["runs"].append({"attempt": job["attempt"], "worker": job["worker"],
                      "started": job["started"], "ended": now,
                      "outcome": outcome})


def claim(job_id: str, attempt: int, worker: str):
  """Queued at this attempt -> running on `worker` (None if not claimable)."""
  def fn(job):
    if job["state"] != "queued" or job["attempt"] != attempt:
      return None
    now = time.time()
    job.update(state="running", worker=worker, started=now, heartbeat=now,
               stage="starting", progress=0.0, eta_s=None)
    return job
  return fn


def owned(attempt: int, worker: str, change: Callable[[store_lib.Job], None]):
  """Applies `change` only while this worker runs this attempt."""
  def fn(job):
    if (job["state"] != "running" or job["attempt"] != attempt
        or job["worker"] != worker):
      return None
    change(job)
    return job
  return fn


def finish(attempt: int, worker: str, state: str, error: str | None = None,
           timings: dict[str, Any] | None = None):
  """Running (this attempt, this worker) -> done | failed | cancelled."""
  def change(job):
    now = time.time()
    _runs(job, state, now)
    job.update(state=state, finished=now, error=error, eta_s=None,
               stage=state, heartbeat=None,
               progress=1.0 if state == "done" else job["progress"])
    if timings is not None:
      job["timings"] = timings
  return owned(attempt, worker, change)


def cancel(job):
  """Queued -> cancelled; running -> asks the worker to stop."""
  if job["state"] == "queued":
    now = time.time()
    job.update(state="cancelled", finished=now, stage="cancelled",
               error="cancelled before it ran")
    return job
  if job["state"] == "running" and not job["cancel"]:
    job.update(cancel=True, stage="cancelling")
    return job
  return None


def release(attempt: int, worker: str):
  """Running on a worker that stops cleanly -> queued again, same attempt."""
  def change(job):
    job.update(state="queued", queued_at=time.time(), worker=None,
               heartbeat=None, stage="queued (worker stopped)", progress=0.0,
               eta_s=None)
  return owned(attempt, worker, change)


def published(name: str):
  def fn(job):
    job["published"] = {"name": name, "time": time.time()}
    return job
  return fn


def lost(now: float, stale_s: float):
  """A running job without a heartbeat for stale_s: retried or failed."""
  def fn(job):
    if job["state"] != "running" or now - (job["heartbeat"] or 0) < stale_s:
      return None
    _runs(job, "lost", now)
    who = job["worker"]
    if job["cancel"]:
      job.update(state="cancelled", finished=now, stage="cancelled",
                 error="cancelled (its worker stopped)")
    elif job["attempt"] < job["max_attempts"]:
      job.update(state="queued", attempt=job["attempt"] + 1, queued_at=now,
                 worker=None, heartbeat=None, stage="queued (retry)",
                 progress=0.0, eta_s=None)
    else:
      job.update(state="failed", finished=now, stage="failed",
                 error=f"its worker ({who}) stopped responding during each "
                 f"of {job['attempt']} attempts (killed, or out of memory?); "
                 "not retried again")
    return job
  return fn


# ----------------------------------------------------------------------------
# Reaper and queue positions.


def _pending(queue: Queue) -> set[tuple[str, int]]:
  out = set()
  for task in queue.huey.pending():
    if task.args and len(task.args) == 2:
      out.add((task.args[0], task.args[1]))
  return out


def reap(queue: Queue, now: float | None = None) -> list[str]:
  """Retries or fails lost jobs, re-enqueues lost messages; changed ids."""
  now = time.time() if now is None else now
  stale = float(queue.settings.stale_s)
  changed = []
  pending = None
  for job in queue.store.active():
    if job["state"] == "running":
      new = queue.store.update(job["id"], lost(now, stale))
      if new is not None:
        changed.append(job["id"])
        if new["state"] == "queued":
          queue.enqueue(new)
    elif now - job["queued_at"] >= stale:
      pending = _pending(queue) if pending is None else pending
      if (job["id"], job["attempt"]) not in pending:
        fresh = queue.store.get(job["id"])
        if fresh and fresh["state"] == "queued" and fresh["attempt"] == \
            job["attempt"]:
          queue.enqueue(fresh)
          changed.append(job["id"])
  for worker, info in queue.store.workers().items():
    if now - info.get("seen", 0) > 10 * stale:
      queue.store.beat(worker, None)
  return changed


def positions(queue: Queue) -> dict[str, int]:
  """1-based place of every queued job (first queued, first run)."""
  queued = sorted((j["queued_at"], j["id"]) for j in queue.store.active()
                  if j["state"] == "queued")
  return {job_id: i for i, (_, job_id) in enumerate(queued, 1)}


def live_workers(queue: Queue, now: float | None = None
                 ) -> dict[str, dict[str, Any]]:
  """Workers that beat within serve.stale_s."""
  now = time.time() if now is None else now
  stale = float(queue.settings.stale_s)
  return {w: i for w, i in queue.store.workers().items()
          if now - i.get("seen", 0) <= stale}
