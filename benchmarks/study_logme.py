r"""LogME of study v2's (target, source) pairs, source by source, in sittings.

The evaluate stage's LogME method runs every source model on every
target's training data (`taskemb_jax.logme.scores_for_matrix`), so it needs
all 45 source models at once; sittings start on machines that hold only the
sources they fine-tuned themselves. This computes the scores of the sources
whose model a workdir holds (or, with --finetune, of every source still
without scores, fine-tuning its model as the sweep does) and keeps them,
one small file per source, in results/study_v2/logme/<source>.json
({"scores": {target: score}, "seconds": {target: s}}, written after every
pair, so a killed sitting loses at most one pair):

  .venv/bin/python benchmarks/study_logme.py --workdir=work/study2
  .venv/bin/python benchmarks/study_logme.py --workdir=work/study2 \
      --finetune --shard=0/2            # (and 1/2 on the other CPU)

--merge writes them into <workdir>/logme_scores.json, the evaluate stage's
cache, so that it runs no source model (benchmarks/study.sh does this before
its evaluate stage).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from configs import study  # pylint: disable=wrong-import-position
from taskemb_jax import errors  # pylint: disable=wrong-import-position
from taskemb_jax import files  # pylint: disable=wrong-import-position
from taskemb_jax import recipe  # pylint: disable=wrong-import-position
from taskemb_jax import runs  # pylint: disable=wrong-import-position
from taskemb_jax import transfer  # pylint: disable=wrong-import-position

OUT = os.path.join(ROOT, "results", "study_v2", "logme")


def pairs(config) -> dict[str, list[str]]:
  """{source: [target, ...]}: every (target, source) pair of the study."""
  out: dict[str, list[str]] = {}
  for target, source, r in transfer.plan(config):
    if source != transfer.BASELINE and r == 0:
      out.setdefault(source, []).append(target)
  return out


def path_of(out: str, source: str) -> str:
  """The file of `source`'s scores in the folder `out`."""
  return os.path.join(out, files.safe_name(source) + ".json")


def read(out: str, source: str) -> dict[str, dict[str, float]]:
  path = path_of(out, source)
  if os.path.exists(path):
    return files.read_json(path)
  return {"scores": {}, "seconds": {}}


def score_source(config, workdir: str, out: str, source: str,
                 targets: list[str], *, finetune: bool) -> int:
  """Scores `source` on the `targets` it lacks; returns how many it scored
  (0 without a model unless `finetune`)."""
  from taskemb_jax import logme  # pylint: disable=import-outside-toplevel
  from taskemb_jax import sharding  # pylint: disable=import-outside-toplevel
  todo = [t for t in targets if t not in read(out, source)["scores"]]
  if not todo:
    return 0
  run = recipe.source_run_dir(workdir, source)
  source_config = transfer.source_config(config, source)
  if not finetune and not (os.path.isdir(run)
                           and runs.is_finished(run, source_config)):
    return 0  # No model, or one a sweep worker is still fine-tuning.
  # Under the run's lock, as the sweep: a finished run is reused.
  recipe.finetune_source(source_config, run)
  mesh = sharding.make_mesh(config.num_devices)
  for tgt in todo:
    start = time.perf_counter()
    score = logme.logme_score(run, tgt, config, mesh)
    seconds = round(time.perf_counter() - start, 2)
    print(f"LogME {source} -> {tgt}: {score:.4f} ({seconds:.1f} s)",
          flush=True)
    # Another process may score this source too: merge, under a lock.
    with files.lock(os.path.join(out, f".{files.safe_name(source)}.lock")):
      done = read(out, source)
      done["scores"][tgt], done["seconds"][tgt] = score, seconds
      files.write_json(path_of(out, source), done)
  return len(todo)


def merge(config, out: str, workdir: str) -> int:
  """Writes <workdir>/logme_scores.json from the per-source files; returns
  the number of study pairs still without a score."""
  from taskemb_jax import logme  # pylint: disable=import-outside-toplevel
  cache = {"scores": {}, "seconds": {}}
  missing = 0
  for source, targets in pairs(config).items():
    done = read(out, source)
    for tgt in targets:
      if tgt not in done["scores"]:
        missing += 1
        continue
      for k in ("scores", "seconds"):
        cache[k].setdefault(tgt, {})[source] = done[k][tgt]
  os.makedirs(workdir, exist_ok=True)
  files.write_json(os.path.join(workdir, logme.SCORES), cache)
  return missing


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--workdir", default="work/study2")
  p.add_argument("--out", default=OUT)
  p.add_argument("--sources", default="",
                 help="comma-separated (default: every source of the study)")
  p.add_argument("--finetune", action="store_true",
                 help="fine-tune the models of sources still without scores")
  p.add_argument("--shard", default="0/1",
                 help="i/n: only every n-th source from the i-th")
  p.add_argument("--merge", action="store_true",
                 help="write <workdir>/logme_scores.json from the scores")
  a = p.parse_args()
  config = study.get_config()
  os.makedirs(a.out, exist_ok=True)
  if a.merge:
    missing = merge(config, a.out, a.workdir)
    print(f"{a.workdir}/logme_scores.json: {missing} pairs without a score")
    sys.exit(1 if missing else 0)
  todo = pairs(config)
  chosen = files.comma_list(a.sources) or sorted(todo)
  unknown = [s for s in chosen if s not in todo]
  if unknown:
    sys.exit(f"study_logme.py: not sources of the study: {unknown}")
  try:  # The sweep's own parsing of 'i/n'.
    i, n = transfer._shard(a.shard)  # pylint: disable=protected-access
  except errors.ConfigError:
    sys.exit(f"study_logme.py: --shard={a.shard!r}; use 'i/n' with "
             "0 <= i < n")
  scored = sum(score_source(config, a.workdir, a.out, s, todo[s],
                            finetune=a.finetune)
               for s in chosen[i::n])
  left = {s: len([t for t in todo[s] if t not in read(a.out, s)["scores"]])
          for s in chosen}
  print(json.dumps({"scored": scored,
                    "pairs_left": sum(left.values()),
                    "sources_left": sorted(s for s in left if left[s])}))


if __name__ == "__main__":
  main()
