"""The job store and a job's life on the embedded queue (SQLite): atomic
changes across processes, claims, retries after a lost worker, cancelling."""

import multiprocessing
import time

import pytest

import service_fixtures as sf
from taskemb_jax.service import jobs


@pytest.fixture
def queue(tmp_path):
  return jobs.open_queue(sf.tiny_config(str(tmp_path / "lib"), stale_s=10.0),
                         str(tmp_path / "work"))


def _job(queue, key="k", **kw):
  job = jobs.new_job(key, kind="classification", description="", filename="f",
                     ext=".jsonl", size=1, detected=None,
                     max_attempts=kw.pop("max_attempts", 2))
  return jobs.submit(queue, job, b"data")


def _pending(queue):
  return sorted(tuple(t.args) for t in queue.huey.pending())


def test_submit_returns_the_live_job_of_the_same_content(queue):
  a, new_a = _job(queue, "same")
  b, new_b = _job(queue, "same")
  assert new_a and not new_b and b["id"] == a["id"]
  assert _pending(queue) == [(a["id"], 1)]  # One message, not two.
  assert queue.store.get_blob(a["id"], "upload") == b"data"
  # A failed or cancelled job is not reused.
  queue.store.update(a["id"], jobs.cancel)
  c, new_c = _job(queue, "same")
  assert new_c and c["id"] != a["id"]
  assert len(a["id"]) >= 22 and a["id"] != c["id"]


def _increment(workdir, lib, job_id, n):
  q = jobs.open_queue(sf.tiny_config(lib), workdir)
  for _ in range(n):
    q.store.update(job_id, lambda j: j.update(progress=j["progress"] + 1)
                   or j)


def test_updates_are_atomic_across_processes(queue, tmp_path):
  job, _ = _job(queue)
  ctx = multiprocessing.get_context("spawn")
  procs = [ctx.Process(target=_increment, args=(
      str(tmp_path / "work"), str(tmp_path / "lib"), job["id"], 25))
           for _ in range(4)]
  for p in procs:
    p.start()
  for p in procs:
    p.join(120)
    assert p.exitcode == 0
  assert queue.store.get(job["id"])["progress"] == 100


def test_a_lost_worker_s_job_is_retried_once_then_failed(queue):
  job, _ = _job(queue)
  jid = job["id"]
  assert queue.store.update(jid, jobs.claim(jid, 1, "w1"))["state"] == \
      "running"
  assert queue.store.update(jid, jobs.claim(jid, 1, "w2")) is None  # Taken.
  now = time.time()
  assert jobs.reap(queue, now + 5) == []  # Heartbeat fresh enough.
  assert jobs.reap(queue, now + 11) == [jid]
  job = queue.store.get(jid)
  assert (job["state"], job["attempt"], job["worker"]) == ("queued", 2, None)
  assert (jid, 2) in _pending(queue)
  # The old worker's late writes and a stale message change nothing.
  assert queue.store.update(jid, jobs.finish(1, "w1", "done")) is None
  assert queue.store.update(jid, jobs.claim(jid, 1, "w2")) is None
  assert queue.store.update(jid, jobs.claim(jid, 2, "w2"))["state"] == \
      "running"
  assert jobs.reap(queue, time.time() + 11) == [jid]
  job = queue.store.get(jid)
  assert job["state"] == "failed" and job["attempt"] == 2
  assert "stopped responding during each of 2 attempts" in job["error"]
  assert [r["outcome"] for r in job["runs"]] == ["lost", "lost"]
  assert [r["worker"] for r in job["runs"]] == ["w1", "w2"]
  assert queue.store.active() == []
  assert jobs.reap(queue, time.time() + 100) == []


def test_a_worker_that_stops_cleanly_puts_its_job_back(queue):
  job, _ = _job(queue)
  jid = job["id"]
  queue.store.update(jid, jobs.claim(jid, 1, "w1"))
  assert queue.store.update(jid, jobs.release(1, "w2")) is None  # Not its.
  job = queue.store.update(jid, jobs.release(1, "w1"))
  assert (job["state"], job["attempt"]) == ("queued", 1)


def test_cancel(queue):
  queued, _ = _job(queue, "a")
  job = queue.store.update(queued["id"], jobs.cancel)
  assert job["state"] == "cancelled"
  assert queue.store.update(queued["id"], jobs.claim(queued["id"], 1,
                                                     "w")) is None
  running, _ = _job(queue, "b")
  rid = running["id"]
  queue.store.update(rid, jobs.claim(rid, 1, "w"))
  job = queue.store.update(rid, jobs.cancel)
  assert (job["state"], job["cancel"], job["stage"]) == ("running", True,
                                                         "cancelling")
  assert queue.store.update(rid, jobs.finish(1, "w", "cancelled"))[
      "state"] == "cancelled"
  # A cancelled job whose worker died is not retried.
  third, _ = _job(queue, "c")
  tid = third["id"]
  queue.store.update(tid, jobs.claim(tid, 1, "w"))
  queue.store.update(tid, jobs.cancel)
  jobs.reap(queue, time.time() + 11)
  assert queue.store.get(tid)["state"] == "cancelled"


def test_lost_messages_are_sent_again_and_positions_follow_the_queue(queue):
  first, _ = _job(queue, "a")
  second, _ = _job(queue, "b")
  assert jobs.positions(queue) == {first["id"]: 1, second["id"]: 2}
  queue.huey.flush()  # Both messages lost.
  assert jobs.reap(queue, time.time() + 5) == []  # Too recent to tell.
  assert sorted(jobs.reap(queue, time.time() + 11)) == sorted(
      [first["id"], second["id"]])
  assert _pending(queue) == sorted([(first["id"], 1), (second["id"], 1)])
  assert jobs.reap(queue, time.time() + 11) == []  # Now in the queue.
