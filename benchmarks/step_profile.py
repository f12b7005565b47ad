r"""Where the train step's time goes, by kind of XLA:CPU operation.

  .venv/bin/python benchmarks/step_profile.py [--length=128] \
      [--dtype=float32] [--steps=3] [--out=benchmarks/results/step_profile.json]

Runs the project's train step on MiniLM (all-MiniLM-L6-v2 weights,
classification head, batch --batch, the step of
`benchmarks/train_step_vs_torch.py`) under `jax.profiler.trace` and sums the
trace's operation durations per kind: `ynn_fusion` (XLA:CPU's matmuls through
YNNPACK), `dot_general`/`dot` (the attention core's batched matmuls) and each
kind of element-wise fusion (named by XLA after its first operations, e.g.
`multiply_add_fusion`), per step. The profiler slows the step (its total is
printed beside the step's seconds without it); the shares are what it is
for. Also prints the same-shaped matmuls' rate outside the step, so that the
matmuls' rate inside it can be read off: the step's matmul FLOPs (counted
analytically) over the `ynn_fusion` time. --top=N lists the N longest single
operations with their result shapes and what they fuse.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import re
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

_HOST = ("ThunkExecutor", "$", "PjitFunction", "SlinkyThreadPool",
         "CommonPjRtLoadedExecutable", "ParseArguments")


def kind_of(name: str) -> str:
  """'ynn_fusion.52' -> 'ynn_fusion'; 'multiply_add_fusion.7' ->
  'multiply_add_fusion'."""
  return name.rstrip("0123456789").rstrip(".")


def per_op(trace_file: str, steps: int) -> dict[str, float]:
  """Milliseconds per step of each device operation in a trace."""
  events = json.load(gzip.open(trace_file))["traceEvents"]
  total = collections.Counter()
  for e in events:
    if e.get("ph") == "X" and "dur" in e and not e["name"].startswith(_HOST):
      total[e["name"]] += e["dur"] / 1000 / steps
  return dict(total.most_common())


def per_kind(ops: dict[str, float]) -> dict[str, float]:
  """`per_op`'s milliseconds summed per kind of operation (`kind_of`)."""
  total = collections.Counter()
  for name, ms in ops.items():
    total[kind_of(name)] += ms
  return dict(total.most_common())


def describe(hlo: str, name: str) -> str:
  """'f32[2048,1536] <- multiply, add, convert' for operation `name` of the
  compiled module's text `hlo`: its result shape and, for a fusion, the
  operations of the computation it calls."""
  m = re.search(rf"%{re.escape(name)} = (\S+) \w+\(.*?calls=%([\w.\-]+)",
                hlo) or re.search(rf"%{re.escape(name)} = (\S+) ", hlo)
  if not m:
    return "?"
  shape = m.group(1).split("{")[0]
  if m.lastindex < 2:
    return shape
  body = re.search(rf"%{re.escape(m.group(2))} \(.*?\n}}", hlo, re.S)
  ops = collections.Counter(re.findall(r"= \S+ (\w[\w-]*)\(",
                                       body.group(0) if body else ""))
  ops.pop("parameter", None)
  return f"{shape} <- " + ", ".join(f"{k}" + (f" x{v}" if v > 1 else "")
                                    for k, v in ops.most_common(6))


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--length", type=int, default=128)
  p.add_argument("--batch", type=int, default=32)
  p.add_argument("--dtype", default="float32",
                 choices=("float32", "bfloat16"))
  p.add_argument("--steps", type=int, default=3)
  p.add_argument("--top", type=int, default=0,
                 help="also list the N longest single operations, with "
                      "their shapes and fused operations")
  p.add_argument("--out", default=os.path.join(
      ROOT, "benchmarks", "results", "step_profile.json"))
  a = p.parse_args()
  # pylint: disable=g-import-not-at-top,import-outside-toplevel
  from configs import common
  from taskemb_jax import sharding
  sharding.configure_jax(common.get_config())  # As the CLI, before JAX starts.
  import statistics
  import jax
  import jax.numpy as jnp
  import machine
  import rates
  import train_step_vs_torch as vs
  from taskemb_jax import pretrained
  # pylint: enable=g-import-not-at-top,import-outside-toplevel
  ours = vs.Ours(vs.make_batch(a.batch, a.length, 3), a.dtype, 3, 2)
  plain = statistics.median(ours.run(a.steps))
  with tempfile.TemporaryDirectory() as d:
    with jax.profiler.trace(d):
      profiled = sum(ours.run(a.steps)) / a.steps
    ops = per_op(glob.glob(os.path.join(d, "**", "*.trace.json.gz"),
                           recursive=True)[0], a.steps)
  kinds = per_kind(ops)
  device_ms = sum(kinds.values())
  cfg = pretrained.read_config(pretrained.resolve_model_dir("minilm-l6"))
  dense = 3 * rates.analytic_flops(cfg, a.batch, a.length, 3)["forward_dense"]
  # The dense layers' shape, [B * L, H] x [H, I], in the step's dtype.
  x = jnp.ones((a.batch * a.length, cfg.hidden_size), a.dtype)
  w = jnp.ones((cfg.hidden_size, cfg.intermediate_size), a.dtype)
  mm = jax.jit(lambda x, w: jnp.dot(x, w, preferred_element_type=jnp.float32))
  alone = 2 * x.shape[0] * w.shape[0] * w.shape[1] / statistics.median(
      rates.wall_times(lambda: mm(x, w), 9)) / 1e9
  print(f"train step, batch {a.batch}, length {a.length}, {a.dtype}: "
        f"{plain:.3f} s ({profiled:.3f} s profiled; its operations "
        f"{device_ms / 1000:.3f} s)")
  print(f"{'operation kind':<32}{'ms/step':>9}{'share':>8}")
  for k, ms in list(kinds.items())[:20]:
    print(f"{k:<32}{ms:>9.1f}{100 * ms / device_ms:>7.1f}%")
  top = {}
  if a.top:
    hlo = ours.steps.train.lower(
        ours.state, sharding.put_batch(ours.batch, ours.mesh),
        jax.random.key(0), ours.schedule).compile().as_text()
    print(f"\n{'operation':<32}{'ms/step':>9}{'share':>8}  result <- fused")
    for name, ms in list(ops.items())[:a.top]:
      top[name] = {"ms": ms, "what": describe(hlo, name)}
      print(f"{name:<32}{ms:>9.1f}{100 * ms / device_ms:>7.1f}%  "
            f"{top[name]['what']}")
    print()
  ynn = kinds.get("ynn_fusion", 0.0) / 1000
  in_step = dense / ynn / 1e9 if ynn else float("nan")
  print(f"dense layers' matmuls (3 x forward): {dense / 1e9:.1f} GFLOP/step "
        f"in ynn_fusion's {ynn:.3f} s (profiled) = {in_step:.0f} GFLOP/s; "
        f"the [{x.shape[0]}, {w.shape[0]}] x [{w.shape[0]}, {w.shape[1]}] "
        f"matmul alone: {alone:.0f} GFLOP/s")
  result = {"machine": machine.info(), "length": a.length, "batch": a.batch,
            "dtype": a.dtype, "seconds_per_step": plain,
            "seconds_per_step_profiled": profiled,
            "operation_ms_per_step": kinds,
            "longest_operations": top,
            "dense_gflop_per_step": dense / 1e9,
            "dense_gflops_in_step_profiled": in_step,
            "dense_shape_matmul_gflops_alone": alone}
  machine.append_result(a.out, result)


if __name__ == "__main__":
  main()
