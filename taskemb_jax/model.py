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

Performance notes (CPU; measured by benchmarks/train_step_vs_torch.py and
benchmarks/train_step_experiments.py, which appends every experiment, also
those that did not help, to benchmarks/results/train_step_experiments.json):

* Dense layers run on 2-D ``[batch * length, features]`` views. With 3-D
  activations the weight gradient is a dot contracting two dimensions, which
  XLA:CPU lowers with explicit transposes of the activations; on 2-D views
  it is one plain GEMM.
* The attention core (`attention`: scores, softmax, dropout, context) has a
  hand-written backward that keeps the probabilities and the dropout mask;
  autodiff's version of the block took about 1.5 times as long.
* With dtype bfloat16 the dense matmuls take bfloat16 inputs with float32
  accumulation and outputs (`_low_precision_matmul`), the form XLA:CPU runs
  on AMX / AVX-512 BF16 units; activations, LayerNorm, softmax and the
  parameters stay float32.
* GELU uses the erf form of BERT/PyTorch, ``x/2 * (1 + erf(x/sqrt(2)))``,
  which XLA:CPU computes much faster than `jax.nn.gelu`'s erfc form.
* Dropout (`dropout_mask`) draws exactly the masks of `nnx.Dropout`
  (threefry-2x32, partitionable, so independent of the number of devices),
  with the hash written out as one element-wise expression that XLA fuses
  into the masking: 9x faster than `jax.random.bernoulli` with threefry,
  rbg or unsafe_rbg keys on XLA:CPU (benchmarks/dropout_bits.py). XLA
  fuses the hash into the backward's masking again rather than storing the
  mask; a 2x cheaper hash or a stored, bit-packed mask gained ~3% of a step
  (within noise) and were not adopted.
* No XLA flags are set: 512-bit vectors, fast math, oneDNN or Eigen
  instead of YNNPACK, and the concurrency-optimized scheduler were measured
  without a gain beyond noise. What does matter is process-wide:
  `sharding.configure_jax` makes glibc keep freed memory, so that a step
  reuses its temporaries instead of page-faulting them in again.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
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


def _linear(layer: nnx.Linear, x: Array) -> Array:
  """`layer` applied to the last axis of `x` through a 2-D view of `x`.

  float32 result; with ``layer.dtype`` bfloat16 the matmul inputs are
  bfloat16 (`_low_precision_matmul`).
  """
  x2 = x.reshape(-1, x.shape[-1])
  kernel = layer.kernel.value
  if layer.dtype in (None, jnp.float32):
    y = jnp.dot(x2, kernel, precision=layer.precision)
  else:
    y = _low_precision_matmul(x2.astype(jnp.float32),
                              kernel.astype(jnp.float32), layer.dtype)
  if layer.bias is not None:
    y = y + layer.bias.value
  return y.reshape(*x.shape[:-1], y.shape[-1])


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _low_precision_matmul(x: Array, w: Array, dtype) -> Array:
  """float32 x [n, in] @ w [in, out] with inputs rounded to `dtype`,
  float32 accumulation and result, and both gradients likewise.

  Written out because XLA:CPU runs bfloat16 matmuls on its fast path (AMX /
  AVX-512 BF16 where the CPU has them) only with float32 accumulation, and
  the weight gradient only when written as a contraction over a unit
  leading axis too: autodiff's plain ``x^T @ g`` is converted to float32
  and runs at a third of the speed (benchmarks/train_step_experiments.py).
  """
  return jnp.dot(x.astype(dtype), w.astype(dtype),
                 preferred_element_type=jnp.float32)


def _low_precision_matmul_fwd(x, w, dtype):
  xc, wc = x.astype(dtype), w.astype(dtype)
  return jnp.dot(xc, wc, preferred_element_type=jnp.float32), (xc, wc)


def _low_precision_matmul_bwd(dtype, res, g):
  xc, wc = res
  g = g.astype(dtype)
  dx = jax.lax.dot_general(g, wc, (((1,), (1,)), ((), ())),
                           preferred_element_type=jnp.float32)
  dw = jnp.einsum("kni,kno->io", xc[None], g[None],
                  preferred_element_type=jnp.float32)
  return dx, dw


_low_precision_matmul.defvjp(_low_precision_matmul_fwd,
                             _low_precision_matmul_bwd)


def gelu(x: Array) -> Array:
  """BERT's exact GELU, ``x * (1 + erf(x / sqrt(2))) / 2`` (as in PyTorch)."""
  return 0.5 * x * (1.0 + jax.lax.erf(x * (1.0 / math.sqrt(2.0))))


def _rotl32(x: Array, r: int) -> Array:
  return (x << jnp.uint32(r)) | (x >> jnp.uint32(32 - r))


