r"""Formulations of the attention core, forward and backward, interleaved.

  .venv/bin/python benchmarks/attention_core.py
  .venv/bin/python benchmarks/attention_core.py --length=128 --reps=9 \
      --out=benchmarks/results/attention_core.json

One layer's core at MiniLM's shapes (batch 32, 12 heads of 32, --length),
from the fused QKV projection's output [batch * length, 3 * hidden] to the
context [batch, length, hidden], no dropout; each variant jitted alone
(forward) and as the gradient of a weighted sum (forward + backward):

* autodiff_einsum: the model's core before the hand-written backward (one
  transpose to [3, batch, heads, length, hd], einsums, jax.nn.softmax);
* autodiff_no_transpose: einsums straight on the [batch, length, heads, hd]
  layout, XLA choosing the transposes;
* dot_product_attention: `jax.nn.dot_product_attention(implementation='xla')`;
* folded_heads: heads folded into the batch, [batch * heads, length, hd],
  one `lax.dot_general` per product;
* autodiff_manual_softmax: autodiff_einsum with softmax written out;
* custom_vjp: `model.attention`, the project's core (hand-written backward).

All variants are checked against autodiff_einsum (values and gradients)
before timing. Reported: median wall and CPU milliseconds over --reps
interleaved repetitions, and GFLOP/s of the two products (4 B H L^2 hd
forward, 3x that with the backward).
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
import numpy as np

from benchmarks import machine
from configs import common
from taskemb_jax import files, sharding
from taskemb_jax import model as model_lib
# pylint: enable=wrong-import-position

B, H, D = 32, 12, 32


def variants(t: int) -> dict:
  scale = 1 / math.sqrt(D)

  def split_heads(qkv):
    return qkv.reshape(B, t, 3, H, D).transpose(2, 0, 3, 1, 4)

  def merge(ctx):  # [B, H, T, D] -> [B, T, H * D]
    return ctx.transpose(0, 2, 1, 3).reshape(B, t, H * D)

  def autodiff_einsum(qkv, bias):
    x = split_heads(qkv)
    s = jnp.einsum("bhqd,bhkd->bhqk", x[0], x[1]) / math.sqrt(D)
    p = jax.nn.softmax(s + bias, axis=-1)
    return jnp.einsum("bhqk,bhkd->bqhd", p, x[2]).reshape(B, t, H * D)

  def autodiff_no_transpose(qkv, bias):
    x = qkv.reshape(B, t, 3, H, D)
    s = jnp.einsum("bqhd,bkhd->bhqk", x[:, :, 0] * scale, x[:, :, 1])
    p = jax.nn.softmax(s + bias, axis=-1)
    return jnp.einsum("bhqk,bkhd->bqhd", p, x[:, :, 2]).reshape(B, t, H * D)

  def dot_product_attention(qkv, bias):
    x = qkv.reshape(B, t, 3, H, D)
    return jax.nn.dot_product_attention(
        x[:, :, 0], x[:, :, 1], x[:, :, 2], bias=bias,
        implementation="xla").reshape(B, t, H * D)

  def folded_heads(qkv, bias):
    x = split_heads(qkv).reshape(3, B * H, t, D)
    s = jax.lax.dot_general(x[0] * scale, x[1],
                            (((2,), (2,)), ((0,), (0,)))).reshape(B, H, t, t)
    p = jax.nn.softmax(s + bias, axis=-1).reshape(B * H, t, t)
    c = jax.lax.dot_general(p, x[2], (((2,), (1,)), ((0,), (0,))))
    return merge(c.reshape(B, H, t, D))

  def autodiff_manual_softmax(qkv, bias):
    x = split_heads(qkv)
    s = jnp.einsum("bhqd,bhkd->bhqk", x[0] * scale, x[1]) + bias
    e = jnp.exp(s - jax.lax.stop_gradient(s.max(-1, keepdims=True)))
    return merge(jnp.einsum("bhqk,bhkd->bhqd", e / e.sum(-1, keepdims=True),
                            x[2]))

  def custom_vjp(qkv, bias):
    x = split_heads(qkv)
    return merge(model_lib.attention(x[0] * scale, x[1], x[2], bias, None,
                                     1.0))

  return {f.__name__: f for f in (
      autodiff_einsum, autodiff_no_transpose, dot_product_attention,
      folded_heads, autodiff_manual_softmax, custom_vjp)}


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--length", type=int, default=128)
  p.add_argument("--reps", type=int, default=9)
  p.add_argument("--out", default=os.path.join(
      ROOT, "benchmarks", "results", "attention_core.json"))
  args = p.parse_args(argv)
  sharding.configure_jax(common.get_config())
  info = machine.info()
  t = args.length
  qkv = jax.random.normal(jax.random.key(0), (B * t, 3 * H * D))
  mask = np.ones((B, t), np.int32)
  mask[B // 2:, 3 * t // 4:] = 0  # Some padding, as in real batches.
  bias = jnp.where(mask[:, None, None, :] > 0, 0.0, jnp.finfo(jnp.float32).min)
  g = jax.random.normal(jax.random.key(1), (B, t, H * D))
  fns = {}
  for name, f in variants(t).items():
    grad = jax.jit(jax.grad(lambda a, b, f=f: jnp.sum(f(a, b) * g)))
    fns[name] = (jax.jit(f), grad)
  ref_out, ref_grad = (np.asarray(fn(qkv, bias)) for fn in fns["autodiff_einsum"])
  for name, (fwd, grad) in fns.items():
    np.testing.assert_allclose(fwd(qkv, bias), ref_out, atol=1e-4,
                               err_msg=name)
    np.testing.assert_allclose(grad(qkv, bias), ref_grad, atol=1e-3,
                               rtol=1e-3, err_msg=name)
  times = {n: ([], [], [], []) for n in fns}
  for _ in range(args.reps):
    for name, pair in fns.items():
      for i, fn in enumerate(pair):
        w, c = time.perf_counter(), time.process_time()
        jax.block_until_ready(fn(qkv, bias))
        times[name][2 * i].append(time.perf_counter() - w)
        times[name][2 * i + 1].append(time.process_time() - c)
  flops = 4 * B * H * t * t * D
  rows = {}
  print(f"\n{info['cpu_model']}, jax {info['jax']}, one layer's attention "
        f"core, batch {B}, {H} heads of {D}, length {t}, median of "
        f"{args.reps}\n")
  print(f"{'variant':<26}{'fwd ms':>8}{'fwd+bwd ms':>12}{'cpu ms':>8}"
        f"{'GFLOP/s':>9}")
  for name, (fw, fc, gw, gc) in times.items():
    row = {k: statistics.median(v) * 1e3 for k, v in (
        ("forward_ms", fw), ("forward_cpu_ms", fc),
        ("forward_backward_ms", gw), ("forward_backward_cpu_ms", gc))}
    row["forward_backward_gflops"] = 3 * flops / row["forward_backward_ms"] / 1e6
    rows[name] = row
    print(f"{name:<26}{row['forward_ms']:>8.1f}"
          f"{row['forward_backward_ms']:>12.1f}"
          f"{row['forward_backward_cpu_ms']:>8.1f}"
          f"{row['forward_backward_gflops']:>9.1f}")
  files.write_json(args.out, {**info, "length": t, "batch": B, "heads": H,
                              "head_dim": D, "reps": args.reps,
                              "variants": rows,
                              "load_average_end": machine.load_average()})
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
