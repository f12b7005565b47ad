r"""Dropout's random bits on the CPU: the generators side by side, interleaved.

  .venv/bin/python benchmarks/dropout_bits.py
  .venv/bin/python benchmarks/dropout_bits.py --shape=32,12,128,128 \
      --reps=9 --out=benchmarks/results/dropout_bits.json

Each variant is one jitted function that draws a keep mask for an array of
--shape (default: MiniLM's attention probabilities at batch 32, length 128)
and applies it (``where(keep, x / 0.9, 0)``), as dropout does in the train
step:

* fused_threefry: `model.threefry_bits`, the project's threefry-2x32-20
  written out element-wise (bit for bit `jax.random.bits`), fused by XLA
  into the masking;
* jax_bernoulli_threefry: `jax.random.bernoulli` with the default
  threefry key (what `nnx.Dropout` runs);
* jax_bernoulli_rbg / jax_bernoulli_unsafe_rbg: the same with keys of
  JAX's 'rbg' and 'unsafe_rbg' implementations (XLA's RngBitGenerator);
* lowbias32_x2: a keyed integer hash of the flat index (two rounds of
  Wellons' lowbias32: 2 multiplies, 3 xor-shifts each), written out like
  fused_threefry.

Reported: median wall and CPU milliseconds per call and nanoseconds per
element, median of --reps interleaved repetitions.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# pylint: disable=wrong-import-position
import jax
import jax.numpy as jnp

from benchmarks import machine
from configs import common
from taskemb_jax import files, sharding
from taskemb_jax import model as model_lib
# pylint: enable=wrong-import-position


def lowbias32(x: jax.Array) -> jax.Array:
  """Wellons' 'lowbias32' integer hash (uint32 -> uint32)."""
  x = x ^ (x >> jnp.uint32(16))
  x = x * jnp.uint32(0x7FEB352D)
  x = x ^ (x >> jnp.uint32(15))
  x = x * jnp.uint32(0x846CA68B)
  return x ^ (x >> jnp.uint32(16))


def lowbias32_bits(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
  k = jax.random.key_data(key).astype(jnp.uint32)
  index = jax.lax.iota(jnp.uint32, math.prod(shape)).reshape(shape)
  return lowbias32(lowbias32(index ^ k[0]) + k[1])


def keep_from_bits(bits: jax.Array, keep_prob: float) -> jax.Array:
  u = jax.lax.bitcast_convert_type(
      (bits >> jnp.uint32(9)) | jnp.uint32(0x3F800000), jnp.float32) - 1.0
  return u < keep_prob


def variants(shape, keep_prob=0.9):
  def apply(keep, x):
    return jnp.where(keep, x / keep_prob, 0.0)

  def from_bits(bits_fn):
    return lambda key, x: apply(keep_from_bits(bits_fn(key, shape),
                                               keep_prob), x)

  def bernoulli(key, x):
    return apply(jax.random.bernoulli(key, keep_prob, shape), x)

  return {
      "fused_threefry": (from_bits(model_lib.threefry_bits), "threefry2x32"),
      "jax_bernoulli_threefry": (bernoulli, "threefry2x32"),
      "jax_bernoulli_rbg": (bernoulli, "rbg"),
      "jax_bernoulli_unsafe_rbg": (bernoulli, "unsafe_rbg"),
      "lowbias32_x2": (from_bits(lowbias32_bits), "threefry2x32"),
  }


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--shape", default="32,12,128,128")
  p.add_argument("--reps", type=int, default=9)
  p.add_argument("--out", default=os.path.join(
      ROOT, "benchmarks", "results", "dropout_bits.json"))
  args = p.parse_args(argv)
  sharding.configure_jax(common.get_config())
  info = machine.info()
  shape = tuple(int(s) for s in args.shape.split(","))
  n = math.prod(shape)
  x = jnp.ones(shape, jnp.float32)
  fns = {}
  for name, (fn, impl) in variants(shape).items():
    key = jax.random.key(0, impl=impl)
    f = jax.jit(fn)
    jax.block_until_ready(f(key, x))
    fns[name] = (f, key)
  wall = {k: [] for k in fns}
  cpu = {k: [] for k in fns}
  for _ in range(args.reps):
    for name, (f, key) in fns.items():
      t, c = time.perf_counter(), time.process_time()
      jax.block_until_ready(f(key, x))
      wall[name].append(time.perf_counter() - t)
      cpu[name].append(time.process_time() - c)
  rows = {}
  print(f"\n{info['cpu_model']}, jax {info['jax']}, shape {shape} "
        f"({n / 1e6:.1f} M elements), median of {args.reps}\n")
  print(f"{'variant':<26}{'wall ms':>9}{'cpu ms':>9}{'ns/elem':>9}")
  for name in fns:
    w, c = statistics.median(wall[name]), statistics.median(cpu[name])
    rows[name] = {"wall_ms": w * 1e3, "cpu_ms": c * 1e3,
                  "wall_ns_per_element": w / n * 1e9, "all_wall_s": wall[name]}
    print(f"{name:<26}{w * 1e3:>9.1f}{c * 1e3:>9.1f}{w / n * 1e9:>9.2f}")
  out = {**info, "shape": shape, "reps": args.reps, "variants": rows,
         "load_average_end": machine.load_average()}
  files.write_json(args.out, out)
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
