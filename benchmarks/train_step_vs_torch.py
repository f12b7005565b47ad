r"""The project's train step against PyTorch eager, interleaved in one run.

  .venv/bin/python benchmarks/train_step_vs_torch.py
  .venv/bin/python benchmarks/train_step_vs_torch.py --lengths=128,64 \
      --batch=32 --rounds=6 --steps=2 --dtypes=float32,bfloat16 \
      --torch-python=/work/torchvenv/bin/python \
      --out=benchmarks/results/train_step_vs_torch.json

Both sides train the same model on the same batch: the packaged
all-MiniLM-L6-v2 encoder (`pretrained.resolve_model_dir("minilm-l6")`) with
a 3-class classification head, batch 32 of random full-length token ids,
dropout on (0.1, as in the checkpoint), AdamW (lr 2e-5, weight decay 0.01
not on biases and LayerNorm, linear warm-up/decay) with global-norm clipping
at 1.0, one optimizer step per batch:

* ours: `train.Steps(...).train` (the jit-compiled train step, state
  donated; the batch is put on the device every step, as the training loop
  does), in this process, with the compute dtype of --dtypes, after
  `sharding.configure_jax` as the command line does;
* PyTorch: Hugging Face `BertForSequenceClassification` in eager mode,
  float32, with transformers' default attention (SDPA), in a subprocess of
  the interpreter --torch-python (default $TORCH_PYTHON or
  /work/torchvenv/bin/python), running benchmarks/torch_step_worker.py. The
  project never depends on torch: install it in a separate venv,

    python3 -m venv /work/torchvenv
    /work/torchvenv/bin/pip install torch==2.13.0 transformers safetensors numpy

  The worker is told over stdin to run K steps and answers with their times
  on stdout, so that the two sides take turns.

Threads: PyTorch runs with torch.set_num_threads(--threads) (default: the
CPUs this process may use, 2 on the project's machines); XLA's CPU client
sizes its thread pool to the same CPUs (it has no separate setting).

With bfloat16 in --dtypes, PyTorch also runs under torch.autocast('cpu',
bfloat16) (its mixed precision: bfloat16 matmuls, float32 weights and
optimizer), and ours_bfloat16 is compared with that too (the like-for-like
pair); --no-torch_autocast leaves it out.

Timing: after compilation and --warmup untimed steps on each side, --rounds
rounds; in each round every contestant runs --steps steps in turn (the order
alternates from round to round), so that load from other work on a shared
machine hits all of them alike. Reported per length: the median seconds per
step of each contestant, examples/s, its CPU seconds per step, and the
speed-up of ours over PyTorch (PyTorch's median time / ours), with the
spread of the per-round speed-ups (each round's median over the same
round's median), the ratio of the fastest steps and of the CPU seconds,
and the speed-up over the quiet rounds alone (other processes took < 10%
of the CPUs). Each round also times the jitted 1024^3 float32 matmul
(`benchmarks.rates.Matmul`, best of 5): every contestant's GFLOP/s
(the step's FLOPs counted analytically, 3 x forward) is reported as a
fraction of that rate, and so is the rate a 1.5x speed-up over PyTorch's
float32 step would need. The share of CPU time other processes took is stored for the
run and every round: above ~10% the machine was busy, and PyTorch's OpenMP
threads then lose far more than XLA's (they spin at their barriers), so
only the quiet rounds make a fair comparison.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# pylint: disable=wrong-import-position
import jax
import numpy as np
from flax import nnx

from benchmarks import machine
from benchmarks import rates
from benchmarks import worker_pipe
from configs import common
from taskemb_jax import encoders, files, heads, pretrained, sharding
# pylint: enable=wrong-import-position

WORKER = os.path.join(ROOT, "benchmarks", "torch_step_worker.py")


def parse_args(argv=None):
  p = argparse.ArgumentParser(
      description=__doc__.split("\n")[0],
      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  p.add_argument("--lengths", default="128,64", help="sequence lengths")
  p.add_argument("--batch", type=int, default=32)
  p.add_argument("--num_labels", type=int, default=3)
  p.add_argument("--dtypes", default="float32",
                 help="compute dtypes of ours (float32, bfloat16); PyTorch "
                      "always runs float32")
  p.add_argument("--torch_autocast", default=True,
                 action=argparse.BooleanOptionalAction,
                 help="also run PyTorch under bfloat16 autocast when ours "
                      "runs bfloat16 (the like-for-like comparison)")
  p.add_argument("--rounds", type=int, default=6)
  p.add_argument("--steps", type=int, default=2,
                 help="steps of each contestant per round")
  p.add_argument("--warmup", type=int, default=2)
  p.add_argument("--threads", type=int,
                 default=(len(os.sched_getaffinity(0))
                          if hasattr(os, "sched_getaffinity")
                          else os.cpu_count()),
                 help="torch.set_num_threads")
  p.add_argument("--torch-python", dest="torch_python",
                 default=os.environ.get("TORCH_PYTHON",
                                        "/work/torchvenv/bin/python"))
  p.add_argument("--wait_quiet", type=float, default=0.0,
                 help="before each length, wait up to this many seconds "
                      "for other processes to use < 10%% of the CPUs")
  p.add_argument("--out", default=os.path.join(
      ROOT, "benchmarks", "results", "train_step_vs_torch.json"))
  return p.parse_args(argv)


def make_batch(batch: int, length: int, num_labels: int, seed: int = 0):
  """Full-length random token ids (as benchmarks/train_step.py)."""
  rng = np.random.default_rng(seed)
  ids = rng.integers(1000, 30000, (batch, length), dtype=np.int32)
  ids[:, 0] = 101  # [CLS]
  return {"input_ids": ids, "token_type_ids": np.zeros_like(ids),
          "attention_mask": np.ones((batch, length), np.int32),
          "label": rng.integers(0, num_labels, (batch,), dtype=np.int32),
          "weights": np.ones((batch,), np.float32)}


class Ours:
  """The project's jitted train step on MiniLM, run K steps at a time."""

  def __init__(self, batch: dict, dtype: str, num_labels: int, warmup: int):
    folder = pretrained.resolve_model_dir("minilm-l6")
    model = heads.TaskModel(pretrained.read_config(folder), "classification",
                            num_labels, dtype=encoders.DTYPES[dtype],
                            rngs=nnx.Rngs(0))
    missing = pretrained.load_encoder(model, folder)
    assert not missing, missing
    self.steps, self.state, self.mesh, self.schedule = rates.train_steps(
        model)
    self.batch = batch
    self.key = jax.random.key(0)
    self.i = 0
    t = time.perf_counter()
    self.run(1)
    self.compile_s = time.perf_counter() - t
    self.run(warmup)
    self.loss = None

  def run(self, k: int) -> list[float]:
    """Wall seconds of k steps (their CPU seconds go to `last_cpu`)."""
    times, self.last_cpu = [], []
    for _ in range(k):
      t, c = time.perf_counter(), time.process_time()
      self.state, m = self.steps.train(
          self.state, sharding.put_batch(self.batch, self.mesh),
          jax.random.fold_in(self.key, self.i), self.schedule)
      jax.block_until_ready(m)
      times.append(time.perf_counter() - t)
      self.last_cpu.append(time.process_time() - c)
      self.i += 1
    self.loss = float(m["loss_sum"]) / float(m["count"])
    return times


