"""Job records, uploads and results, kept in the job queue's own backend.

The API server and every worker read and change the same records: in the
embedded mode, tables of the queue's SQLite file (next to Huey's own); in
the multi-host mode, keys of the queue's Redis. Each change is atomic
(`update` runs a read-modify-write in one SQLite transaction, or under a
Redis WATCH), so a worker, a reaper and a cancelling request never
overwrite one another's changes.

A job record is a JSON object (see `service.jobs`); ``state`` in
`ACTIVE` keeps it in the active index that queue positions and the reaper
read. Blobs hold a job's upload and its result files. Workers record a
heartbeat of their own (`beat`), shown by the health endpoint.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Callable

ACTIVE = ("queued", "running")
TERMINAL = ("done", "failed", "cancelled")
# Jobs whose content a new submission may not reuse.
_NOT_REUSED = ("failed", "cancelled")

Job = dict[str, Any]
Change = Callable[[Job], "Job | None"]


def _dumps(obj: Any) -> str:
  return json.dumps(obj, sort_keys=True, allow_nan=False)


def _apply(job: Job, fn: Change) -> Job | None:
  new = fn(copy.deepcopy(job))
  return None if new is None or new == job else new


class SqliteStore:
  """Records in tables of the embedded queue's SQLite file."""

  _DDL = (
      "create table if not exists svc_job (queue text not null, id text not "
      "null, state text not null, data text not null, primary key(queue, id))",
      "create index if not exists svc_job_state on svc_job (queue, state)",
      "create table if not exists svc_key (queue text not null, key text not "
      "null, id text not null, primary key(queue, key))",
      "create table if not exists svc_blob (queue text not null, id text not "
      "null, name text not null, value blob not null, "
      "primary key(queue, id, name))",
      "create table if not exists svc_worker (queue text not null, id text not "
      "null, data text not null, primary key(queue, id))")

  def __init__(self, storage):
    self.storage, self.q = storage, storage.name
    with storage.db(commit=True) as cur:
      for sql in self._DDL:
        cur.execute(sql)

  def _get(self, cur, job_id: str) -> Job | None:
    cur.execute("select data from svc_job where queue=? and id=?",
                (self.q, job_id))
    row = cur.fetchone()
    return json.loads(row[0]) if row else None

  def _put(self, cur, job: Job) -> None:
    cur.execute("insert or replace into svc_job (queue, id, state, data) "
                "values (?, ?, ?, ?)", (self.q, job["id"], job["state"],
                                        _dumps(job)))

  def submit(self, job: Job) -> Job:
    """Adds `job`, unless a live job has its key: then returns that one."""
    with self.storage.db(commit=True) as cur:
      cur.execute("select id from svc_key where queue=? and key=?",
                  (self.q, job["key"]))
      row = cur.fetchone()
      old = self._get(cur, row[0]) if row else None
      if old is not None and old["state"] not in _NOT_REUSED:
        return old
      cur.execute("insert or replace into svc_key (queue, key, id) values "
                  "(?, ?, ?)", (self.q, job["key"], job["id"]))
      self._put(cur, job)
      return job

  def get(self, job_id: str) -> Job | None:
    with self.storage.db() as cur:
      return self._get(cur, job_id)

  def update(self, job_id: str, fn: Change) -> Job | None:
    """Applies `fn` to a copy of the record atomically; the new record, or
    None when there is no such job or `fn` changed nothing."""
    with self.storage.db(commit=True) as cur:
      job = self._get(cur, job_id)
      new = None if job is None else _apply(job, fn)
      if new is not None:
        self._put(cur, new)
      return new

  def active(self) -> list[Job]:
    with self.storage.db() as cur:
      cur.execute("select data from svc_job where queue=? and state in "
                  f"({','.join('?' * len(ACTIVE))})", (self.q, *ACTIVE))
      return [json.loads(r[0]) for r in cur.fetchall()]

  def put_blob(self, job_id: str, name: str, data: bytes) -> None:
    with self.storage.db(commit=True) as cur:
      cur.execute("insert or replace into svc_blob (queue, id, name, value) "
                  "values (?, ?, ?, ?)", (self.q, job_id, name, data))

  def get_blob(self, job_id: str, name: str) -> bytes | None:
    with self.storage.db() as cur:
      cur.execute("select value from svc_blob where queue=? and id=? and "
                  "name=?", (self.q, job_id, name))
      row = cur.fetchone()
      return bytes(row[0]) if row else None

  def beat(self, worker_id: str, info: dict[str, Any] | None) -> None:
    """Records a worker's heartbeat (None: removes the worker)."""
    with self.storage.db(commit=True) as cur:
      if info is None:
        cur.execute("delete from svc_worker where queue=? and id=?",
                    (self.q, worker_id))
      else:
        cur.execute("insert or replace into svc_worker (queue, id, data) "
                    "values (?, ?, ?)", (self.q, worker_id, _dumps(info)))

  def workers(self) -> dict[str, dict[str, Any]]:
    with self.storage.db() as cur:
      cur.execute("select id, data from svc_worker where queue=?", (self.q,))
      return {i: json.loads(d) for i, d in cur.fetchall()}


