r"""Latency of one job on the real library: a cold worker, then a warm one.

  .venv/bin/python benchmarks/service_latency.py \
      --out=benchmarks/results/service_latency.json [--screenshot=docs/service.png]

Starts `serve` with configs/serve.py (the shipped MiniLM library, one worker
process) and submits, one after the other, --runs classification files of
1,250 examples whose 80/10/10 split gives exactly 1,000 training examples
(drawn from the bank task rt-freshness, which the library holds out; `make
bank` fetches it): the target fine-tunes on 1,000 examples like the
library's tasks. The first job runs on a cold worker (nothing compiled in
the process yet), the others on the same, warm worker with the same shapes.
Reports per job the seconds from submission to result, the seconds per
stage, and the jit traces and XLA compilations it caused; then a
description-only job. With --screenshot, also ranks the page's sample file
and saves a screenshot of its result page (Debian's chromium, Playwright).

--flags are config overrides given to the server (and to the CLI), e.g. a
faster target recipe:

  .venv/bin/python benchmarks/service_latency.py --cli \
      --flags=--config.rank.finetune.num_epochs=1,--config.rank.textemb=false

--cli first times the main command in a new process (`python -m
taskemb_jax.main --config=configs/demo.py` on the first file, with --flags):
the cold command a user runs, its compilations read from the persistent
cache that earlier runs filled.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import httpx  # pylint: disable=wrong-import-position

CHROMIUM = "/usr/bin/chromium"


def files_of_1000(folder: str, runs: int) -> list[str]:
  """`runs` JSON Lines files of rt-freshness, 1,000 / 125 / 125 per split."""
  from taskemb_jax import tasks  # pylint: disable=import-outside-toplevel
  task = tasks.get_task("rt-freshness")
  splits = {s: task.load(s, None) for s in ("train", "validation", "test")}
  paths = []
  for r in range(runs):
    lines = []
    for split, n in (("train", 1000), ("validation", 125), ("test", 125)):
      lines += splits[split][r * n:(r + 1) * n]
    path = os.path.join(folder, f"rt-{r}.jsonl")
    with open(path, "w") as f:
      for x in lines:
        f.write(json.dumps({"text": x["text"], "label": x["label"]}) + "\n")
    paths.append(path)
  return paths


def _port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def wait(url: str, job_id: str, timeout_s: float = 1800) -> dict:
  deadline = time.time() + timeout_s
  while time.time() < deadline:
    job = httpx.get(f"{url}/api/jobs/{job_id}", timeout=30).json()
    if job["state"] in ("done", "failed", "cancelled"):
      return job
    time.sleep(0.5)
  raise TimeoutError(job_id)


def timed(url: str, **post) -> dict:
  t = time.time()
  r = httpx.post(url + "/api/jobs", timeout=120, **post)
  r.raise_for_status()
  job = wait(url, r.json()["id"])
  job["latency_s"] = round(time.time() - t, 1)
  return job


def cli_seconds(path: str, workdir: str, flags: list[str]) -> float:
  """Wall seconds of the main command ranking the task in `path`."""
  t = time.time()
  subprocess.run(
      [sys.executable, "-m", "taskemb_jax.main", "--config=configs/demo.py",
       f"--workdir={workdir}", f"--config.task=classification:{path}"]
      + flags, cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
      stderr=subprocess.DEVNULL)
  return round(time.time() - t, 1)


def screenshot(url: str, job_id: str, path: str) -> None:
  from playwright.sync_api import sync_playwright  # pylint: disable=import-outside-toplevel
  with tempfile.TemporaryDirectory() as profile, sync_playwright() as p:
    ctx = p.chromium.launch_persistent_context(
        profile, executable_path=CHROMIUM, headless=True,
        viewport={"width": 1280, "height": 900},
        args=["--no-sandbox", "--disable-gpu", "--disable-quic",
              "--no-first-run", "--disable-background-networking",
              "--disable-component-update", "--disable-sync"])
    page = ctx.new_page()
    page.goto(f"{url}/jobs/{job_id}")
    page.wait_for_selector("#ranking tbody tr")
    page.wait_for_timeout(500)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    page.screenshot(path=path, full_page=True)
    ctx.close()


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--runs", type=int, default=2)
  parser.add_argument("--out", default="")
  parser.add_argument("--screenshot", default="")
  parser.add_argument("--flags", default="",
                      help="comma-separated config overrides")
  parser.add_argument("--cli", action="store_true",
                      help="also time the cold main command")
  args = parser.parse_args()
  flags = [f for f in args.flags.split(",") if f]
  tmp = tempfile.mkdtemp(prefix="service_latency-")
  paths = files_of_1000(tmp, args.runs)
  out = {"date": datetime.date.today().isoformat(), "cpus": os.cpu_count(),
         "flags": flags, "jobs": []}
  if args.cli:
    out["cli_s"] = cli_seconds(paths[0], os.path.join(tmp, "cli"), flags)
    print(f"cold main command: {out['cli_s']} s", flush=True)
  port = _port()
  url = f"http://127.0.0.1:{port}"
  t0 = time.time()
  log = open(os.path.join(tmp, "serve.log"), "wb")
  server = subprocess.Popen(
      [sys.executable, "-m", "taskemb_jax.main", "--config=configs/serve.py",
       f"--workdir={tmp}/serve", f"--config.serve.port={port}"] + flags,
      cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
  try:
    while True:
      try:
        if httpx.get(url + "/api/health", timeout=5).json()["workers"]:
          break
      except (httpx.HTTPError, ValueError):
        pass
      if server.poll() is not None or time.time() - t0 > 300:
        raise RuntimeError(f"server did not start; see {tmp}/serve.log")
      time.sleep(0.5)
    out["worker_ready_s"] = round(time.time() - t0, 1)
    for i, path in enumerate(paths):
      job = timed(url, data={"kind": "classification"},
                  files={"file": open(path, "rb")})
      job["name"] = "cold worker" if i == 0 else "warm worker"
      out["jobs"].append(job)
      print(f"{job['name']}: {job['state']} {job['error'] or ''} in "
            f"{job['latency_s']} s; timings {job['timings']}", flush=True)
    job = timed(url, data={"description": "Is a critic's movie review "
                           "snippet fresh or rotten?"})
    job["name"] = "description only"
    out["jobs"].append(job)
    print(f"description only: {job['latency_s']} s", flush=True)
    if args.screenshot:
      sample = os.path.join(ROOT, "taskemb_jax", "service", "static",
                            "samples", "rt-freshness-200.jsonl")
      job = timed(url, data={"kind": "classification", "description":
                             "Is a critic's movie review snippet fresh or "
                             "rotten?"},
                  files={"file": ("rt-freshness-200.jsonl",
                                  open(sample, "rb"))})
      job["name"] = "sample (200 examples) + description"
      out["jobs"].append(job)
      screenshot(url, job["id"], args.screenshot)
      print(f"screenshot of job {job['id']}: {args.screenshot}")
  finally:
    server.terminate()
    try:
      server.wait(60)
    except subprocess.TimeoutExpired:
      os.killpg(server.pid, 9)
  keys = ("name", "state", "latency_s", "timings", "error", "id")
  out["jobs"] = [{k: j.get(k) for k in keys} for j in out["jobs"]]
  print(json.dumps(out, indent=1))
  if args.out:
    with open(args.out, "w") as f:
      json.dump(out, f, indent=1)


if __name__ == "__main__":
  main()