def torch_worker(python: str, batch_file: str, *, num_labels: int,
                 threads: int, warmup: int,
                 autocast: str = "") -> worker_pipe.Worker:
  """benchmarks/torch_step_worker.py in a subprocess of interpreter
  `python` (--torch-python)."""
  if not os.path.exists(python):
    sys.exit(f"error: no PyTorch interpreter at {python} (see the "
             "docstring: install torch into its own venv, or pass "
             "--torch-python)")
  return worker_pipe.Worker(
      [python, WORKER, "--model_dir",
       pretrained.resolve_model_dir("minilm-l6"),
       "--batch_file", batch_file, "--num_labels", str(num_labels),
       "--threads", str(threads), "--warmup", str(warmup),
       "--autocast", autocast], what="the PyTorch worker")


def interleave(contestants: dict, rounds: int, steps: int,
               pids: tuple[int, ...] = (), matmul=None
               ) -> tuple[dict, dict, list, list]:
  """Wall and CPU seconds of every step, {name: [[per step] per round]},
  the share of the CPUs other processes took in each round (None where
  unknown; `pids`: the contestants' worker processes) and the GFLOP/s of
  `matmul` (a `rates.Matmul`, best of 5) in each round.

  In every round each contestant runs `steps` steps in turn; the order
  alternates from round to round.
  """
  times, cpu = {n: [] for n in contestants}, {n: [] for n in contestants}
  names, shares, rates = list(contestants), [], []
  for r in range(rounds):
    share = machine.CpuShare(pids=pids)
    if matmul is not None:
      rates.append(matmul.gflops(min(matmul.times(5))))
    for n in (names if r % 2 == 0 else names[::-1]):
      times[n].append(contestants[n].run(steps))
      cpu[n].append(contestants[n].last_cpu)
    shares.append(share.others())
  return times, cpu, shares, rates


