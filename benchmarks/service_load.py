r"""Load: many jobs submitted at once to a served task bank, over loopback.

  .venv/bin/python benchmarks/service_load.py --jobs=50 --workers=2 \
      --out=benchmarks/results/service_load.json

Builds a tiny library (`configs/serve.py:tiny`: the tiny random model,
three synthetic tasks) unless --library names one built with that config,
starts `serve` (--workers worker processes, the embedded SQLite queue, or
--broker=redis://...), then from --jobs threads at once submits --jobs
distinct classification files (120 examples each: every target fine-tunes
on 48, so jobs share compiled shapes), --duplicates of them again (each
must return its first job's id) and --bad malformed files (each must be
refused with 422 before queueing). It polls every job until it ends and
reports:

* throughput: finished jobs per minute, first submission to last end, and
  the latency (submission to end) percentiles;
* that every job ended done or failed with an error line; that none was
  lost (every id answers and ended) and none duplicated (distinct ids per
  content; the workers ran exactly one job per id: their `jobs_done` sum).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORDS = ("the a of and to in is was it for on that with as his they at be "
         "this from have or by one had not but what all were when we there "
         "can an your which their said if do will each about how up").split()


def _records(n: int, seed: int, kind: str = "classification") -> list[dict]:
  rng = random.Random(seed)
  out = []
  for i in range(n):
    words = [rng.choice(WORDS) for _ in range(rng.randint(6, 12))]
    cue = "excellent" if i % 2 else "terrible"
    words.insert(rng.randrange(len(words)), cue)
    if kind == "tagging":
      out.append("\n".join(f"{w}\t{'B-CUE' if w == cue else 'O'}"
                           for w in words) + "\n")
    else:
      out.append(json.dumps({"text": " ".join(words),
                             "label": ["negative", "positive"][i % 2]}) + "\n")
  return out


def build_library(folder: str) -> str:
  """Three synthetic tasks embedded with configs/serve.py:tiny."""
  names = []
  for kind in ("classification", "regression", "tagging"):
    task = os.path.join(folder, kind)
    os.makedirs(task, exist_ok=True)
    ext = ".conll" if kind == "tagging" else ".jsonl"
    for split, n, seed in (("train", 48, 1), ("validation", 24, 2)):
      lines = _records(n, seed, kind)
      if kind == "regression":
        lines = [json.dumps({"text": json.loads(x)["text"],
                             "label": float(i % 4)}) + "\n"
                 for i, x in enumerate(lines)]
      with open(os.path.join(task, split + ext), "w") as f:
        f.writelines(lines)
    names.append(f"{kind}:{task}")
  lib = os.path.join(folder, "lib")
  subprocess.run([sys.executable, "-m", "taskemb_jax.main",
                  "--config=configs/serve.py:tiny",
                  "--config.stage=build_library", f"--config.library={lib}",
                  f"--config.transfer.sources={','.join(names)}",
                  f"--workdir={os.path.join(folder, 'work')}"],
                 cwd=ROOT, check=True, capture_output=True)
  return lib


def _request(method: str, url: str, body: bytes | None = None,
             headers: dict | None = None) -> tuple[int, dict]:
  req = urllib.request.Request(url, data=body, method=method,
                               headers=headers or {})
  try:
    with urllib.request.urlopen(req, timeout=60) as r:
      return r.status, json.loads(r.read())
  except urllib.error.HTTPError as e:
    return e.code, json.loads(e.read())


def submit(url: str, name: str, data: bytes) -> tuple[int, dict, float]:
  """POST /api/jobs (multipart: file, kind); (status, body, time)."""
  boundary = uuid.uuid4().hex
  body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"kind\"\r\n"
          f"\r\nclassification\r\n--{boundary}\r\nContent-Disposition: "
          f"form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: "
          "application/octet-stream\r\n\r\n").encode() + data + \
      f"\r\n--{boundary}--\r\n".encode()
  t = time.time()
  status, reply = _request("POST", url + "/api/jobs", body, {
      "Content-Type": f"multipart/form-data; boundary={boundary}"})
  return status, reply, t


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _percentile(xs: list[float], q: float) -> float:
  xs = sorted(xs)
  return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))] if xs else 0.0


def run(args) -> dict:
  tmp = tempfile.mkdtemp(prefix="service_load-")
  lib = args.library or build_library(tmp)
  port = _free_port()
  url = f"http://127.0.0.1:{port}"
  flags = [f"--config.library={lib}", f"--config.serve.port={port}",
           f"--config.serve.workers={args.workers}"]
  if args.broker:
    flags.append(f"--config.serve.broker={args.broker}")
  log = open(os.path.join(tmp, "serve.log"), "wb")
  server = subprocess.Popen(
      [sys.executable, "-m", "taskemb_jax.main",
       "--config=configs/serve.py:tiny", f"--workdir={tmp}/serve", *flags],
      cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
  try:
    deadline = time.time() + 120
    while True:
      try:
        if len(_request("GET", url + "/api/health")[1]["workers"]) >= \
            args.workers:
          break
      except (OSError, ValueError):
        pass
      if time.time() > deadline or server.poll() is not None:
        raise RuntimeError(f"server not ready; see {tmp}/serve.log")
      time.sleep(0.5)
    files = [(f"job{i}.jsonl", "".join(_records(120, 1000 + i)).encode())
             for i in range(args.jobs)]
    files += [files[i % args.jobs] for i in range(args.duplicates)]
    files += [(f"bad{i}.jsonl", b'{"text": "ok", "label": "a"}\n{"text": \n')
              for i in range(args.bad)]
    random.Random(0).shuffle(files)
    start = time.time()
    with concurrent.futures.ThreadPoolExecutor(len(files)) as pool:
      replies = list(pool.map(lambda f: (f[0], *submit(url, *f)), files))
    submitted_s = time.time() - start
    by_name: dict[str, set[str]] = {}
    sent_at: dict[str, float] = {}
    refused = []
    for name, status, body, t in replies:
      if status in (200, 202):
        by_name.setdefault(name, set()).add(body["id"])
        sent_at[body["id"]] = min(t, sent_at.get(body["id"], t))
      else:
        refused.append((name, status, body.get("error", "")))
    ended: dict[str, dict] = {}
    while len(ended) < len(sent_at) and time.time() - start < args.timeout_s:
      for job_id in sent_at:
        if job_id not in ended:
          job = _request("GET", f"{url}/api/jobs/{job_id}")[1]
          if job["state"] in ("done", "failed", "cancelled"):
            job["ended_at"] = time.time()
            ended[job_id] = job
      time.sleep(0.5)
    health = _request("GET", url + "/api/health")[1]
  finally:
    server.terminate()
    try:
      server.wait(30)
    except subprocess.TimeoutExpired:
      os.killpg(server.pid, 9)
  states: dict[str, int] = {}
  for job in ended.values():
    states[job["state"]] = states.get(job["state"], 0) + 1
  lat = [job["ended_at"] - sent_at[i] for i, job in ended.items()]
  last = max((j["ended_at"] for j in ended.values()), default=start)
  return {
      "date": datetime.date.today().isoformat(), "cpus": os.cpu_count(),
      "jobs": args.jobs, "duplicates": args.duplicates, "bad": args.bad,
      "workers": args.workers, "broker": args.broker or "sqlite",
      "submit_s": round(submitted_s, 2),
      "wall_s": round(last - start, 1),
      "jobs_per_min": round(60 * len(ended) / max(last - start, 1e-9), 1),
      "latency_s": {q: round(_percentile(lat, p), 1) for q, p in
                    (("p50", .5), ("p90", .9), ("max", 1.0))},
      "job_s_median": _percentile([j["timings"]["seconds"] for j in
                                   ended.values() if j["timings"]], .5),
      "states": states,
      "errors": sorted({j["error"] for j in ended.values() if j["error"]}),
      "lost": len(sent_at) - len(ended),
      "one_id_per_content": all(len(v) == 1 for v in by_name.values()),
      "distinct_jobs": len(sent_at),
      "runs_by_workers": sum(w["jobs_done"] for w in health["workers"]),
      "refused": len(refused),
      "refusals": sorted({f"{s} {e}" for _, s, e in refused})[:3],
      "attempts_over_1": sum(j["attempt"] > 1 for j in ended.values()),
  }


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--jobs", type=int, default=50)
  parser.add_argument("--duplicates", type=int, default=10)
  parser.add_argument("--bad", type=int, default=5)
  parser.add_argument("--workers", type=int, default=2)
  parser.add_argument("--broker", default="")
  parser.add_argument("--library", default="")
  parser.add_argument("--timeout_s", type=float, default=1800)
  parser.add_argument("--out", default="")
  args = parser.parse_args()
  r = run(args)
  print(f"{r['distinct_jobs']} jobs (+{r['duplicates']} duplicates, "
        f"{r['bad']} bad files) on {r['workers']} worker(s), {r['broker']}: "
        f"{r['jobs_per_min']} jobs/min; latency p50 {r['latency_s']['p50']} "
        f"s, p90 {r['latency_s']['p90']} s, max {r['latency_s']['max']} s; "
        f"states {r['states']}; lost {r['lost']}; one id per content "
        f"{r['one_id_per_content']}; runs {r['runs_by_workers']}; refused "
        f"{r['refused']}")
  print(json.dumps(r, indent=1))
  if args.out:
    with open(args.out, "w") as f:
      json.dump(r, f, indent=1)
  ok = (r["lost"] == 0 and r["one_id_per_content"] and r["refused"] == r["bad"]
        and r["runs_by_workers"] == r["distinct_jobs"])
  sys.exit(0 if ok else 1)


if __name__ == "__main__":
  main()