def threefry_bits(key: Array, shape: tuple[int, ...]) -> Array:
  """`jax.random.bits(key, shape, jnp.uint32)` for a threefry2x32 key.

  The same bits as JAX's partitionable threefry (the default,
  ``jax_threefry_partitionable``): threefry-2x32 of the flat index (as a
  64-bit counter split into two words), the two output words xor-ed. The
  20 rounds are written out so that XLA fuses them with their consumer.
  Arrays of 2^32 or more elements are not supported.
  """
  k = jax.random.key_data(key).astype(jnp.uint32)
  ks = (k[0], k[1], k[0] ^ k[1] ^ jnp.uint32(0x1BD11BDA))
  index = jnp.zeros(shape, jnp.uint32)
  stride = 1
  for d in range(len(shape) - 1, -1, -1):
    index = index + jax.lax.broadcasted_iota(jnp.uint32, shape, d) * \
        jnp.uint32(stride)
    stride *= shape[d]
  x0 = jnp.zeros(shape, jnp.uint32) + ks[0]  # High word of the counter: 0.
  x1 = index + ks[1]
  rotations = ((13, 15, 26, 6), (17, 29, 16, 24))
  for i in range(5):
    for r in rotations[i % 2]:
      x0 = x0 + x1
      x1 = x0 ^ _rotl32(x1, r)
    x0 = x0 + ks[(i + 1) % 3]
    x1 = x1 + ks[(i + 2) % 3] + jnp.uint32(i + 1)
  return x0 ^ x1


def _fast_dropout_ok(module: nnx.Dropout, size: int, key: Array) -> bool:
  return (not module.broadcast_dims and size < 2 ** 32
          and jax.config.jax_threefry_partitionable
          and jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
          and str(jax.random.key_impl(key)) == "threefry2x32")


def dropout_mask(module: nnx.Dropout, shape: tuple[int, ...],
                 rngs: nnx.Rngs | None) -> Array | None:
  """The keep mask (bool, `shape`) of `module`, or None without dropout.

  Draws the key from `rngs` as `nnx.Dropout` does and gives its mask bit for
  bit (that of `jax.random.bernoulli`); see `threefry_bits`. None when
  `rngs` is None (evaluation) or the rate is 0.
  """
  if rngs is None or module.rate == 0.0:
    return None
  if module.rate == 1.0:
    return jnp.zeros(shape, bool)
  key = rngs[module.rng_collection]()
  keep_prob = 1.0 - module.rate
  if not _fast_dropout_ok(module, math.prod(shape), key):
    return jax.random.bernoulli(key, keep_prob, shape)
  return _keep_mask(key, tuple(shape), keep_prob)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _keep_mask(key: Array, shape: tuple[int, ...], keep_prob: float) -> Array:
  """`jax.random.bernoulli(key, keep_prob, shape)` from `threefry_bits`.

  Its own jit: a step's ~20 masks of 2 shapes are traced twice, not 20
  times (the rounds' ~100 small operations cost most of a train step's
  trace otherwise); XLA inlines the call and fuses it as before.
  """
  bits = threefry_bits(key, shape)
  # jax.random.uniform's float construction, then bernoulli's comparison.
  u = jax.lax.bitcast_convert_type(
      (bits >> jnp.uint32(9)) | jnp.uint32(0x3F800000), jnp.float32) - 1.0
  return jnp.maximum(0.0, u) < jnp.float32(keep_prob)


def dropout(module: nnx.Dropout, x: Array, rngs: nnx.Rngs | None) -> Array:
  """`module(x, deterministic=rngs is None, rngs=rngs)`, faster on CPU.

  The same values bit for bit (`dropout_mask`).
  """
  keep = dropout_mask(module, x.shape, rngs)
  if keep is None:
    return x
  if module.rate == 1.0:
    return jnp.zeros_like(x)
  return jax.lax.select(keep, x / (1.0 - module.rate), jnp.zeros_like(x))


def _softmax_probs(q: Array, k: Array, bias: Array, dtype) -> Array:
  """softmax(q k^T + bias) over keys, float32 [batch, heads, q, k]."""
  s = jnp.einsum("bhqd,bhkd->bhqk", q.astype(dtype), k.astype(dtype),
                 preferred_element_type=jnp.float32) + bias
  e = jnp.exp(s - s.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def _drop(p: Array, keep: Array | None, keep_prob: float) -> Array:
  return p if keep is None else jnp.where(keep, p / keep_prob, 0.0)


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6))
def attention(q: Array, k: Array, v: Array, bias: Array, keep: Array | None,
              keep_prob: float, dtype=jnp.float32) -> Array:
  """Multi-head attention core: dropout(softmax(q k^T + bias)) v.

  Args:
    q, k, v: [batch, heads, length, head_dim]; q already scaled by
      1/sqrt(head_dim).
    bias: float32, broadcastable to [batch, heads, length, length] (0 or
      the most negative float for masked keys).
    keep: bool [batch, heads, length, length] dropout mask of the
      probabilities, or None.
    keep_prob: 1 - the dropout rate (static).
    dtype: dtype of the matmul inputs (static); accumulation, softmax and
      the result are float32.
  Returns:
    float32 [batch, heads, length, head_dim].

  The gradient is written by hand (the probabilities and the mask are kept
  from the forward pass; softmax's backward is one expression): on XLA:CPU
  autodiff's version of this block took about 1.5 times as long.
  """
  p = _drop(_softmax_probs(q, k, bias, dtype), keep, keep_prob)
  return jnp.einsum("bhqk,bhkd->bhqd", p.astype(dtype), v.astype(dtype),
                    preferred_element_type=jnp.float32)