def summarize(times: dict, cpu: dict, batch: int) -> dict:
  """Per contestant: median (and fastest) seconds per step, examples/s and
  the median CPU seconds per step (all threads of its process; less
  sensitive to other load than wall time, but blind to how well the step
  keeps the CPUs busy)."""
  out = {}
  for n, ts in times.items():
    flat = [t for rnd in ts for t in rnd]
    med = statistics.median(flat)
    out[n] = {"seconds_per_step_median": med,
              "seconds_per_step_min": min(flat), "seconds_all": ts,
              "examples_per_s": batch / med,
              "cpu_seconds_per_step_median": statistics.median(
                  [t for rnd in cpu[n] for t in rnd])}
  return out


def speedup(times: dict, rows: dict, ours: str, ref: str,
            shares: list | None = None, quiet: float = 0.1) -> dict:
  """How much faster `ours` is than `ref`: the ratio of the medians (the
  figure reported), the spread of the per-round ratios (each round's median
  over the same round's), the ratio of the fastest steps and of the CPU
  seconds, and the ratio of the medians over the quiet rounds only (other
  processes took less than `quiet` of the CPUs; None if there were none)."""
  per_round = [statistics.median(a) / statistics.median(b)
               for a, b in zip(times[ref], times[ours])]
  r, o = rows[ref], rows[ours]
  calm = [i for i, sh in enumerate(shares or []) if sh is not None
          and sh < quiet]
  quiet_ratio = (statistics.median([t for i in calm for t in times[ref][i]])
                 / statistics.median([t for i in calm for t in times[ours][i]])
                 if calm else None)
  return {"ours": ours, "reference": ref,
          "speedup": r["seconds_per_step_median"] / o["seconds_per_step_median"],
          "per_round": per_round, "round_min": min(per_round),
          "round_max": max(per_round),
          "speedup_fastest_steps": (r["seconds_per_step_min"]
                                    / o["seconds_per_step_min"]),
          "cpu_speedup": (r["cpu_seconds_per_step_median"]
                          / o["cpu_seconds_per_step_median"]),
          "speedup_quiet_rounds": quiet_ratio, "quiet_rounds": len(calm)}


def bench_length(length: int, args, dtypes: list[str], tmp: str) -> dict:
  batch = make_batch(args.batch, length, args.num_labels)
  batch_file = os.path.join(tmp, f"batch{length}.npz")
  np.savez(batch_file, **batch)
  opts = dict(num_labels=args.num_labels, threads=args.threads,
              warmup=args.warmup)
  contestants = {"torch": torch_worker(args.torch_python, batch_file, **opts)}
  torch_info = contestants["torch"].info
  try:
    if "bfloat16" in dtypes and args.torch_autocast:
      contestants["torch_bfloat16_autocast"] = torch_worker(
          args.torch_python, batch_file, autocast="bfloat16", **opts)
    for dt in dtypes:
      contestants[f"ours_{dt}"] = Ours(batch, dt, args.num_labels, args.warmup)
    pids = tuple(c.proc.pid for c in contestants.values()
                 if hasattr(c, "proc"))
    if args.wait_quiet:
      machine.wait_until_quiet(args.wait_quiet)
    share = machine.CpuShare(pids=pids)
    times, cpu, shares, mm_rates = interleave(
        contestants, args.rounds, args.steps, pids,
        matmul=rates.Matmul(1024))
    others = share.others()
  finally:
    for c in contestants.values():
      if hasattr(c, "close"):
        c.close()
  rows = summarize(times, cpu, args.batch)
  # The step's FLOPs against the matmul rate of the same rounds.
  cfg = pretrained.read_config(pretrained.resolve_model_dir("minilm-l6"))
  step_flops = rates.analytic_flops(cfg, args.batch, length,
                                               args.num_labels)["step"]
  mm = statistics.median(mm_rates)
  for row in rows.values():
    row["gflops"] = step_flops / row["seconds_per_step_median"] / 1e9
    row["fraction_of_matmul"] = row["gflops"] / mm
  needed = 1.5 * rows["torch"]["gflops"]
  for n, c in contestants.items():
    rows[n]["final_loss"] = c.loss
    if n.startswith("ours"):
      rows[n]["compile_and_first_step_s"] = c.compile_s
  pairs = [(f"ours_{dt}", "torch") for dt in dtypes]
  if "torch_bfloat16_autocast" in rows:
    pairs.append(("ours_bfloat16", "torch_bfloat16_autocast"))
  return {"length": length, "batch": args.batch, "contestants": rows,
          "step_flops": step_flops, "matmul_gflops_per_round": mm_rates,
          "matmul_gflops": mm,
          "gflops_for_1.5x_torch": needed,
          "fraction_of_matmul_for_1.5x_torch": needed / mm,
          "speedups": [speedup(times, rows, o, r, shares) for o, r in pairs],
          "other_processes_cpu_share_per_round": shares,
          "other_processes_cpu_share": others, "torch_worker": torch_info,
          "load_average_end": machine.load_average()}