class RedisStore:
  """Records in keys of the shared Redis (prefix ``taskemb.<queue>.``)."""

  def __init__(self, storage):
    import redis  # pylint: disable=import-outside-toplevel
    self._watch_error = redis.WatchError
    self.conn = storage.conn
    self.p = f"taskemb.{storage.name}."

  def _job_key(self, job_id: str) -> str:
    return f"{self.p}job:{job_id}"

  def _queue_put(self, pipe, job: Job) -> None:
    pipe.set(self._job_key(job["id"]), _dumps(job))
    if job["state"] in ACTIVE:
      pipe.sadd(self.p + "active", job["id"])
    else:
      pipe.srem(self.p + "active", job["id"])

  def _transaction(self, keys: list[str], body: Callable[[Any], Any]) -> Any:
    """Runs body(pipe) under WATCH of `keys` until no key changed meanwhile.

    `body` reads with the pipe, then calls pipe.multi() and queues writes
    (or returns without multi() to write nothing).
    """
    with self.conn.pipeline() as pipe:
      while True:
        try:
          pipe.watch(*keys)
          out = body(pipe)
          if pipe.explicit_transaction:
            pipe.execute()
          else:
            pipe.unwatch()
          return out
        except self._watch_error:
          continue

  def _read(self, reader, job_id: str) -> Job | None:
    raw = reader.get(self._job_key(job_id))
    return json.loads(raw) if raw is not None else None

  def submit(self, job: Job) -> Job:
    key = f"{self.p}key:{job['key']}"

    def body(pipe):
      old_id = pipe.get(key)
      old = self._read(pipe, old_id.decode()) if old_id else None
      if old is not None and old["state"] not in _NOT_REUSED:
        return old
      pipe.multi()
      pipe.set(key, job["id"])
      self._queue_put(pipe, job)
      return job
    return self._transaction([key], body)

  def get(self, job_id: str) -> Job | None:
    return self._read(self.conn, job_id)

  def update(self, job_id: str, fn: Change) -> Job | None:
    def body(pipe):
      job = self._read(pipe, job_id)
      new = None if job is None else _apply(job, fn)
      if new is not None:
        pipe.multi()
        self._queue_put(pipe, new)
      return new
    return self._transaction([self._job_key(job_id)], body)

  def active(self) -> list[Job]:
    ids = sorted(i.decode() for i in self.conn.smembers(self.p + "active"))
    raws = self.conn.mget([self._job_key(i) for i in ids]) if ids else []
    jobs = [json.loads(r) for r in raws if r is not None]
    return [j for j in jobs if j["state"] in ACTIVE]

  def put_blob(self, job_id: str, name: str, data: bytes) -> None:
    self.conn.set(f"{self.p}blob:{job_id}:{name}", data)

  def get_blob(self, job_id: str, name: str) -> bytes | None:
    return self.conn.get(f"{self.p}blob:{job_id}:{name}")

  def beat(self, worker_id: str, info: dict[str, Any] | None) -> None:
    if info is None:
      self.conn.hdel(self.p + "workers", worker_id)
    else:
      self.conn.hset(self.p + "workers", worker_id, _dumps(info))

  def workers(self) -> dict[str, dict[str, Any]]:
    return {k.decode(): json.loads(v) for k, v in
            self.conn.hgetall(self.p + "workers").items()}


def open_store(huey) -> SqliteStore | RedisStore:
  """The store of the queue `huey` (SqliteHuey or RedisHuey)."""
  from huey.storage import RedisStorage  # pylint: disable=import-outside-toplevel
  if isinstance(huey.storage, RedisStorage):
    return RedisStore(huey.storage)
  return SqliteStore(huey.storage)
