r"""What tracing a train step costs, per length bucket, in a new process.

  .venv/bin/python benchmarks/trace_cost.py [--against=COMMIT] \
      [--out=benchmarks/results/trace_cost.json]

Builds the packaged MiniLM with a classification head and the demo's
optimizer, then traces (`jax.jit(...).trace`, no compilation) the train
step for batches of 32 at lengths 16, 32, 48 and 64 (the buckets of
max_length 64), in that order, counting Python function calls with cProfile
and wall seconds. With --against, the same is measured in the code of that
commit (`cold_command.checkout`), in another process. Tracing
is single-threaded Python: the call counts compare across machines and
loads, the seconds only within one quiet run.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import json
import os
import pstats
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LENGTHS = (16, 32, 48, 64)


def measure() -> list[dict]:
  """Traces in this process (the checkout on sys.path[0])."""
  # pylint: disable=g-import-not-at-top
  import jax
  import numpy as np
  from flax import nnx
  from configs import demo
  from taskemb_jax import encoders, sharding, train
  from taskemb_jax import optimizer as optimizer_lib
  # pylint: enable=g-import-not-at-top
  c = demo.get_config()
  model = encoders.create_model(encoders.model_spec("minilm-l6"),
                                "classification", 2, seed=0)
  opt = nnx.Optimizer(model, optimizer_lib.create_optimizer(
      **optimizer_lib.optimizer_settings(c)), wrt=nnx.Param)
  steps = train.steps_for(model, "classification", sharding.make_mesh(-1),
                          opt)
  state = nnx.state((model, opt))
  schedule = optimizer_lib.schedule_args(100, 1e-4, 0.1)
  rows = []
  for length in LENGTHS:
    batch = {"input_ids": np.ones((32, length), np.int32),
             "token_type_ids": np.zeros((32, length), np.int32),
             "attention_mask": np.ones((32, length), np.int32),
             "label": np.zeros((32,), np.int32),
             "weights": np.ones((32,), np.float32)}
    prof = cProfile.Profile()
    t = time.perf_counter()
    prof.enable()
    steps.train.trace(state, batch, jax.random.key(0), schedule)
    prof.disable()
    rows.append({"length": length,
                 "seconds": round(time.perf_counter() - t, 3),
                 "python_calls": pstats.Stats(prof).total_calls})
  return rows


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--against", default="")
  p.add_argument("--out", default=os.path.join(
      ROOT, "benchmarks", "results", "trace_cost.json"))
  p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
  a = p.parse_args()
  if a.worker:
    sys.path.insert(0, os.getcwd())
    print(json.dumps(measure()))
    return
  roots = {"this": ROOT}
  if a.against:
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import cold_command  # pylint: disable=g-import-not-at-top
    roots = {a.against: cold_command.checkout(a.against), "this": ROOT}
  out = {}
  for name, root in roots.items():
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--worker"], cwd=root,
        check=True, capture_output=True, text=True,
        env=dict(os.environ, PYTHONPATH=root))
    out[name] = json.loads(proc.stdout.strip().splitlines()[-1])
  print(f"{'code':<10}" + "".join(f"{'L=' + str(n):>22}" for n in LENGTHS))
  for name, rows in out.items():
    print(f"{name:<10}" + "".join(
        f"{r['seconds']:>9.2f} s {r['python_calls'] / 1e6:>6.2f} M calls"
        for r in rows))
  os.makedirs(os.path.dirname(a.out), exist_ok=True)
  with open(a.out, "w") as f:
    json.dump({"date": datetime.date.today().isoformat(),
               "traces": out}, f, indent=1)
    f.write("\n")


if __name__ == "__main__":
  main()