def print_table(results: list[dict], info: dict, args) -> None:
  print(f"\n{info['cpu_model']} ({info['cpu_affinity']} CPUs; "
        f"{', '.join(info['cpu_flags'])}), jax {info['jax']}, "
        f"torch {results[0]['torch_worker']['torch']} "
        f"({results[0]['torch_worker']['threads']} threads)")
  print(f"MiniLM-L6 classification train step, batch {args.batch}, "
        f"{args.rounds} interleaved rounds x {args.steps} steps\n")
  print(f"{'length':>6}  {'contestant':<26}{'s/step':>8}{'ex/s':>8}"
        f"{'cpu-s':>8}{'GFLOP/s':>9}{'of matmul':>11}")
  for r in results:
    for n, c in r["contestants"].items():
      print(f"{r['length']:>6}  {n:<26}{c['seconds_per_step_median']:>8.3f}"
            f"{c['examples_per_s']:>8.1f}{c['cpu_seconds_per_step_median']:>8.2f}"
            f"{c['gflops']:>9.0f}{c['fraction_of_matmul']:>11.2f}")
    print(f"{'':>6}  1024^3 matmul: {r['matmul_gflops']:.0f} GFLOP/s; 1.5x "
          f"PyTorch's float32 step needs {r['gflops_for_1.5x_torch']:.0f} "
          f"GFLOP/s = {r['fraction_of_matmul_for_1.5x_torch']:.2f} of it")
    share = r["other_processes_cpu_share"]
    if share is not None:
      print(f"{'':>6}  other processes used {share:.0%} of the CPUs")
  print(f"\n{'length':>6}  {'speed-up of':<16}{'over':<26}{'median':>8}"
        f"{'rounds':>13}{'fastest':>9}{'cpu':>7}{'quiet rounds':>16}")
  for r in results:
    for sp in r["speedups"]:
      q = (f"{sp['speedup_quiet_rounds']:>9.2f}x ({sp['quiet_rounds']})"
           if sp["quiet_rounds"] else f"{'-':>10} (0)")
      print(f"{r['length']:>6}  {sp['ours']:<16}{sp['reference']:<26}"
            f"{sp['speedup']:>7.2f}x{sp['round_min']:>7.2f}-"
            f"{sp['round_max']:<5.2f}{sp['speedup_fastest_steps']:>8.2f}x"
            f"{sp['cpu_speedup']:>6.2f}x{q}")


def main(argv=None):
  args = parse_args(argv)
  dtypes = args.dtypes.split(",")
  sharding.configure_jax(common.get_config())  # As the CLI, before JAX starts.
  info = machine.info()
  print(f"jax {info['jax']}, {info['cpu_model']}, load {info['load_average_start']}")
  with tempfile.TemporaryDirectory() as tmp:
    results = [bench_length(int(n), args, dtypes, tmp)
               for n in args.lengths.split(",")]
  print_table(results, info, args)
  out = {**info, "argv": sys.argv[1:], "model": "all-MiniLM-L6-v2 (packaged)",
         "torch_threads": args.threads,
         "xla_threads": "XLA's CPU client pool, one thread per CPU "
                        f"({info['cpu_affinity']})",
         "results": results}
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  files.write_json(args.out, out)
  print(f"wrote {args.out}")
  return out


if __name__ == "__main__":
  main()
