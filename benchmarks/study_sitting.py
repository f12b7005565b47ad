r"""Which sources study v2 should run in a sitting of a given length.

  .venv/bin/python benchmarks/study_sitting.py [--minutes=120] [--workers=2]

A sitting starts on a machine that may hold none of the source models of
earlier sittings (only the target runs' result files are committed, in
results/study_v2/runs/). Its cost is then the source fine-tuning runs it
needs plus its target runs, so a sitting should finish every remaining run
*of the sources it fine-tunes*. This lists the unfinished runs per source
(the baselines belong to no source and always run), estimates each source's
cost in worker-seconds (its library build time from
results/library_minilm_l6.json, plus its unfinished target runs at the
per-class times the pinned sweep measured, or at the median `seconds` that
finished runs recorded where a class has at least 3 of them, plus its
LogME pairs still without a score), and picks the sources with the most runs per second
until the estimate fills --minutes of --workers workers. The last line it
prints is the pick, comma-separated, for `STUDY_SOURCES=...
bash benchmarks/study.sh`.

  .venv/bin/python benchmarks/study_sitting.py --check_sources=work/study2

compares instead the validation metric of every finished source run in a
sweep's workdir with that of the library build (a source fine-tuned anew
should reproduce the library's).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import study_logme  # pylint: disable=wrong-import-position
from configs import study  # pylint: disable=wrong-import-position
from taskemb_jax import files  # pylint: disable=wrong-import-position
from taskemb_jax import tasks  # pylint: disable=wrong-import-position
from taskemb_jax import transfer  # pylint: disable=wrong-import-position

# Worker-seconds of one target run by the target's class, one worker pinned
# to one CPU (restart 0 of the sweep, two pinned workers: ~23 s, ~25 s and
# ~64 s of wall time per run for the pair).
TARGET_RUN_S = {"classification": 46.0, "tagging": 50.0, "qa": 128.0}
# A source's fine-tuning on one CPU, relative to its library build (two
# CPUs, fine-tuning and embedding; results/library_minilm_l6.json).
SOURCE_VS_LIBRARY_BUILD = 0.8
# LogME of one source over the 12 targets (benchmarks/study_logme.py, which
# a sitting runs with the sources it fine-tuned): 338 s beside two pinned
# sweep workers on the sitting of 2026-12-02 (the sum of the per-target
# means of results/study_v2/logme/), i.e. per pair:
LOGME_PAIR_S = 338.0 / 12


def unfinished(config, runs: str) -> list[tuple[str, str, int]]:
  """The (target, source, restart) runs of the plan without a result."""
  out = []
  for target, source, r in transfer.plan(config):
    settings = transfer.target_run(config, runs, target, source, r)[1]
    if transfer.finished_result(transfer.target_run_dir(
        runs, target, source, r), settings, overwrite=False) is None:
      out.append((target, source, r))
  return out


def measured_run_s(runs: str, at_least: int = 3) -> dict[str, float]:
  """Median `seconds` of the finished target runs under `runs` that record
  it (result.json), per target class with at least `at_least` of them."""
  seen = collections.defaultdict(list)
  for folder, _, names in os.walk(runs):
    if transfer.RESULT not in names:
      continue
    res = files.read_json(os.path.join(folder, transfer.RESULT))
    if "seconds" in res:
      seen[tasks.get_task(res["task"]).family].append(float(res["seconds"]))
  return {c: statistics.median(s) for c, s in seen.items()
          if len(s) >= at_least}


def pick(runs: dict[str, int], cost: dict[str, float],
         budget: float) -> list[str]:
  """Sources by runs per second, each taken if it still fits `budget`."""
  order = sorted(runs, key=lambda s: (-runs[s] / cost[s], s))
  chosen, spent = [], 0.0
  for s in order:
    if spent + cost[s] <= budget:
      chosen.append(s)
      spent += cost[s]
  return chosen


def check_sources(workdir: str, library_build: dict[str, float]) -> None:
  """Each finished source run's best validation metric against the
  library build's."""
  print(f"{'source':22s} {'metric':>10s} {'this run':>10s} {'library':>10s}")
  for name in sorted(os.listdir(os.path.join(workdir, "sources"))):
    path = os.path.join(workdir, "sources", name, "metrics.json")
    if not os.path.exists(path):
      continue
    with open(path) as f:
      m = json.load(f)
    if "final" not in m:  # Still training.
      continue
    ours, lib = m["best"][m["metric"]], library_build.get(m["task"])
    diff = "" if lib is None else f"{ours - lib:+.1e}"
    print(f"{m['task']:22s} {m['metric']:>10s} {ours:10.4f} "
          f"{'' if lib is None else f'{lib:10.4f}'} {diff}")


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--runs", default=os.path.join(ROOT, "results", "study_v2"))
  p.add_argument("--minutes", type=float, default=120)
  p.add_argument("--workers", type=int, default=2)
  # The costs above were measured on an earlier sitting's CPU; a sitting of
  # 2026-12-02 (2-core Xeon with AMX) ran a 55-minute pick in 31 minutes.
  p.add_argument("--speed", type=float, default=1.0,
                 help="this machine's speed relative to the costs' (the "
                      "estimates are divided by it)")
  p.add_argument("--check_sources", default="", metavar="WORKDIR")
  a = p.parse_args()
  if a.check_sources:
    with open(os.path.join(ROOT, "results", "library_minilm_l6.json")) as f:
      check_sources(a.check_sources, {t["task"]: t["validation"]
                                      for t in json.load(f)["tasks"]})
    return
  config = study.get_config()
  todo = unfinished(config, a.runs)
  with open(os.path.join(ROOT, "results", "library_minilm_l6.json")) as f:
    build_s = {t["task"]: t["seconds"] for t in json.load(f)["tasks"]}
  by_source = collections.defaultdict(list)
  for target, source, _ in todo:
    by_source[source].append(target)
  per_class = {**TARGET_RUN_S, **measured_run_s(a.runs)}
  run_s = lambda t: per_class[tasks.get_task(t).family]
  baseline_s = sum(run_s(t) for t in by_source.pop(transfer.BASELINE,
                                                   [])) / a.speed
  # LogME still owed by a source: its pairs without a score.
  logme_pairs = study_logme.pairs(config)
  owed = {s: LOGME_PAIR_S * len([t for t in ts if t not in study_logme.read(
      os.path.join(a.runs, "logme"), s)["scores"]])
          for s, ts in logme_pairs.items()}
  cost = {s: (SOURCE_VS_LIBRARY_BUILD * build_s[s] + sum(map(run_s, ts))
              + owed[s]) / a.speed for s, ts in by_source.items()}
  chosen = pick({s: len(ts) for s, ts in by_source.items()}, cost,
                a.minutes * 60 * a.workers - baseline_s)
  print(f"{len(todo)} runs unfinished: {len(by_source)} sources, "
        f"baselines {baseline_s / 60:.0f} worker-min")
  print(f"{'source':22s} {'runs':>4s} {'worker-min':>10s}")
  for s in sorted(by_source, key=lambda s: -len(by_source[s]) / cost[s]):
    print(f"{s:22s} {len(by_source[s]):4d} {cost[s] / 60:10.1f}"
          f"{'  *' if s in chosen else ''}")
  spent = sum(cost[s] for s in chosen) + baseline_s
  # Sources with every run finished but no LogME scores: the final sitting
  # fine-tunes and scores them (benchmarks/study_logme.py --finetune).
  logme_only = [s for s in logme_pairs if s not in by_source and owed[s]]
  if logme_only:
    logme_s = sum(SOURCE_VS_LIBRARY_BUILD * build_s[s] + owed[s]
                  for s in logme_only) / a.speed
    print(f"LogME only (no runs left): {len(logme_only)} sources, "
          f"{logme_s / 60:.0f} worker-min")
  print(f"all: {(sum(cost.values()) + baseline_s) / 3600 / a.workers:.1f} h "
        f"of {a.workers} workers; the pick (*): "
        f"{spent / 60 / a.workers:.0f} min, "
        f"{sum(len(by_source[s]) for s in chosen)} runs")
  print(",".join(chosen))


if __name__ == "__main__":
  main()
