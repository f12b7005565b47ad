"""The yardsticks of the speed benchmarks: the jitted matmul rate of this
machine, the analytic FLOPs of a BERT train step, and the train step under
test as every speed benchmark builds it (`train_steps`).

Used by benchmarks/train_step.py, benchmarks/train_step_vs_torch.py and
benchmarks/taskemb.py, so that all report a step's GFLOP/s as a fraction of
the same matmul rate, of the same step.
"""

from __future__ import annotations

import statistics
import time

import jax
import jax.numpy as jnp
from flax import nnx

from configs import common
from taskemb_jax import optimizer as optimizer_lib
from taskemb_jax import sharding, train

FLOPS_FORMULA = ("step FLOPs = 3 x forward; forward = 2 P_mm B L "
                 "+ n_layers B 4 L^2 H + 2 B (H^2 + H C), "
                 "P_mm = n_layers (4 H^2 + 2 H I)")


def wall_times(fn, reps: int) -> list[float]:
  """Seconds of `reps` calls of `fn`, each waited for to the end."""
  out = []
  for _ in range(reps):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    out.append(time.perf_counter() - t0)
  return out


class Matmul:
  """The jitted n x n float32 `jnp.dot` and its timing."""

  def __init__(self, n: int):
    k1, k2 = jax.random.split(jax.random.key(n))
    self.n = n
    self.a = jax.random.normal(k1, (n, n), jnp.float32)
    self.b = jax.random.normal(k2, (n, n), jnp.float32)
    self.f = jax.jit(jnp.dot)
    for _ in range(3):
      self.f(self.a, self.b).block_until_ready()

  def times(self, reps: int) -> list[float]:
    return wall_times(lambda: self.f(self.a, self.b), reps)

  def gflops(self, seconds: float) -> float:
    return 2 * self.n ** 3 / seconds / 1e9

  def measure(self, reps: int) -> dict:
    ts = self.times(reps)
    med = statistics.median(ts)
    return {"n": self.n, "reps": reps, "seconds_median": med,
            "seconds_min": min(ts), "gflops": self.gflops(med),
            "gflops_best": self.gflops(min(ts))}


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


def train_steps(model: nnx.Module, kind: str = "classification"):
  """The project's jitted steps on `model`, with the default config's AdamW
  and a 1,000-step schedule: (steps, state, mesh, schedule), where `state`
  (model and optimizer, replicated on the mesh) is what ``steps.train``
  takes and donates."""
  config = common.get_config()
  optimizer = nnx.Optimizer(
      model, optimizer_lib.create_optimizer(
          **optimizer_lib.optimizer_settings(config)),
      wrt=nnx.Param)
  mesh = sharding.make_mesh()
  schedule = sharding.put_replicated(optimizer_lib.schedule_args(
      1000, config.learning_rate, config.warmup_proportion), mesh)
  steps = train.Steps(model, kind, mesh, optimizer)
  state = sharding.put_replicated(nnx.state((model, optimizer)), mesh)
  return steps, state, mesh, schedule
