"""Compiled once per process: the learning-rate schedule is a step argument
(equal to optax's schedule), and a second fine-tune and embedding of
another size compiles nothing."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from taskemb_jax import optimizer as optimizer_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _optax_schedule(num_train_steps, learning_rate, warmup_proportion):
  """The schedule as earlier versions built it, constants in the program."""
  warmup = int(warmup_proportion * num_train_steps)
  return optax.join_schedules(
      [optax.linear_schedule(0.0, learning_rate, max(warmup, 1)),
       optax.linear_schedule(learning_rate, 0.0,
                             max(num_train_steps - warmup, 1))], [warmup])


def _old_optimizer(num_train_steps, *, learning_rate, warmup_proportion,
                   weight_decay, max_grad_norm, adam_epsilon, freeze_encoder):
  tx = optax.chain(
      optax.clip_by_global_norm(max_grad_norm),
      optax.adamw(_optax_schedule(num_train_steps, learning_rate,
                                  warmup_proportion),
                  b1=0.9, b2=0.999, eps=adam_epsilon,
                  weight_decay=weight_decay, mask=optimizer_lib.decay_mask))
  return optimizer_lib.head_only(tx) if freeze_encoder else tx


@pytest.mark.parametrize("steps,lr,warmup", [
    (100, 2e-5, 0.1), (1000, 2e-5, 0.1), (37, 5e-5, 0.06), (7, 3e-4, 0.0),
    (1, 1e-3, 0.5)])
def test_schedule_equals_optax_schedule(steps, lr, warmup):
  """learning_rate_at(count, schedule_args(...)) = optax's join of linear
  schedules at every step and past the end, within float32 rounding (XLA
  rewrites the divisions differently: a few ulps, or -5e-13 instead of 0
  past the end)."""
  args = optimizer_lib.schedule_args(steps, lr, warmup)
  counts = jnp.arange(steps + 3, dtype=jnp.int32)
  ours = np.asarray(jax.jit(jax.vmap(optimizer_lib.learning_rate_at,
                                     in_axes=(0, None)))(counts, args))
  old = _optax_schedule(steps, lr, warmup)
  theirs = np.asarray(jax.jit(jax.vmap(old))(counts))
  eager = np.asarray([old(c) for c in counts[::max(1, steps // 20)]])
  assert ours.dtype == theirs.dtype == np.float32
  np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-7 * lr)
  np.testing.assert_allclose(ours[::max(1, steps // 20)], eager, rtol=1e-6,
                             atol=1e-7 * lr)
  w = int(warmup * steps)
  peak = np.float32(lr)
  np.testing.assert_allclose(ours[[0, w, steps]],
                             [0.0 if w else peak, peak, 0.0], atol=1e-7 * lr)


@pytest.mark.parametrize("freeze_encoder", [False, True])
def test_optimizer_updates_equal_optax_adamw_with_the_schedule(freeze_encoder):
  """Twelve updates (clipped and not, past the schedule's end) give the
  parameters of the earlier optimizer, whose state has the same structure
  (checkpoints restore either way)."""
  keys = jax.random.split(jax.random.key(0), 5)
  params = {"bert": {"dense": {"kernel": jax.random.normal(keys[0], (4, 3)),
                               "bias": jnp.zeros(3)}},
            "classifier": {"kernel": jax.random.normal(keys[1], (3, 2)),
                           "bias": jnp.ones(2)}}
  settings = dict(weight_decay=0.01, max_grad_norm=1.0, adam_epsilon=1e-8,
                  freeze_encoder=freeze_encoder)
  new = optimizer_lib.create_optimizer(**settings)
  old = _old_optimizer(10, learning_rate=1e-2, warmup_proportion=0.2,
                       **settings)
  schedule = optimizer_lib.schedule_args(10, 1e-2, 0.2)
  s_new, s_old = new.init(params), old.init(params)
  assert jax.tree.structure(s_new) == jax.tree.structure(s_old)

  @jax.jit
  def step(p_new, p_old, s_new, s_old, g):
    u_new, s_new = new.update(g, s_new, p_new, schedule=schedule)
    u_old, s_old = old.update(g, s_old, p_old)
    return (optax.apply_updates(p_new, u_new), optax.apply_updates(p_old, u_old),
            s_new, s_old)

  p_new = p_old = params
  for i in range(12):
    scale = 0.1 if i % 2 else 10.0  # Below and above the clipping norm.
    g = jax.tree.map(lambda x, i=i, scale=scale: scale * jax.random.normal(
        jax.random.fold_in(keys[2], i), x.shape), params)
    p_new, p_old, s_new, s_old = step(p_new, p_old, s_new, s_old, g)
    for a, e in zip(jax.tree.leaves(p_new), jax.tree.leaves(p_old)):
      np.testing.assert_allclose(a, e, rtol=1e-6, atol=1e-7)
  moved = np.abs(np.asarray(p_new["classifier"]["kernel"])
                 - np.asarray(params["classifier"]["kernel"])).max()
  assert moved > 1e-2
  bert_moved = np.abs(np.asarray(p_new["bert"]["dense"]["kernel"])
                      - np.asarray(params["bert"]["dense"]["kernel"])).max()
  assert (bert_moved == 0.0) == freeze_encoder
  # Equal settings give the same transformation: one compiled step.
  assert optimizer_lib.create_optimizer(**settings) is new


_SCRIPT = r"""
import json, os, sys
sys.path[:0] = [{root!r}, {tests!r}]
import jax
import synthetic
from configs import tiny
from taskemb_jax import embed, embeddings, train

counts = {{"compiles": 0, "traces": 0}}
names = {{"/jax/core/compile/backend_compile_duration": "compiles",
          "/jax/core/compile/jaxpr_trace_duration": "traces"}}


def listen(event, duration, **_):
  if event in names:
    counts[names[event]] += 1


jax.monitoring.register_event_duration_secs_listener(listen)
cached = (train._eval_fn, train._train_fn, embeddings._textemb_fn,
          embeddings._fisher_fn)
out = []
for i, (n_train, n_val, epochs, lr) in enumerate([(40, 16, 1, 1e-3),
                                                  (72, 24, 2, 3e-4)]):
  root = os.path.join({tmp!r}, str(i))
  data = synthetic.write_task(os.path.join(root, "data"), "classification",
                              n_train=n_train, n_val=n_val, seed=i)
  cfg = tiny.get_config()
  cfg.task = "classification:" + data
  cfg.library = os.path.join(root, "lib")
  # One length bucket (16), so that both runs have the same shapes.
  cfg.num_epochs, cfg.learning_rate, cfg.max_length = epochs, lr, 16
  cfg.compilation_cache = ""
  before = dict(counts)
  embed.textemb_stage(cfg, os.path.join(root, "wd"))
  embed.taskemb_stage(cfg, os.path.join(root, "wd"))
  metrics = json.load(open(os.path.join(root, "wd", "finetune",
                                        "metrics.json")))
  out.append({{"compiles": counts["compiles"] - before["compiles"],
              "traces": counts["traces"] - before["traces"],
              "steps": metrics["history"][-1]["step"],
              "programs": [f.cache_info().currsize for f in cached]}})
print(json.dumps(out))
"""


def test_second_finetune_and_embedding_of_another_size_compiles_nothing(
    tmp_path):
  """In one process (as the service's worker or the CLI's stages): TextEmb,
  fine-tuning (train and eval steps) and TaskEmb of a task, then of another
  task with other example counts, epochs and learning rate but the same
  model, class, batch size and length: the second traces and compiles
  nothing at all."""
  script = _SCRIPT.format(root=ROOT, tests=os.path.join(ROOT, "tests"),
                          tmp=str(tmp_path))
  res = subprocess.run([sys.executable, "-c", script], capture_output=True,
                       text=True, cwd=ROOT, timeout=600)
  assert res.returncode == 0, res.stderr[-3000:]
  first, second = json.loads(res.stdout.strip().splitlines()[-1])
  assert first["steps"] == 3 and second["steps"] == 2 * 5
  assert first["compiles"] >= 4 and first["traces"] >= 4
  assert second["compiles"] == 0 and second["traces"] == 0, second
  assert first["programs"] == second["programs"] == [1, 1, 1, 1]