def _attention_fwd(q, k, v, bias, keep, keep_prob, dtype):
  p = _softmax_probs(q, k, bias, dtype)
  out = jnp.einsum("bhqk,bhkd->bhqd", _drop(p, keep, keep_prob).astype(dtype),
                   v.astype(dtype), preferred_element_type=jnp.float32)
  return out, (q, k, v, p, keep)


def _attention_bwd(keep_prob, dtype, res, g):
  q, k, v, p, keep = res
  g = g.astype(dtype)
  dv = jnp.einsum("bhqk,bhqd->bhkd", _drop(p, keep, keep_prob).astype(dtype),
                  g, preferred_element_type=jnp.float32)
  dp = _drop(jnp.einsum("bhqd,bhkd->bhqk", g, v.astype(dtype),
                        preferred_element_type=jnp.float32), keep, keep_prob)
  ds = (p * (dp - (dp * p).sum(-1, keepdims=True))).astype(dtype)
  dq = jnp.einsum("bhqk,bhkd->bhqd", ds, k.astype(dtype),
                  preferred_element_type=jnp.float32)
  dk = jnp.einsum("bhqk,bhqd->bhkd", ds, q.astype(dtype),
                  preferred_element_type=jnp.float32)
  return (dq.astype(q.dtype), dk.astype(k.dtype), dv.astype(v.dtype), None,
          None)


attention.defvjp(_attention_fwd, _attention_bwd)


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
    return dropout(self.dropout, x, rngs)


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
    # One transpose to [3, batch, heads, length, hd] for the batched dots.
    qkv = _linear(self.qkv, x).reshape(b, t, 3, nh, hd)
    qkv = qkv.transpose(2, 0, 3, 1, 4)
    keep = dropout_mask(self.attn_dropout, (b, nh, t, t), rngs)
    ctx = attention(qkv[0] * (1.0 / math.sqrt(hd)), qkv[1], qkv[2], mask_bias,
                    keep, 1.0 - self.attn_dropout.rate, self.dtype)
    ctx = ctx.transpose(0, 2, 1, 3).reshape(b, t, h)
    ctx = _add(ctx, perturb, f"{name}/attention")
    y = dropout(self.dropout, _linear(self.output, ctx), rngs)
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
    m = gelu(_linear(self.intermediate, a))
    y = dropout(self.dropout, _linear(self.output, m), rngs)
    y = self.layer_norm((y + a).astype(jnp.float32))
    return _add(y, perturb, f"{name}/output")


def _apply_layer(layer: Layer, x: Array, mask_bias: Array,
                 rngs: nnx.Rngs | None, perturb: Mapping[str, Array] | None,
                 name: str) -> Array:
  """`layer(x, mask_bias, rngs=rngs, perturb=perturb, name=name)`, traced
  once for all the layers (`_layer_jit`): the same values and dropout keys.
  """
  drops = (layer.attention.attn_dropout, layer.attention.dropout,
           layer.dropout)  # In the order the layer draws their keys.
  keys = None if rngs is None else tuple(
      rngs[m.rng_collection]() for m in drops if 0.0 < m.rate < 1.0)
  local = None
  if perturb is not None:
    local = {f"layer/{c}": perturb[f"{name}/{c}"]
             for c in ("attention", "output") if f"{name}/{c}" in perturb}
  graphdef, state = nnx.split(layer)
  return _layer_jit(graphdef, state, x, mask_bias, keys, local or None)


@functools.partial(jax.jit, static_argnums=0)
def _layer_jit(graphdef: nnx.GraphDef, state: nnx.State, x: Array,
               mask_bias: Array, keys: tuple[Array, ...] | None,
               perturb: Mapping[str, Array] | None) -> Array:
  """One `Layer` (its own jit, inlined by XLA): layers of equal structure
  and shapes share its trace, so a step's program traces one layer instead
  of all of them (most of a train step's trace time otherwise)."""
  layer = nnx.merge(graphdef, state)
  # Stands for nnx.Rngs: rngs[collection]() hands out the keys drawn before.
  it = iter(keys or ())
  rngs = None if keys is None else collections.defaultdict(lambda: it.__next__)
  return layer(x, mask_bias, rngs=rngs, perturb=perturb, name="layer")


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
      x = _apply_layer(layer, x, mask_bias, rngs, perturb, f"layer_{k}")
      states.append(x)
    pooled = jnp.tanh(_linear(self.pooler, x[:, 0]))
    pooled = _add(pooled, perturb, "pooler")
    return BertOutput(
        last_hidden_state=x, pooler_output=pooled,
        hidden_states=tuple(states) if output_hidden_states else None)
