r"""Training-step throughput vs. the machine's float32 matmul rate, in one run.

  .venv/bin/python benchmarks/train_step.py
  .venv/bin/python benchmarks/train_step.py --length=128 --batch=32 \
      --also_lengths=64 --steps=6 --out=benchmarks/results/train_step.json

What it measures, all in one process (on a shared machine compare the
*ratio*, never absolute timings across runs):

1. The float32 matmul rate: a jitted ``jnp.dot`` of two n x n float32
   matrices, n = 1024 (the reference) and 2048; GFLOP/s = 2 n^3 / time,
   median of --matmul_reps timed repetitions after a warm-up. It is
   measured before and after the training steps; the reference for the
   ratio is the higher of the two 1024^3 medians (so a slow moment lowers,
   never flatters, the ratio).
2. The training step of the project: `taskemb_jax.train.Steps(...).train`
   (the jit-compiled train_step: forward with dropout, backward, global-norm
   clipping and the AdamW update, state donated) on a MiniLM-L6-sized model
   (`PRESETS["minilm-l6"]`, random weights) with a classification head,
   float32: seconds per step (median of --steps steps after compilation and
   --warmup untimed steps), examples/s and achieved GFLOP/s. Right before
   each timed step the 1024^3 matmul is also timed (best of
   --interleave_reps); these interleaved rates are reported as a
   diagnostic only: right after a step they are often lower than the
   steady rate even on an idle machine, so they would flatter the ratio.
   The share of CPU time other processes took during the run is printed
   and stored: above ~10% the numbers are not representative.
3. With --breakdown (on by default): the median time of the forward pass
   alone and of forward + backward without the optimizer (same batch, same
   dropout), so that step = forward + backward + optimizer-and-rest.

Analytic FLOPs of one step (the usual convention, as in Kaplan et al. 2020):

  forward  = 2 * P_mm * B * L                      dense matmuls
           + n_layers * B * 2 * 2 * L^2 * H        QK^T and PV
           + 2 * B * (H * H + H * C)               pooler and classifier
                                                   ([CLS] only)
  step     = 3 * forward                           (backward = 2 x forward)

with P_mm = n_layers * (4 H^2 + 2 H I), the matmul weights every token
touches (fused QKV 3 H^2, attention output H^2, feed-forward 2 H I).
Embedding look-ups, biases, LayerNorm, softmax, GELU, dropout and the
optimizer are not counted; XLA's own count of the compiled step
(`compiled.cost_analysis()['flops']`, which counts them) is printed next
to it.

  ratio = step GFLOP/s / matmul GFLOP/s (1024^3, float32)

XLA flags: the project sets none (see the notes in taskemb_jax/model.py
and the report of this benchmark); --xla_flags lets you try some, it is
put into XLA_FLAGS before JAX starts.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def parse_args(argv=None):
  p = argparse.ArgumentParser(
      description=__doc__.split("\n")[0],
      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
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
  p.add_argument("--matmul_reps", type=int, default=15,
                 help="timed repetitions of the 1024^3 matmul")
  p.add_argument("--interleave_reps", type=int, default=3,
                 help="1024^3 matmuls timed before each timed step")
  p.add_argument("--breakdown", default=True,
                 action=argparse.BooleanOptionalAction,
                 help="also time forward only and forward + backward")
  p.add_argument("--xla_flags", default=None,
                 help="XLA_FLAGS for this run (default: the environment's)")
  p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results",
                                               "train_step.json"))
  return p.parse_args(argv)


ARGS = parse_args()
if ARGS.xla_flags is not None:
  os.environ["XLA_FLAGS"] = ARGS.xla_flags

# pylint: disable=g-import-not-at-top,wrong-import-position
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from configs import common
from taskemb_jax import encoders, heads, sharding
from taskemb_jax.model import PRESETS
from benchmarks import machine
from benchmarks.rates import (FLOPS_FORMULA, Matmul, analytic_flops,
                              train_steps, wall_times)
# pylint: enable=g-import-not-at-top,wrong-import-position




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
  """A full-length classification batch of random token ids."""
  rng = np.random.default_rng(seed)
  ids = rng.integers(1000, vocab, (batch, length), dtype=np.int32)
  ids[:, 0] = 101  # [CLS]
  return {"input_ids": ids, "token_type_ids": np.zeros_like(ids),
          "attention_mask": np.ones((batch, length), np.int32),
          "label": rng.integers(0, num_labels, (batch,), dtype=np.int32),
          "weights": np.ones((batch,), np.float32)}


def _timed(fns, mm: Matmul, reps: int, interleave: int):
  """Per rep: the 1024^3 matmul (best of `interleave`), then each of `fns`.

  Returns ([seconds of fns[0]], [seconds of fns[1]], ...), [matmul GFLOP/s].
  Interleaving makes load from other processes hit all of them alike.
  """
  times, rates = [[] for _ in fns], []
  for _ in range(reps):
    rates.append(mm.gflops(min(mm.times(interleave))))
    for fn, out in zip(fns, times):
      t0 = time.perf_counter()
      jax.block_until_ready(fn())
      out.append(time.perf_counter() - t0)
  return times, rates


def bench_step(length: int, args, mm: Matmul) -> dict:
  cfg = PRESETS[args.preset]
  model = heads.TaskModel(cfg, "classification", args.num_labels,
                          dtype=encoders.DTYPES[args.dtype], rngs=nnx.Rngs(0))
  graphdef = nnx.graphdef(model)
  steps, state, mesh, schedule = train_steps(model)
  batch = sharding.put_batch(
      make_batch(args.batch, length, cfg.vocab_size, args.num_labels), mesh)
  key = jax.random.key(0)

  t0 = time.perf_counter()
  compiled = steps.train.lower(state, batch, key, schedule).compile()
  compile_s = time.perf_counter() - t0
  xla_flops = _cost_flops(compiled)

  for s in range(args.warmup):
    state, m = steps.train(state, batch, jax.random.fold_in(key, s),
                           schedule)
  jax.block_until_ready(state)
  box = {"state": state, "i": 0, "m": m}

  def one_step():
    box["i"] += 1
    box["state"], box["m"] = steps.train(
        box["state"], batch, jax.random.fold_in(key, 100 + box["i"]),
        schedule)
    return box["state"], box["m"]

  fns = [one_step]
  if args.breakdown:
    # Forward alone and forward + backward without the optimizer, on the
    # model's latest parameters (its own arrays were donated to the step).
    def loss(params, b, k):
      m = nnx.merge(graphdef, params)
      logits = m(b, rngs=nnx.Rngs(dropout=k))
      total, count = heads.batch_loss("classification", logits, b)
      return total / count

    fwd, grad = jax.jit(loss), jax.jit(jax.grad(loss))
    k1 = jax.random.key(1)
    jax.block_until_ready(fwd(box["state"][0], batch, k1))
    jax.block_until_ready(grad(box["state"][0], batch, k1))
    fns += [lambda: fwd(box["state"][0], batch, k1),
            lambda: grad(box["state"][0], batch, k1)]

  times, rates = _timed(fns, mm, args.steps, args.interleave_reps)
  step_t, m = times[0], box["m"]
  med = statistics.median(step_t)
  mm_med = statistics.median(rates)
  fl = analytic_flops(cfg, args.batch, length, args.num_labels)
  gflops = fl["step"] / med / 1e9
  res = {"length": length, "batch": args.batch, "dtype": args.dtype,
         "seconds_per_step_median": med, "seconds_per_step_min": min(step_t),
         "seconds_per_step_all": step_t, "examples_per_s": args.batch / med,
         "analytic_flops": fl, "xla_cost_analysis_flops": xla_flops,
         "gflops": gflops, "interleaved_matmul_gflops_median": mm_med,
         "interleaved_matmul_gflops_all": rates,
         "best_gflops": fl["step"] / min(step_t) / 1e9,
         "compile_s": compile_s,
         "final_loss": float(m["loss_sum"]) / float(m["count"])}
  if args.breakdown:
    f, g = statistics.median(times[1]), statistics.median(times[2])
    res["breakdown"] = {
        "forward_s": f, "forward_backward_s": g, "backward_s": g - f,
        "optimizer_and_rest_s": med - g,
        "note": "medians, timed in turn with the step; forward and "
                "forward+backward are separately jitted (no optimizer)"}
  return res


def bench_shapes(cfg, batch: int, length: int, reps: int = 7) -> dict:
  """GFLOP/s of the step's matmul shapes, each alone (diagnostic).

  dense: the [batch*length, hidden] x [hidden, intermediate] matmul of the
  feed-forward block; heads: the attention's per-head batched matmul
  [batch*heads, length, head_dim] x [batch*heads, head_dim, length];
  attention_core_s: forward + backward of one layer's attention core (scores,
  softmax, context) at the model's shapes, times the number of layers.
  """
  n, h, i = batch * length, cfg.hidden_size, cfg.intermediate_size
  nh, hd = cfg.num_attention_heads, cfg.head_dim
  ks = jax.random.split(jax.random.key(0), 4)

  def med(f, *a):
    jax.block_until_ready(f(*a))  # Compile.
    return statistics.median(wall_times(lambda: f(*a), reps))

  x, w = jax.random.normal(ks[0], (n, h)), jax.random.normal(ks[1], (h, i))
  dense = 2 * n * h * i / med(jax.jit(jnp.dot), x, w) / 1e9
  q = jax.random.normal(ks[2], (batch * nh, length, hd))
  kt = jax.random.normal(ks[3], (batch * nh, hd, length))
  heads_rate = (2 * batch * nh * length * length * hd
                / med(jax.jit(jnp.matmul), q, kt) / 1e9)
  qkv = jax.random.normal(ks[0], (3, batch, nh, length, hd))

  def core(qkv):
    s = jnp.einsum("bhqd,bhkd->bhqk", qkv[0], qkv[1]) / hd ** 0.5
    return jnp.einsum("bhqk,bhkd->bqhd", jax.nn.softmax(s, axis=-1), qkv[2])

  core_grad = jax.jit(jax.grad(lambda a: jnp.sum(core(a) ** 2)))
  return {"dense_gflops": dense, "head_matmul_gflops": heads_rate,
          "attention_core_s": cfg.num_hidden_layers * med(core_grad, qkv),
          "attention_flops_share": None}


def main():
  args = ARGS
  sharding.configure_jax(common.get_config())  # As the CLI, before JAX starts.
  info = dict(machine.info(), argv=sys.argv[1:])
  print(f"jax {info['jax']} on {info['backend']} ({info['cpu_count']} CPUs, "
        f"{info['cpu_model']}); XLA_FLAGS={info['xla_flags']!r}")
  load = machine.CpuShare()
  mm = Matmul(1024)
  mm_before = [mm.measure(args.matmul_reps),
               Matmul(2048).measure(max(args.matmul_reps // 3, 3))]
  lengths = [args.length] + [int(x) for x in args.also_lengths.split(",")
                             if x and int(x) != args.length]
  results = [bench_step(n, args, mm) for n in lengths]
  mm_after = dict(mm.measure(args.matmul_reps), when="after the steps")
  shapes = bench_shapes(PRESETS[args.preset], args.batch, args.length)
  fl0 = results[0]["analytic_flops"]
  shapes["attention_flops_share"] = fl0["forward_attention"] / fl0["forward"]
  shapes["attention_step_share"] = (shapes["attention_core_s"] /
                                    results[0]["seconds_per_step_median"])
  ref = max(mm_before[0]["gflops"], mm_after["gflops"])
  ref_best = max([mm_before[0]["gflops_best"], mm_after["gflops_best"]] +
                 [x for r in results for x in r["interleaved_matmul_gflops_all"]])
  for r in results:
    r["ratio_to_matmul"] = r["gflops"] / ref
    r["ratio_best"] = r["best_gflops"] / ref_best
  info["other_processes_cpu_share"] = others = load.others()
  info["load_average_1min"] = os.getloadavg()[0]

  cfg = PRESETS[args.preset]
  print()
  print(FLOPS_FORMULA + f" = {results[0]['analytic_flops']['matmul_params_per_token']:,}")
  print()
  print("matmul float32 (jit jnp.dot), median (best):")
  for m in mm_before:
    print(f"  {m['n']:>4}^3  {m['seconds_median'] * 1e3:8.2f} ms  "
          f"{m['gflops']:7.1f} GFLOP/s  ({m['gflops_best']:.1f})")
  print(f"  1024^3 after the steps: {mm_after['gflops']:.1f} GFLOP/s "
        f"({mm_after['gflops_best']:.1f}); reference = {ref:.1f} GFLOP/s")
  print()
  print(f"train step ({args.preset}, classification, batch {args.batch}, "
        f"{args.dtype}, median of {args.steps}; ratio = step GFLOP/s / "
        f"{ref:.1f}; 'mm int.' = 1024^3 matmul timed between the steps, "
        "median, diagnostic only):")
  print(f"  {'length':>6} {'s/step':>7} {'ex/s':>6} {'GFLOP/step':>10} "
        f"{'XLA GFLOP':>9} {'GFLOP/s':>7} {'mm int.':>7} {'ratio':>5} "
        f"{'best':>5}")
  for r in results:
    xf = r["xla_cost_analysis_flops"]
    print(f"  {r['length']:>6} {r['seconds_per_step_median']:7.3f} "
          f"{r['examples_per_s']:6.2f} "
          f"{r['analytic_flops']['step'] / 1e9:10.1f} "
          f"{xf / 1e9 if xf else float('nan'):9.1f} {r['gflops']:7.1f} "
          f"{r['interleaved_matmul_gflops_median']:7.1f} "
          f"{r['ratio_to_matmul']:5.3f} {r['ratio_best']:5.3f}")
  for r in results:
    if "breakdown" in r:
      b = r["breakdown"]
      s = r["seconds_per_step_median"]
      print(f"  length {r['length']}: forward {b['forward_s']:.3f} s "
            f"({b['forward_s'] / s:.0%}), backward {b['backward_s']:.3f} s "
            f"({b['backward_s'] / s:.0%}), optimizer and rest "
            f"{b['optimizer_and_rest_s']:.3f} s "
            f"({b['optimizer_and_rest_s'] / s:.0%})")
  print(f"  the step's shapes alone: feed-forward matmul "
        f"{shapes['dense_gflops']:.0f} GFLOP/s, per-head attention matmul "
        f"{shapes['head_matmul_gflops']:.0f} GFLOP/s; attention core "
        f"(forward + backward, all layers) {shapes['attention_core_s']:.3f} s ="
        f" {shapes['attention_step_share']:.0%} of the step for "
        f"{shapes['attention_flops_share']:.0%} of its FLOPs")
  if others is not None:
    print(f"  other processes used {others:.0%} of the CPUs during the run"
          + (" -- the machine was shared: absolute numbers are low and "
             "the ratio is not representative" if others > 0.1 else ""))
  target = results[0]["ratio_to_matmul"]
  print(f"\nratio at length {lengths[0]}: {target:.3f} (target >= 0.80; "
        "'best' = fastest step / fastest matmul seen)")

  out = {**info, "model": args.preset, "flops_formula": FLOPS_FORMULA,
         "bert_config": {k: getattr(cfg, k) for k in (
             "hidden_size", "num_hidden_layers", "num_attention_heads",
             "intermediate_size", "vocab_size")},
         "matmul": mm_before + [mm_after], "matmul_reference_gflops": ref,
         "train_step": results, "shapes": shapes,
         "ratio": target, "target_ratio": 0.80}
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out, "w") as f:
    json.dump(out, f, indent=1)
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
