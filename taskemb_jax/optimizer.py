"""The optimizer of fine-tuning: AdamW, global-norm clipping, and a linear
warm-up/decay learning-rate schedule given to every update as values.

The schedule (`schedule_args`) is an argument of the train step rather than
constants built into its program, so that one compiled step serves runs of
any dataset size, number of epochs and learning rate; its values equal
optax's ``join_schedules`` of two linear schedules, which earlier versions
built in (`learning_rate_at`).
"""

from __future__ import annotations

import functools
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax


def decay_mask(params: Any) -> Any:
  """True for weights that get weight decay: kernels and embeddings.

  Biases and LayerNorm parameters are not decayed (as in BERT).
  """
  def leaf(path, _):
    return getattr(path[-1], "key", None) in ("kernel", "embedding")
  return jax.tree_util.tree_map_with_path(leaf, params)


def optimizer_settings(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The fields of a stage's config that `create_optimizer` takes."""
  return dict(weight_decay=config.weight_decay,
              max_grad_norm=config.max_grad_norm,
              adam_epsilon=config.adam_epsilon,
              freeze_encoder=bool(config.get("freeze_encoder", False)))


def schedule_args(num_train_steps: int, learning_rate: float,
                  warmup_proportion: float) -> dict[str, np.ndarray]:
  """The learning-rate schedule of a run, as the train step's argument.

  Linear warm-up over the first ``int(warmup_proportion * num_train_steps)``
  steps from 0 to `learning_rate`, then linear decay to 0 at
  `num_train_steps` (`learning_rate_at`). Passed to the step as values,
  not built into it, so that runs of any length and learning rate share
  one compiled step. Returns {'learning_rate': float32, 'warmup_steps',
  'train_steps': int32} scalars.
  """
  return {"learning_rate": np.float32(learning_rate),
          "warmup_steps": np.int32(int(warmup_proportion * num_train_steps)),
          "train_steps": np.int32(num_train_steps)}


def _linear_schedule(count: jax.Array, init: Any, end: Any,
                     steps: jax.Array) -> jax.Array:
  # optax.linear_schedule's arithmetic, with `steps` a traced value.
  frac = 1 - jnp.clip(count, 0, steps) / steps
  return (init - end) * frac + end


def learning_rate_at(count: jax.Array,
                     schedule: Mapping[str, jax.Array]) -> jax.Array:
  """The learning rate of update `count` (0, 1, ...) of `schedule_args`.

  The same float32 values as optax's ``join_schedules([linear_schedule(0,
  lr, max(warmup, 1)), linear_schedule(lr, 0, max(steps - warmup, 1))],
  [warmup])``, the schedule of earlier versions.
  """
  lr, warmup = schedule["learning_rate"], schedule["warmup_steps"]
  up = _linear_schedule(count, 0.0, lr, jnp.maximum(warmup, 1))
  down = _linear_schedule(count - warmup, lr, 0.0,
                          jnp.maximum(schedule["train_steps"] - warmup, 1))
  return jnp.where(count < warmup, up, down)


def scale_by_schedule_args() -> optax.GradientTransformationExtraArgs:
  """Scales updates by minus `learning_rate_at(count, schedule)`, where
  `schedule` (of `schedule_args`) is an argument of every update.

  The state is optax.scale_by_learning_rate's, so checkpoints of either
  restore into the other.
  """
  def init(params):
    del params
    return optax.ScaleByScheduleState(count=jnp.zeros([], jnp.int32))

  def update(updates, state, params=None, *, schedule, **extra):
    del params, extra
    step = -1 * learning_rate_at(state.count, schedule)
    updates = jax.tree.map(lambda g: jnp.array(step, dtype=g.dtype) * g,
                           updates)
    return updates, optax.ScaleByScheduleState(
        count=optax.safe_increment(state.count))
  return optax.GradientTransformationExtraArgs(init, update)


@functools.lru_cache(maxsize=32)
def create_optimizer(*, weight_decay: float, max_grad_norm: float,
                     adam_epsilon: float, freeze_encoder: bool = False
                     ) -> optax.GradientTransformation:
  """AdamW with global-norm clipping; the learning rate of every update
  comes from the ``schedule`` argument of its update (`schedule_args`).

  With freeze_encoder only the head is trained. Equal settings give the
  same (cached) object, so runs with equal settings share compiled steps
  whatever their length and learning rate. Updates and state are those of
  ``optax.chain(optax.clip_by_global_norm(max_grad_norm),
  optax.adamw(schedule, ...))``.
  """
  adamw = optax.chain(
      optax.scale_by_adam(b1=0.9, b2=0.999, eps=adam_epsilon),
      optax.add_decayed_weights(weight_decay, decay_mask),
      scale_by_schedule_args())
  tx = optax.chain(optax.clip_by_global_norm(max_grad_norm), adamw)
  return head_only(tx) if freeze_encoder else tx


def head_only(tx: optax.GradientTransformation
              ) -> optax.GradientTransformation:
  """`tx` on the head's parameters; zero updates for the encoder's ('bert')
  (TaskEmb's 'head' fine-tuning mode)."""
  def label(params):
    return jax.tree_util.tree_map_with_path(
        lambda path, _: ("frozen" if getattr(path[0], "key", None) == "bert"
                         else "train"), params)
  return optax.multi_transform({"train": tx, "frozen": optax.set_to_zero()},
                               label)
