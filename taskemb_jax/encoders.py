"""Which encoder a run uses, and task models built on it.

* `model_spec` resolves a model name (a random preset, the packaged
  MiniLM, a Hugging Face folder or hub name) to a `ModelSpec`: the BERT
  sizes, the folder of pretrained weights (None = random) and the tokenizer.
* `base_fingerprints` identifies the base model and tokenizer (the task
  library refuses to compare embeddings of different ones).
* `create_model` builds a `heads.TaskModel` with the pretrained encoder (or
  the encoder of an earlier fine-tuning run) and a fresh head;
  `load_finetuned` loads the best model of a finished training run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from flax import nnx

from taskemb_jax import checkpoint
from taskemb_jax import heads
from taskemb_jax import input_pipeline
from taskemb_jax import pretrained
from taskemb_jax import validate
from taskemb_jax.errors import ConfigError
from taskemb_jax.model import PRESETS, BertConfig

DTYPES = {name: getattr(jnp, name) for name in validate.DTYPES}


def cpuinfo_field(name: str, cpuinfo: str = "/proc/cpuinfo") -> str | None:
  """The first `name : value` line's value in `cpuinfo` (None: no such line
  or no such file, e.g. not Linux)."""
  try:
    with open(cpuinfo) as f:
      for line in f:
        if line.startswith(name):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return None


def bfloat16_is_fast(cpuinfo: str = "/proc/cpuinfo") -> bool:
  """Whether this CPU multiplies bfloat16 natively (AVX-512 BF16 or AMX),
  where XLA's bfloat16 matmuls run ~1.5x float32's (benchmarks/
  train_step_vs_torch.py); elsewhere they are emulated and slower. Reads
  `cpuinfo` only (no backend is started)."""
  flags = (cpuinfo_field("flags", cpuinfo) or "").split()
  return "avx512_bf16" in flags or "amx_bf16" in flags


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """Where the encoder comes from: sizes, optional weights, tokenizer."""

  name: str  # What the user asked for (config.model).
  config: BertConfig
  weights_dir: str | None  # HF folder with pretrained weights; None = random.
  tokenizer_dir: str


def model_spec(model: str, tokenizer: str = "", *, dropout: float = -1.0,
               max_length: int | None = None) -> ModelSpec:
  """Resolves a model name and an optional tokenizer.

  Args:
    model: a preset of random weights ('tiny', 'base', 'large'), a packaged
      pretrained preset ('minilm-l6'), a local Hugging Face folder or a hub
      name.
    tokenizer: '' = the model's own (random presets use the 'minilm-l6'
      uncased WordPiece vocabulary).
    dropout: hidden and attention dropout (-1 = the checkpoint's value).
    max_length: if given, checked against the position embeddings.
  """
  if model in PRESETS and model not in pretrained.PACKAGED:
    cfg, weights = PRESETS[model], None
    tok = tokenizer or pretrained.resolve_model_dir("minilm-l6")
  else:
    weights = pretrained.resolve_model_dir(model)
    cfg = pretrained.read_config(weights)
    tok = tokenizer or weights
  if max_length is not None:
    validate.check_max_length(max_length, cfg, model)
  if dropout >= 0:
    cfg = cfg.replace(hidden_dropout_prob=dropout,
                      attention_probs_dropout_prob=dropout)
  if not os.path.isdir(tok):
    tok = pretrained.resolve_model_dir(tok)
  return ModelSpec(model, cfg, weights, tok)


def base_fingerprints(spec: ModelSpec) -> dict[str, str]:
  """Identity of the base model (weights + config) and of the tokenizer."""
  if spec.weights_dir:
    model_fp = pretrained.fingerprint(spec.weights_dir)
  else:  # Random presets: their sizes.
    model_fp = "random-" + hashlib.sha256(
        repr(spec.config).encode()).hexdigest()[:12]
  tok_fp = pretrained.fingerprint(spec.tokenizer_dir,
                                  files=pretrained.TOKENIZER_FILES[:3])
  return {"model": model_fp, "tokenizer": tok_fp}


def create_model(spec: ModelSpec, kind: str, num_labels: int, *, seed: int,
                 dtype: str = "float32",
                 init_from: str = "") -> heads.TaskModel:
  """A TaskModel with pretrained encoder weights (or random) and a fresh head.

  `init_from`: the workdir of an earlier fine-tuning run; its best encoder
  (not its head) replaces the pretrained one (intermediate-task transfer).
  """
  if dtype not in DTYPES:
    raise ConfigError(f"config.dtype={dtype!r}; use one of {sorted(DTYPES)}")
  model = heads.TaskModel(spec.config, kind, num_labels, dtype=DTYPES[dtype],
                          rngs=nnx.Rngs(seed))
  if init_from:
    params, _ = checkpoint.restore(init_from, checkpoint.BEST)
    state = nnx.state(model, nnx.Param)
    pure = nnx.to_pure_dict(state)
    src = params["bert"]
    if jax.tree.map(np.shape, src) != jax.tree.map(np.shape, pure["bert"]):
      raise ConfigError(f"config.init_from={init_from!r}: its encoder has "
                        "other sizes than config.model")
    pure["bert"] = src
    nnx.replace_by_pure_dict(state, pure)
    nnx.update(model, state)
  elif spec.weights_dir:
    missing = pretrained.load_encoder(model, spec.weights_dir)
    if missing:
      logging.warning("not in %s, left at random init: %s", spec.weights_dir,
                      ", ".join(missing))
  return model


def load_finetuned(workdir: str, which: str = checkpoint.BEST,
                   dtype: str = "float32"
                   ) -> tuple[heads.TaskModel, dict[str, Any], Any]:
  """(model, task info, tokenizer) of a training run's best checkpoint."""
  info = checkpoint.read_task_info(workdir)
  cfg = BertConfig(**info["bert_config"])
  labels = info["labels"]
  model = heads.TaskModel(cfg, info["kind"], len(labels or ()),
                          dtype=DTYPES[dtype], rngs=nnx.Rngs(0))
  state = nnx.state(model, nnx.Param)
  state, _ = checkpoint.restore(workdir, which, state)
  nnx.update(model, state)
  tokenizer = input_pipeline.load_tokenizer(info["tokenizer_dir"])
  return model, info, tokenizer


def spec_from_config(config) -> ModelSpec:
  """`model_spec` of a stage's config (model, tokenizer, dropout, length)."""
  return model_spec(config.model, config.get("tokenizer", ""),
                    dropout=config.get("dropout", -1.0),
                    max_length=config.get("max_length"))
