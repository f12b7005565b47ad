r"""Train-step throughput of one process on every CPU against one pinned
process per CPU, side by side: what a sweep gains from
``CPUS_PER_WORKER=1 launch/sweep_workers.sh N ...``.

  .venv/bin/python benchmarks/cpu_workers.py [--lengths=64,128] \
      [--steps=6] [--rounds=2] [--dtype=float32] \
      [--out=benchmarks/results/cpu_workers.json]

Starts one worker process that may use every CPU of this process's affinity
(XLA:CPU's threads spread over them: the sweep's default, one worker) and
one worker per CPU, each pinned to its CPU before JAX starts. All build the
project's train step on MiniLM-L6 (`train_step_vs_torch.Ours`: the packaged
weights, classification, batch 32) and compile it; then, in --rounds alternating
rounds, the single worker runs --steps steps alone, and the pinned workers
run --steps steps each at the same time. Throughput is steps per second:
1 / median step time of the single worker against the sum over the pinned
workers of theirs. Prints a table and appends the run to --out.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks import worker_pipe  # pylint: disable=wrong-import-position


def worker(args) -> None:
  """Builds the step, then serves 'run K' (benchmarks/worker_pipe.py)."""
  if args.cpu >= 0:
    os.sched_setaffinity(0, {args.cpu})  # Before XLA sizes its thread pool.
  # pylint: disable=g-import-not-at-top,import-outside-toplevel
  from configs import common
  from taskemb_jax import sharding
  sharding.configure_jax(common.get_config())  # As the CLI, before JAX starts.
  from benchmarks import train_step_vs_torch as vs
  # pylint: enable=g-import-not-at-top,import-outside-toplevel
  ours = vs.Ours(vs.make_batch(32, args.length, 3), args.dtype, 3, warmup=1)
  worker_pipe.serve(lambda k: {"times": ours.run(k), "cpu": ours.last_cpu,
                               "loss": ours.loss}, {})


def start_worker(cpu: int, length: int, dtype: str) -> worker_pipe.Worker:
  """A worker process (`cpu` -1: not pinned)."""
  return worker_pipe.Worker(
      [sys.executable, os.path.abspath(__file__), "--worker", f"--cpu={cpu}",
       f"--length={length}", f"--dtype={dtype}"])


def run_length(length: int, args, cpus: list[int]) -> dict:
  # Each is compiled and warmed up once started.
  single = start_worker(-1, length, args.dtype)
  pinned = [start_worker(c, length, args.dtype) for c in cpus]
  try:
    one, many = [], [[] for _ in pinned]
    for _ in range(args.rounds):
      one += single.run(args.steps)
      for w in pinned:
        w.start(args.steps)
      for k, w in enumerate(pinned):
        many[k] += w.result()
  finally:
    for w in [single] + pinned:
      w.close()
  one_rate = 1 / statistics.median(one)
  pinned_rates = [1 / statistics.median(t) for t in many]
  return {"length": length, "single_step_s": statistics.median(one),
          "pinned_step_s": [statistics.median(t) for t in many],
          "single_steps_per_s": one_rate,
          "pinned_steps_per_s": sum(pinned_rates),
          "ratio": sum(pinned_rates) / one_rate}


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--lengths", default="64,128")
  p.add_argument("--steps", type=int, default=6)
  p.add_argument("--rounds", type=int, default=2)
  p.add_argument("--dtype", default="float32")
  p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results",
                                               "cpu_workers.json"))
  p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
  p.add_argument("--cpu", type=int, default=-1, help=argparse.SUPPRESS)
  p.add_argument("--length", type=int, default=64, help=argparse.SUPPRESS)
  args = p.parse_args()
  if args.worker:
    worker(args)
    return
  sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
  import machine  # pylint: disable=g-import-not-at-top,import-outside-toplevel
  cpus = sorted(os.sched_getaffinity(0))
  rows = []
  print(f"{len(cpus)} CPUs; {args.dtype}, batch 32, {args.rounds} rounds of "
        f"{args.steps} steps")
  print(f"{'length':>6}  {'one process':>22}  {'one pinned per CPU':>30}  "
        f"{'ratio':>6}")
  for length in [int(x) for x in args.lengths.split(",")]:
    r = run_length(length, args, cpus)
    rows.append(r)
    each = ", ".join(f"{s:.3f}" for s in r["pinned_step_s"])
    print(f"{length:>6}  {r['single_step_s']:>7.3f} s/step "
          f"{r['single_steps_per_s']:>5.2f}/s  "
          f"{each:>15} s/step {r['pinned_steps_per_s']:>5.2f}/s  "
          f"{r['ratio']:>5.2f}x", flush=True)
  machine.append_result(args.out, {
      "machine": machine.info(), "dtype": args.dtype, "steps": args.steps,
      "rounds": args.rounds, "cpus": cpus, "results": rows})


if __name__ == "__main__":
  main()
