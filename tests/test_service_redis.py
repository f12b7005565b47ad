"""The multi-host mode for real: a redis-server on a loopback port (started
and stopped here), an API server without workers and two worker processes
with workdirs of their own (as on two hosts), consuming one queue."""

import os
import shutil
import subprocess
import time

import httpx
import pytest

import service_fixtures as sf
from service_fixtures import tiny_library  # noqa: F401  pylint: disable=unused-import
from taskemb_jax.service import jobs

REDIS = shutil.which("redis-server")


@pytest.fixture
def redis_url(tmp_path):
  if REDIS is None:
    pytest.skip("redis-server is not installed (apt-get install redis-server)")
  port = sf.free_port()
  with open(tmp_path / "redis.log", "wb") as log:
    proc = subprocess.Popen(
        [REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
  url = f"redis://127.0.0.1:{port}/0"
  try:
    import redis  # pylint: disable=import-outside-toplevel
    sf.wait_for(lambda: redis.Redis.from_url(url).ping(), 20, "redis-server")
    yield url
  finally:
    sf._stop(proc)  # pylint: disable=protected-access


def test_redis_store_updates_are_atomic(redis_url, tmp_path):
  config = sf.tiny_config(str(tmp_path / "lib"), broker=redis_url,
                          queue="atomic")
  queue = jobs.open_queue(config, str(tmp_path / "w"))
  job = jobs.new_job("k", kind=None, description="d", filename="", ext="",
                     size=0, detected=None, max_attempts=2)
  first, new = jobs.submit(queue, job, None)
  assert new and jobs.submit(queue, dict(job, id="other"), None)[0][
      "id"] == first["id"]
  assert [j["id"] for j in queue.store.active()] == [first["id"]]

  def bump(j):
    j["progress"] += 1
    return j
  import threading  # pylint: disable=import-outside-toplevel
  threads = [threading.Thread(target=lambda: [queue.store.update(
      first["id"], bump) for _ in range(50)]) for _ in range(4)]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  assert queue.store.get(first["id"])["progress"] == 200
  queue.store.update(first["id"], jobs.cancel)
  assert queue.store.active() == []


def test_two_worker_hosts_share_one_queue(redis_url, tiny_library,  # noqa: F811  pylint: disable=redefined-outer-name
                                          tmp_path):
  common = [f"--config.serve.broker={redis_url}",
            f"--config.library={tiny_library}", "--config.serve.queue=hosts",
            "--config.serve.heartbeat_s=0.5", "--config.serve.stale_s=4"]
  workers = []
  with sf.server(str(tmp_path / "api"), tiny_library, *common,
                 "--config.serve.workers=0", workers=0) as (url, _):
    for host in ("host1", "host2"):
      ctx = sf.process([sf.TINY, "--config.serve.role=worker",
                        f"--workdir={tmp_path / host}", *common],
                       str(tmp_path / f"{host}.log"))
      workers.append(ctx)
      ctx.__enter__()  # pylint: disable=unnecessary-dunder-call
    try:
      sf.wait_for(lambda: len(httpx.get(url + "/api/health").json()[
          "workers"]) == 2, 90, "two workers")
      # Files of 120 examples: every target trains on 48 (same shapes).
      ids = []
      for seed in range(4):
        path = sf.classification_file(str(tmp_path / f"{seed}.jsonl"), n=120,
                                      seed=seed)
        r = httpx.post(url + "/api/jobs", data={"kind": "classification"},
                       files={"file": open(path, "rb")})
        assert r.status_code == 202
        ids.append(r.json()["id"])
      done = [sf.wait_job(url, i, ("done", "failed"), timeout_s=150)
              for i in ids]
      assert [j["state"] for j in done] == ["done"] * 4, done
      assert all(j["attempt"] == 1 for j in done)
      for i in ids:
        result = httpx.get(f"{url}/api/jobs/{i}/result").json()
        assert [r["rank"] for r in result["ranking"]] == [1, 2, 3]
      health = httpx.get(url + "/api/health").json()
      per_worker = {w["host"] + str(w["pid"]): w["jobs_done"]
                    for w in health["workers"]}
      assert sum(per_worker.values()) == 4 and min(per_worker.values()) >= 1
      assert health["broker"] == "redis" and health["queued"] == 0
      # Warm workers: a worker's later job of the same shapes traces and
      # compiles (far) less than its first.
      first = [j["timings"] for j in done if j["timings"]["worker_job"] == 1]
      later = [j["timings"] for j in done if j["timings"]["worker_job"] > 1]
      assert len(first) == 2 and later
      assert max(t["traces"] for t in later) < min(t["traces"] for t in first)
      # No upload or run folder on the API host: data went through Redis.
      assert not os.path.exists(tmp_path / "api" / "runs")
      assert os.path.isdir(tmp_path / "host1" / "runs")
    finally:
      for ctx in workers:
        ctx.__exit__(None, None, None)
    time.sleep(0.1)
