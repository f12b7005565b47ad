r"""The cold main command of this checkout against that of another commit.

  .venv/bin/python benchmarks/cold_command.py --against=148589b [--rounds=2] \
      [--out=benchmarks/results/cold_command.json]

Times `python -m taskemb_jax.main --config=configs/demo.py
--config.task=classification:<file>` (a new process each time: imports, model
and library loading, tracing, programs read from the persistent compilation
cache, fine-tuning, TextEmb, TaskEmb, ranking) on the file of
`service_latency.py` (rt-freshness, 1,000 training examples), for the code
of this checkout and for the code of commit --against (`git archive` into a
temporary folder, run with this interpreter), alternating: other, this,
other, this, ... after one unmeasured run of each, which fills the
persistent compilation cache with their programs. Prints both sides' seconds
and their ratio of medians; writes them to --out.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

# pylint: disable=wrong-import-position
import machine
import service_latency
# pylint: enable=wrong-import-position


def checkout(commit: str) -> str:
  """A temporary folder holding the tracked files of `commit` (git archive)."""
  folder = os.path.join(tempfile.mkdtemp(prefix="checkout_"), "code")
  os.makedirs(folder)
  archive = subprocess.run(["git", "archive", commit], cwd=ROOT, check=True,
                           capture_output=True).stdout
  subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
  return folder


def seconds(root: str, path: str, workdir: str) -> float:
  """Wall seconds of the main command of the checkout at `root`."""
  t = time.time()
  subprocess.run(
      [sys.executable, "-m", "taskemb_jax.main", "--config=configs/demo.py",
       f"--workdir={workdir}", f"--config.task=classification:{path}"],
      cwd=root, check=True, stdout=subprocess.DEVNULL,
      stderr=subprocess.DEVNULL)
  return time.time() - t


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--against", required=True, help="a commit of this repo")
  p.add_argument("--rounds", type=int, default=2)
  p.add_argument("--out", default=os.path.join(
      ROOT, "benchmarks", "results", "cold_command.json"))
  a = p.parse_args()
  tmp = tempfile.mkdtemp(prefix="cold_command_")
  other = checkout(a.against)
  path = service_latency.files_of_1000(tmp, 1)[0]
  roots = {a.against: other, "this": ROOT}
  times = {n: [] for n in roots}
  for r in range(a.rounds + 1):
    for n, root in roots.items():
      s = seconds(root, path, os.path.join(tmp, f"{n}{r}"))
      if r:  # Round 0 fills the compilation cache.
        times[n].append(round(s, 1))
      print(f"round {r} {n}: {s:.1f} s{'' if r else ' (not counted)'}",
            flush=True)
  med = {n: statistics.median(v) for n, v in times.items()}
  ratio = med[a.against] / med["this"]
  print(f"median: {a.against} {med[a.against]:.1f} s, this "
        f"{med['this']:.1f} s: {ratio:.2f}x")
  os.makedirs(os.path.dirname(a.out), exist_ok=True)
  with open(a.out, "w") as f:
    json.dump({"date": datetime.date.today().isoformat(),
               "machine": machine.info(), "against": a.against,
               "seconds": times, "median_s": med,
               "speedup": round(ratio, 3)}, f, indent=1)
    f.write("\n")


if __name__ == "__main__":
  main()
