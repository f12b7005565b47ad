"""Range checks of a run's config fields, before anything runs.

`check_config(config)` is called by `main.run` before dispatching a stage
and by `train.train_and_evaluate` (run configs are also built in code, e.g.
by the transfer sweep); `check_max_length(max_length, bert_config, model)` where the
model's sizes are known (`train.model_spec`). A violation is a `ConfigError`
of one line, ``config.<field>=<value>: <what is allowed>`` (several joined
by ``; ``).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import ml_collections

from taskemb_jax import sharding
from taskemb_jax.errors import ConfigError

# Compute dtypes of the model's matmuls (parameters stay float32).
DTYPES = ("float32", "bfloat16")
MIN_LENGTH = 8  # [CLS], [SEP] and a few tokens of text.


def _number(x: Any) -> bool:
  return isinstance(x, (int, float)) and not isinstance(x, bool)


def _finite(x: Any) -> bool:
  return _number(x) and math.isfinite(x)


def _int(x: Any) -> bool:
  return isinstance(x, int) and not isinstance(x, bool)


# field -> (test of the value, what is allowed).
_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "max_length": (lambda x: _int(x) and x >= MIN_LENGTH,
                   f"an integer >= {MIN_LENGTH}"),
    "batch_size": (lambda x: _int(x) and x >= 1, "an integer >= 1"),
    "eval_batch_size": (lambda x: _int(x) and x >= 1, "an integer >= 1"),
    "num_epochs": (lambda x: _int(x) and x >= 1, "an integer >= 1"),
    "learning_rate": (lambda x: _finite(x) and x > 0, "a finite number > 0"),
    "warmup_proportion": (lambda x: _finite(x) and 0 <= x < 1,
                          "a number in [0, 1)"),
    "weight_decay": (lambda x: _finite(x) and x >= 0, "a finite number >= 0"),
    "max_grad_norm": (lambda x: _number(x) and x > 0, "a number > 0"),
    "adam_epsilon": (lambda x: _finite(x) and x > 0, "a finite number > 0"),
    "dropout": (lambda x: _number(x) and (x == -1 or 0 <= x < 1),
                "-1 (the checkpoint's value) or a number in [0, 1)"),
    "train_examples": (lambda x: _int(x) and x >= 0,
                       "an integer >= 0 (0 = all)"),
    "max_eval_examples": (lambda x: _int(x) and x >= 0,
                          "an integer >= 0 (0 = all)"),
    "checkpoint_every_steps": (lambda x: _int(x) and x >= 0,
                               "an integer >= 0 (0 = each epoch only)"),
    "dtype": (lambda x: x in DTYPES, f"one of {', '.join(DTYPES)}"),
}


def problems(config: ml_collections.ConfigDict,
             num_devices: int | None = None) -> list[str]:
  """One line per field of `config` out of its range (fields it lacks are
  not checked). `num_devices`: batch sizes must be multiples of it."""
  out = []
  for field, (ok, allowed) in _RULES.items():
    if field in config and not ok(config[field]):
      out.append(_line(field, config[field], allowed))
  max_length = config.get("max_length")
  for field in ("doc_stride", "max_query_length"):
    value = config.get(field)
    if value is None or not _int(max_length):
      continue
    if not (_int(value) and (value == -1 or 0 < value < max_length)):
      out.append(_line(field, value, "-1 (automatic) or an integer in "
                       f"[1, max_length={max_length})"))
  if num_devices and num_devices > 1:
    for field in ("batch_size", "eval_batch_size"):
      value = config.get(field)
      if _int(value) and value >= 1 and value % num_devices:
        out.append(_line(field, value, "a multiple of the number of devices "
                         f"({num_devices})"))
  return out


def check_config(config: ml_collections.ConfigDict,
                 num_devices: int | None = None) -> None:
  """Raises a one-line ConfigError naming every field out of its range.

  `num_devices`: default, the devices of the run's mesh (config.num_devices).
  """
  if num_devices is None:
    num_devices = sharding.make_mesh(config.get("num_devices", -1)).devices.size
  found = problems(config, num_devices)
  if found:
    raise ConfigError("; ".join(found))


def check_max_length(max_length: Any, bert_config, model: str) -> None:
  """max_length must fit the model's position embeddings."""
  limit = bert_config.max_position_embeddings
  if _int(max_length) and max_length > limit:
    raise ConfigError(_line("max_length", max_length, f"at most {limit}, the "
                            f"position embeddings of model {model!r}"))


def _line(field: str, value: Any, allowed: str) -> str:
  shown = repr(value) if isinstance(value, str) else value
  return f"config.{field}={shown}: must be {allowed}"
