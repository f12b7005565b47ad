r"""What building the shipped library took: per task, the source run's
validation metric and the wall time of its fine-tuning + embedding.

  .venv/bin/python benchmarks/library_build.py --workdir=work/study2 \
      --library=library/minilm-l6 --out=results/library_minilm_l6.json

Reads the library's manifest, each task's source run
(`<workdir>/sources/<task>/metrics.json`: the metric at the best epoch on
the validation examples) and the `library: task k/n: <name>` lines of
`<workdir>/taskemb.log`: a task's time runs from its `library: task k/n`
line to its `TaskEmb of <name> ... added` line; a sitting stopped mid-task
ends the task's segment at the sitting's last log line, and a silence of
more than 2 minutes between two log lines (a working run logs its progress
every ~10 s) is not counted: a paused run, or the time between two
sittings, is not the task's cost.
Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import statistics

from taskemb_jax import files
from taskemb_jax import library as library_lib
from taskemb_jax.errors import UserError

STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d+ ")
START = re.compile(r"library: task \d+/\d+: (\S+)$")
END = re.compile(r"TaskEmb of (\S+) \(.*\) added to ")
GAP_S = 120


def task_seconds(log: str) -> dict[str, float]:
  """Seconds each task was worked on, summed over its sittings."""
  out: dict[str, float] = {}
  current, since, last = None, None, None

  def add(until):
    if current is not None:
      out[current] = out.get(current, 0.0) + (until - since).total_seconds()

  with open(log) as f:
    for line in f:
      m = STAMP.match(line)
      if not m:
        continue
      t = datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")
      if last is not None and (t - last).total_seconds() > GAP_S:
        add(last)  # Paused, or stopped until a later sitting: not counted.
        since = t
      text = line.rstrip()
      if (s := START.search(text)):
        add(last if last is not None else t)
        current, since = s.group(1), t
      elif (e := END.search(text)) and e.group(1) == current:
        add(t)
        current = None
      last = t
  if last is not None:
    add(last)  # A task the log leaves unfinished.
  return out


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--workdir", default="work/study2")
  p.add_argument("--library", default="library/minilm-l6")
  p.add_argument("--out", default="results/library_minilm_l6.json")
  a = p.parse_args()
  manifest = library_lib.open_library(a.library)
  seconds = task_seconds(os.path.join(a.workdir, "taskemb.log"))
  rows = []
  for name, e in sorted(manifest["tasks"].items(),
                        key=lambda kv: (kv[1]["family"], kv[0])):
    path = os.path.join(a.workdir, "sources", name, "metrics.json")
    best = files.read_json(path)["best"] if os.path.exists(path) else {}
    rows.append({"task": name, "class": e["family"], "metric": e["metric"],
                 "validation": best.get(e["metric"]),
                 "embedded_on": e["num_examples"],
                 "seconds": seconds.get(name)})
  print(f"{'task':<20} {'class':<15} {'metric':<9} {'valid.':>8} "
        f"{'embedded':>8} {'seconds':>8}")
  for r in rows:
    v = "-" if r["validation"] is None else f"{r['validation']:.3f}"
    s = "-" if r["seconds"] is None else f"{r['seconds']:.0f}"
    print(f"{r['task']:<20} {r['class']:<15} {r['metric']:<9} {v:>8} "
          f"{r['embedded_on']:>8} {s:>8}")
  timed = [r["seconds"] for r in rows if r["seconds"] is not None]
  by_class = {}
  for r in rows:
    if r["seconds"] is not None:
      by_class.setdefault(r["class"], []).append(r["seconds"])
  summary = {"tasks": len(rows), "timed": len(timed),
             "total_s": sum(timed), "cpus": os.cpu_count(),
             "median_s_by_class": {k: statistics.median(v)
                                   for k, v in by_class.items()}}
  print(json.dumps(summary))
  os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
  files.write_json(a.out, {"summary": summary, "tasks": rows})
  print(f"wrote {a.out}")


if __name__ == "__main__":
  try:
    main()
  except (UserError, OSError) as e:  # One line: a missing library or log.
    raise SystemExit(f"error: {e}") from None
