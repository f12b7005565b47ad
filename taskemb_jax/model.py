"""BERT encoder in Flax NNX: embeddings, transformer layers, pooler.

The layout follows Hugging Face's `BertModel` so that checkpoints convert by a
table of names (`taskemb_jax.pretrained`). Two additions serve task embeddings:

* `perturb`: a dict of arrays added to named *components* of the forward pass
  (zeros in practice). The gradient of a loss with respect to such a zero
  perturbation is the gradient with respect to the component's activation,
  for every example and token at once (`taskemb_jax.embeddings`).
* `BertOutput.hidden_states` can return every layer's output.

Component names (`component_names`): ``embeddings`` (output of the embedding
LayerNorm), ``layer_{k}/attention`` (concatenated multi-head context vectors,
before the attention output projection), ``layer_{k}/output`` (the block's
output), ``pooler`` (tanh pooler output); k counts from 0.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

import flax.struct
import jax
import jax.numpy as jnp
from flax import nnx

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class BertConfig:
  """Sizes of a BERT encoder (names as in Hugging Face `BertConfig`)."""

  vocab_size: int = 30522
  hidden_size: int = 768
  num_hidden_layers: int = 12
  num_attention_heads: int = 12
  intermediate_size: int = 3072
  max_position_embeddings: int = 512
  type_vocab_size: int = 2
  layer_norm_eps: float = 1e-12
  hidden_dropout_prob: float = 0.1
  attention_probs_dropout_prob: float = 0.1
  initializer_range: float = 0.02
  pad_token_id: int = 0

  @property
  def head_dim(self) -> int:
    return self.hidden_size // self.num_attention_heads

  def replace(self, **kwargs) -> "BertConfig":
    return dataclasses.replace(self, **kwargs)

  @classmethod
  def from_hf_dict(cls, d: Mapping[str, Any]) -> "BertConfig":
    """Builds a config from a Hugging Face `config.json` dict."""
    act = d.get("hidden_act", "gelu")
    if act != "gelu":
      raise ValueError(f"hidden_act {act!r} not supported (only exact 'gelu')")
    if d.get("position_embedding_type", "absolute") != "absolute":
      raise ValueError("only absolute position embeddings are supported")
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in d.items() if k in names and v is not None})

  def to_hf_dict(self) -> dict[str, Any]:
    d = dataclasses.asdict(self)
    d.update(model_type="bert", hidden_act="gelu",
             position_embedding_type="absolute")
    return d


# Named presets. `tiny` is the CPU test mode: random weights, trains in seconds.
PRESETS: dict[str, BertConfig] = {
    "tiny": BertConfig(hidden_size=32, num_hidden_layers=2,
                       num_attention_heads=4, intermediate_size=64,
                       max_position_embeddings=512),
    "minilm-l6": BertConfig(hidden_size=384, num_hidden_layers=6,
                            num_attention_heads=12, intermediate_size=1536),
    "base": BertConfig(),
    "large": BertConfig(hidden_size=1024, num_hidden_layers=24,
                        num_attention_heads=16, intermediate_size=4096),
}


def component_names(config: BertConfig, pooler: bool = True) -> list[str]:
  """The components whose activations TaskEmb can use, in forward order."""
  names = ["embeddings"]
  for k in range(config.num_hidden_layers):
    names += [f"layer_{k}/attention", f"layer_{k}/output"]
  if pooler:
    names.append("pooler")
  return names


@flax.struct.dataclass
class BertOutput:
  last_hidden_state: Array  # [batch, length, hidden]
  pooler_output: Array  # [batch, hidden]
  hidden_states: tuple[Array, ...] | None = None  # (layers + 1) x [batch, length, hidden]


def _dense(din: int, dout: int, cfg: BertConfig, dtype, rngs: nnx.Rngs):
  init = nnx.initializers.truncated_normal(stddev=cfg.initializer_range)
  return nnx.Linear(din, dout, kernel_init=init, dtype=dtype, rngs=rngs)


def _layer_norm(dim: int, cfg: BertConfig, rngs: nnx.Rngs):
  # LayerNorm always runs in float32, also under bf16 compute.
  return nnx.LayerNorm(dim, epsilon=cfg.layer_norm_eps, dtype=jnp.float32,
                       rngs=rngs)


def _add(x: Array, perturb: Mapping[str, Array] | None, name: str) -> Array:
  if perturb is not None and name in perturb:
    return x + perturb[name].astype(x.dtype)
  return x


class Embeddings(nnx.Module):
  """Word + position + token-type embeddings, LayerNorm, dropout."""

  def __init__(self, cfg: BertConfig, *, dtype=jnp.float32, rngs: nnx.Rngs):
    init = nnx.initializers.truncated_normal(stddev=cfg.initializer_range)
    h = cfg.hidden_size
    self.word_embeddings = nnx.Embed(cfg.vocab_size, h, embedding_init=init,
                                     dtype=dtype, rngs=rngs)
    self.position_embeddings = nnx.Embed(cfg.max_position_embeddings, h,
                                         embedding_init=init, dtype=dtype,
                                         rngs=rngs)
    self.token_type_embeddings = nnx.Embed(cfg.type_vocab_size, h,
                                           embedding_init=init, dtype=dtype,
                                           rngs=rngs)
    self.layer_norm = _layer_norm(h, cfg, rngs)
    self.dropout = nnx.Dropout(cfg.hidden_dropout_prob)

  def __call__(self, input_ids: Array, token_type_ids: Array, *, rngs,
               perturb) -> Array:
    """input_ids, token_type_ids: [batch, length] -> [batch, length, hidden]."""
    length = input_ids.shape[1]
    x = (self.word_embeddings(input_ids)
         + self.position_embeddings(jnp.arange(length)[None])
         + self.token_type_embeddings(token_type_ids))
    x = self.layer_norm(x.astype(jnp.float32))
    x = _add(x, perturb, "embeddings")
    return self.dropout(x, deterministic=rngs is None, rngs=rngs)


class SelfAttention(nnx.Module):
  """Multi-head self-attention with a fused query/key/value projection."""

  def __init__(self, cfg: BertConfig, *, dtype=jnp.float32, rngs: nnx.Rngs):
    h = cfg.hidden_size
    self.cfg = cfg
    self.dtype = dtype
    # Fused [hidden, 3 * hidden] kernel: one large matmul instead of three.
    self.qkv = _dense(h, 3 * h, cfg, dtype, rngs)
    self.output = _dense(h, h, cfg, dtype, rngs)
    self.layer_norm = _layer_norm(h, cfg, rngs)
    self.attn_dropout = nnx.Dropout(cfg.attention_probs_dropout_prob)
    self.dropout = nnx.Dropout(cfg.hidden_dropout_prob)

  def __call__(self, x: Array, mask_bias: Array, *, rngs, perturb,
               name: str) -> Array:
    """x: [batch, length, hidden]; mask_bias: [batch, 1, 1, length]."""
    b, t, h = x.shape
    nh, hd = self.cfg.num_attention_heads, self.cfg.head_dim
    qkv = self.qkv(x).reshape(b, t, 3, nh, hd)
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # [b, t, heads, hd]
    scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(hd)
    probs = jax.nn.softmax(scores.astype(jnp.float32) + mask_bias, axis=-1)
    probs = self.attn_dropout(probs, deterministic=rngs is None, rngs=rngs)
    ctx = jnp.einsum("bhqk,bkhd->bqhd", probs.astype(self.dtype), v)
    ctx = _add(ctx.reshape(b, t, h), perturb, f"{name}/attention")
    y = self.dropout(self.output(ctx), deterministic=rngs is None, rngs=rngs)
    return self.layer_norm((y + x).astype(jnp.float32))


class Layer(nnx.Module):
  """One transformer block: self-attention then the feed-forward network."""

  def __init__(self, cfg: BertConfig, *, dtype=jnp.float32, rngs: nnx.Rngs):
    self.attention = SelfAttention(cfg, dtype=dtype, rngs=rngs)
    self.intermediate = _dense(cfg.hidden_size, cfg.intermediate_size, cfg,
                               dtype, rngs)
    self.output = _dense(cfg.intermediate_size, cfg.hidden_size, cfg, dtype,
                         rngs)
    self.layer_norm = _layer_norm(cfg.hidden_size, cfg, rngs)
    self.dropout = nnx.Dropout(cfg.hidden_dropout_prob)

  def __call__(self, x: Array, mask_bias: Array, *, rngs, perturb,
               name: str) -> Array:
    """x: [batch, length, hidden] -> [batch, length, hidden]."""
    a = self.attention(x, mask_bias, rngs=rngs, perturb=perturb, name=name)
    # BERT's GELU is the exact erf form, not the tanh approximation.
    m = jax.nn.gelu(self.intermediate(a), approximate=False)
    y = self.dropout(self.output(m), deterministic=rngs is None, rngs=rngs)
    y = self.layer_norm((y + a).astype(jnp.float32))
    return _add(y, perturb, f"{name}/output")


class Bert(nnx.Module):
  """The BERT encoder with its pooler.

  Attributes: `embeddings`, `layers` (a list of `Layer`), `pooler`.
  `dtype` is the compute dtype of the matmuls (float32 or bfloat16);
  parameters, LayerNorm and softmax stay in float32.
  """

  def __init__(self, cfg: BertConfig, *, dtype=jnp.float32, rngs: nnx.Rngs):
    self.cfg = cfg
    self.embeddings = Embeddings(cfg, dtype=dtype, rngs=rngs)
    self.layers = nnx.List(
        [Layer(cfg, dtype=dtype, rngs=rngs)
         for _ in range(cfg.num_hidden_layers)])
    self.pooler = _dense(cfg.hidden_size, cfg.hidden_size, cfg, dtype, rngs)

  def __call__(self, input_ids: Array, token_type_ids: Array,
               attention_mask: Array, *, rngs: nnx.Rngs | None = None,
               perturb: Mapping[str, Array] | None = None,
               output_hidden_states: bool = False) -> BertOutput:
    """Encodes a batch.

    Args:
      input_ids, token_type_ids, attention_mask: int [batch, length].
      rngs: dropout randomness; None runs deterministically (eval).
      perturb: optional {component name: array} added to the activations,
        [batch, length, hidden] (or [batch, hidden] for ``pooler``).
      output_hidden_states: also return every layer's output.
    """
    mask_bias = jnp.where(attention_mask[:, None, None, :] > 0, 0.0,
                          jnp.finfo(jnp.float32).min)
    x = self.embeddings(input_ids, token_type_ids, rngs=rngs, perturb=perturb)
    states = [x]
    for k, layer in enumerate(self.layers):
      x = layer(x, mask_bias, rngs=rngs, perturb=perturb, name=f"layer_{k}")
      states.append(x)
    pooled = jnp.tanh(self.pooler(x[:, 0]).astype(jnp.float32))
    pooled = _add(pooled, perturb, "pooler")
    return BertOutput(
        last_hidden_state=x, pooler_output=pooled,
        hidden_states=tuple(states) if output_hidden_states else None)
