r"""Training-step throughput vs. the machine's float32 matmul rate, in one run.

  .venv/bin/python benchmarks/train_step.py
  .venv/bin/python benchmarks/train_step.py --length=128 --batch=32 \
      --also_lengths=64 --steps=6 --out=benchmarks/results/train_step.json

What it measures (all in one process, so the numbers are comparable; on a
shared machine compare the *ratio*, not absolute timings across runs):

1. The float32 matmul rate: a jitted ``jnp.dot`` of two n x n float32
   matrices, n = 1024 (the reference) and 2048; GFLOP/s = 2 n^3 / time,
   median of several timed repetitions after a warm-up. It is measured
   before and after the training steps; the higher of the two 1024^3
   medians is the reference (so interference from other work on the
   machine lowers, never flatters, the ratio).
2. The training step of the project: `taskemb_jax.train.Steps(...).train`
   (the jit-compiled train_step: forward with dropout, backward, global-norm
   clipping and the AdamW update, state donated) on a MiniLM-L6-sized model
   (`PRESETS["minilm-l6"]`, random weights) with a classification head:
   seconds per step (median over --steps steps after a warm-up/compile
   step), examples/s and achieved GFLOP/s.

Analytic FLOPs of one step (the convention of Kaplan et al. / PaLM's MFU):

  forward  = 2 * P_mm * B * L                      (dense matmuls, per token)
           + n_layers * B * 2 * 2 * L^2 * H        (QK^T and PV)
           + 2 * B * (H * H + H * C)               (pooler and classifier on
                                                    [CLS] only)
  step     = 3 * forward                           (backward = 2 x forward)

with P_mm = n_layers * (4 H^2 + 2 H I) the matmul weights every token
touches (fused QKV 3 H^2, attention output H^2, FFN 2 H I); embeddings are
lookups and biases / LayerNorm / softmax / GELU / the optimizer are not
counted (they are in XLA's count, printed next to it for transparency).

  ratio = step GFLOP/s / matmul GFLOP/s (1024^3)

The XLA flags come from `taskemb_jax.sharding.configure_xla_cpu()`, the same
function the command line calls before JAX starts its backend.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--length", type=int, default=128, help="sequence length")
  p.add_argument("--batch", type=int, default=32, help="examples per step")
  p.add_argument("--also_lengths", default="64",
                 help="comma-separated extra lengths to report ('' = none)")
  p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                 help="compute dtype of the matmuls (config.dtype)")
  p.add_argument("--preset", default="minilm-l6", help="model size preset")
  p.add_argument("--num_labels", type=int, default=3)
  p.add_argument("--steps", type=int, default=6,
                 help="timed training steps per length (median reported)")
  p.add_argument("--warmup", type=int, default=2,
                 help="untimed steps after compilation")
  p.add_argument("--matmul_reps", type=int, default=15)
  p.add_argument("--breakdown", action="store_true",
                 help="also time forward only and forward+backward (no "
                 "optimizer) to split the step")
  p.add_argument("--no_xla_defaults", action="store_true",
                 help="do not apply taskemb_jax.sharding.configure_xla_cpu()")
  p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results",
                                               "train_step.json"))
  return p.parse_args(argv)


ARGS = parse_args()

if not ARGS.no_xla_defaults:
  from taskemb_jax import sharding as _sharding_for_flags  # pylint: disable=g-import-not-at-top
  if hasattr(_sharding_for_flags, "configure_xla_cpu"):
    _sharding_for_flags.configure_xla_cpu()

import jax  # pylint: disable=g-import-not-at-top
import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top
from flax import nnx  # pylint: disable=g-import-not-at-top

from configs import common  # pylint: disable=g-import-not-at-top
from taskemb_jax import heads, sharding, train  # pylint: disable=g-import-not-at-top
from taskemb_jax.model import PRESETS  # pylint: disable=g-import-not-at-top


def _median_time(fn, reps: int, warmup: int = 2) -> list[float]:
  for _ in range(warmup):
    jax.block_until_ready(fn())
  times = []
  for _ in range(reps):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t0)
  return times


def matmul_rate(n: int, reps: int) -> dict:
  k1, k2 = jax.random.split(jax.random.key(n))
  a = jax.random.normal(k1, (n, n), jnp.float32)
  b = jax.random.normal(k2, (n, n), jnp.float32)
  f = jax.jit(jnp.dot)
  times = _median_time(lambda: f(a, b), reps)
  med = statistics.median(times)
  return {"n": n, "seconds_median": med, "seconds_min": min(times),
          "gflops": 2 * n ** 3 / med / 1e9,
          "gflops_best": 2 * n ** 3 / min(times) / 1e9}


def analytic_flops(cfg, batch: int, length: int, num_labels: int) -> dict:
  h, i, n = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
  p_mm = n * (4 * h * h + 2 * h * i)
  dense = 2 * p_mm * batch * length
  attn = n * batch * 2 * 2 * length ** 2 * h
  head = 2 * batch * (h * h + h * num_labels)
  fwd = dense + attn + head
  return {"matmul_params_per_token": p_mm, "forward_dense": dense,
          "forward_attention": attn, "forward_head": head, "forward": fwd,
          "step": 3 * fwd}


def _cost_flops(compiled) -> float | None:
  try:
    cost = compiled.cost_analysis()
  except Exception:  # pylint: disable=broad-except
    return None
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else None
  if not cost:
    return None
  return float(cost.get("flops", 0.0)) or None


def make_batch(batch: int, length: int, vocab: int, num_labels: int, seed=0):
  rng = np.random.default_rng(seed)
  ids = rng.integers(1000, vocab, (batch, length), dtype=np.int32)
  ids[:, 0] = 101
  mask = np.ones((batch, length), np.int32)
  return {"input_ids": ids, "token_type_ids": np.zeros_like(ids),
          "attention_mask": mask,
          "label": rng.integers(0, num_labels, (batch,), dtype=np.int32),
          "weights": np.ones((batch,), np.float32),
          "index": np.arange(batch, dtype=np.int32)}


def bench_step(length: int, args, matmul_ref: float) -> dict:
  cfg = PRESETS[args.preset]
  config = common.get_config()
  model = heads.TaskModel(cfg, "classification", args.num_labels,
                          dtype=train.DTYPES[args.dtype], rngs=nnx.Rngs(0))
  optimizer = nnx.Optimizer(model, train.create_optimizer(config, 1000),
                            wrt=nnx.Param)
  mesh = sharding.make_mesh()
  steps = train.Steps(model, "classification", mesh, optimizer)
  state = sharding.put_replicated(nnx.state((model, optimizer)), mesh)
  batch = sharding.put_batch(
      make_batch(args.batch, length, cfg.vocab_size, args.num_labels), mesh)
  key = jax.random.key(0)

  t0 = time.perf_counter()
  compiled = steps.train.lower(state, batch, key).compile()
  compile_s = time.perf_counter() - t0
  xla_flops = _cost_flops(compiled)

  for s in range(args.warmup):
    state, m = steps.train(state, batch, jax.random.fold_in(key, s))
  jax.block_until_ready(state)
  times = []
  for s in range(args.steps):
    t0 = time.perf_counter()
    state, m = steps.train(state, batch, jax.random.fold_in(key, 100 + s))
    jax.block_until_ready((state, m))
    times.append(time.perf_counter() - t0)
  loss = float(m["loss_sum"]) / float(m["count"])
  med = statistics.median(times)
  fl = analytic_flops(cfg, args.batch, length, args.num_labels)
  gflops = fl["step"] / med / 1e9
  res = {"length": length, "batch": args.batch, "dtype": args.dtype,
         "seconds_per_step_median": med, "seconds_per_step_min": min(times),
         "seconds_per_step_all": times, "examples_per_s": args.batch / med,
         "analytic_flops": fl, "xla_cost_analysis_flops": xla_flops,
         "gflops": gflops, "ratio_to_matmul": gflops / matmul_ref,
         "compile_s": compile_s, "final_loss": loss}

  if args.breakdown:
    # The model's own arrays were donated to the step; use the latest state.
    res["breakdown"] = breakdown(nnx.graphdef(model), state[0], batch, args,
                                 med)
  return res


def breakdown(graphdef, params, batch, args, step_s: float) -> dict:
  """Forward-only and forward+backward times (no optimizer), same batch."""
  key = jax.random.key(1)

  def loss(params, b, k):
    m = nnx.merge(graphdef, params)
    logits = m(b, rngs=nnx.Rngs(dropout=k))
    total, count = heads.batch_loss("classification", logits, b)
    return total / count

  fwd = jax.jit(loss)
  grad = jax.jit(jax.grad(loss))
  t_f = statistics.median(_median_time(lambda: fwd(params, batch, key),
                                       max(args.steps, 3), 1))
  t_g = statistics.median(_median_time(lambda: grad(params, batch, key),
                                       max(args.steps, 3), 1))
  return {"forward_s": t_f, "forward_backward_s": t_g,
          "backward_s": t_g - t_f, "optimizer_and_rest_s": step_s - t_g}


def main():
  args = ARGS
  info = {"jax": jax.__version__, "backend": jax.default_backend(),
          "devices": [str(d) for d in jax.devices()],
          "cpu_count": os.cpu_count(), "machine": platform.processor() or
          platform.machine(), "date": datetime.datetime.now().isoformat(
              timespec="seconds"),
          "xla_flags": os.environ.get("XLA_FLAGS", ""),
          "argv": sys.argv[1:]}
  print(f"jax {info['jax']} on {info['backend']} ({info['cpu_count']} CPUs); "
        f"XLA_FLAGS={info['xla_flags']!r}")
  mm_before = [matmul_rate(1024, args.matmul_reps),
               matmul_rate(2048, max(args.matmul_reps // 3, 3))]
  lengths = [args.length] + [int(x) for x in args.also_lengths.split(",")
                             if x and int(x) != args.length]
  ref0 = mm_before[0]["gflops"]
  results = [bench_step(L, args, ref0) for L in lengths]
  mm_after = [matmul_rate(1024, args.matmul_reps)]
  ref = max(ref0, mm_after[0]["gflops"])
  for r in results:
    r["ratio_to_matmul"] = r["gflops"] / ref

  cfg = PRESETS[args.preset]
  print()
  print("FLOPs per step = 3 x forward; forward = 2 * P_mm * B * L "
        "+ n_layers * B * 4 * L^2 * H + 2 * B * (H^2 + H * C), "
        f"P_mm = n_layers * (4 H^2 + 2 H I) = "
        f"{results[0]['analytic_flops']['matmul_params_per_token']:,}")
  print()
  print("matmul float32 (jit jnp.dot):")
  for m in mm_before:
    print(f"  {m['n']:>4}^3  {m['seconds_median'] * 1e3:8.2f} ms  "
          f"{m['gflops']:7.1f} GFLOP/s  (best {m['gflops_best']:.1f})")
  print(f"  1024^3 again after the steps: {mm_after[0]['gflops']:.1f} GFLOP/s;"
        f" reference = {ref:.1f} GFLOP/s")
  print()
  print(f"train step ({args.preset}, classification, batch {args.batch}, "
        f"{args.dtype}, median of {args.steps}):")
  hdr = (f"  {'length':>6} {'s/step':>8} {'ex/s':>7} {'GFLOP/step':>11} "
         f"{'XLA GFLOP':>10} {'GFLOP/s':>8} {'ratio':>6}")
  print(hdr)
  for r in results:
    xf = r["xla_cost_analysis_flops"]
    print(f"  {r['length']:>6} {r['seconds_per_step_median']:8.3f} "
          f"{r['examples_per_s']:7.2f} {r['analytic_flops']['step'] / 1e9:11.1f}"
          f" {xf / 1e9 if xf else float('nan'):10.1f} {r['gflops']:8.1f} "
          f"{r['ratio_to_matmul']:6.3f}")
    if "breakdown" in r:
      b = r["breakdown"]
      print(f"         forward {b['forward_s']:.3f} s, backward "
            f"{b['backward_s']:.3f} s, optimizer+rest "
            f"{b['optimizer_and_rest_s']:.3f} s")
  target = results[0]["ratio_to_matmul"]
  print(f"\nratio at length {lengths[0]}: {target:.3f} (target >= 0.80)")

  out = {**info, "model": args.preset,
         "bert_config": {k: getattr(cfg, k) for k in (
             "hidden_size", "num_hidden_layers", "num_attention_heads",
             "intermediate_size", "vocab_size")},
         "matmul": mm_before + [dict(mm_after[0], when="after")],
         "matmul_reference_gflops": ref, "train_step": results,
         "ratio": target, "target_ratio": 0.80}
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out, "w") as f:
    json.dump(out, f, indent=1)
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
