"""Model parity with Hugging Face (fixtures from tests/make_fixtures.py),
checkpoint conversion both ways, export, and parameter counts of presets."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import safetensors.numpy
from flax import nnx

from configs import common
from taskemb_jax import heads, pretrained
from taskemb_jax import model as model_lib
from taskemb_jax.model import PRESETS, Bert, BertConfig, component_names

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
TINY = os.path.join(FIXTURES, "hf_tiny")
KIND_OF = {"seq_cls": ("classification", 3), "seq_reg": ("regression", 1),
           "qa": ("qa", 2), "tok_cls": ("tagging", 5)}


def _batch(npz):
  return {k: jnp.asarray(npz[k]) for k in
          ("input_ids", "token_type_ids", "attention_mask")}


def test_minilm_matches_pytorch_bert():
  """Packaged all-MiniLM-L6-v2 weights: every layer within 1e-4 of PyTorch."""
  ref = np.load(os.path.join(FIXTURES, "minilm_parity.npz"))
  folder = pretrained.resolve_model_dir("minilm-l6")
  model = heads.TaskModel(pretrained.read_config(folder), "classification", 2,
                          rngs=nnx.Rngs(0))
  assert pretrained.load_encoder(model, folder) == []
  b = _batch(ref)
  out = model.bert(b["input_ids"], b["token_type_ids"], b["attention_mask"],
                   output_hidden_states=True)
  mask = ref["attention_mask"].astype(bool)
  err = np.abs(np.asarray(out.last_hidden_state) - ref["last_hidden_state"])
  assert err[mask].max() <= 1e-4, err[mask].max()
  for k, h in enumerate(out.hidden_states):
    e = np.abs(np.asarray(h) - ref["hidden_states"][k])[mask].max()
    assert e <= 1e-4, (k, e)
  np.testing.assert_allclose(out.pooler_output, ref["pooler_output"],
                             atol=1e-4)


@pytest.mark.parametrize("name", sorted(KIND_OF))
def test_hf_heads_load_with_identical_logits(name):
  """Tiny random HF BertFor* checkpoints (with `bert.` prefix and heads)."""
  folder = os.path.join(TINY, name)
  ref = np.load(os.path.join(folder, "expected.npz"))
  kind, n = KIND_OF[name]
  model = heads.TaskModel(pretrained.read_config(folder), kind, n,
                          rngs=nnx.Rngs(1))
  missing = pretrained.load_encoder(model, folder, with_head=True)
  # HF builds QA and token-classification models without a pooler.
  assert set(missing) <= {"bert/pooler/kernel", "bert/pooler/bias"}
  logits = np.asarray(model(_batch(ref)))
  if kind == "qa":
    np.testing.assert_allclose(logits[..., 0], ref["start_logits"], atol=1e-5)
    np.testing.assert_allclose(logits[..., 1], ref["end_logits"], atol=1e-5)
  else:
    np.testing.assert_allclose(logits, ref["logits"], atol=1e-5)
  b = _batch(ref)
  hidden = model.bert(b["input_ids"], b["token_type_ids"],
                      b["attention_mask"]).last_hidden_state
  mask = ref["attention_mask"].astype(bool)
  np.testing.assert_allclose(np.asarray(hidden)[mask],
                             ref["last_hidden_state"][mask], atol=1e-5)


@pytest.mark.parametrize("name", sorted(KIND_OF))
def test_export_writes_hf_names_and_reloads(name, tmp_path):
  folder = os.path.join(TINY, name)
  kind, n = KIND_OF[name]
  cfg = pretrained.read_config(folder)
  model = heads.TaskModel(cfg, kind, n, rngs=nnx.Rngs(2))
  pretrained.load_encoder(model, folder, with_head=True)
  labels = tuple(f"L{i}" for i in range(n)) if kind != "qa" else None
  out = tmp_path / "export"
  pretrained.export_hf(model, str(out), kind=kind, label_names=labels,
                       tokenizer_dir=pretrained.resolve_model_dir("minilm-l6"),
                       config=cfg)
  ours = safetensors.numpy.load_file(out / "model.safetensors")
  theirs = safetensors.numpy.load_file(os.path.join(folder,
                                                    "model.safetensors"))
  # Exactly Hugging Face's tensor names and values.
  assert set(ours) == set(theirs)
  for k in theirs:
    np.testing.assert_array_equal(ours[k], theirs[k], err_msg=k)
  assert (out / "vocab.txt").exists() and (out / "config.json").exists()
  # And our loader reads the export back to the same logits.
  again = heads.TaskModel(pretrained.read_config(str(out)), kind, n,
                          rngs=nnx.Rngs(3))
  pretrained.load_encoder(again, str(out), with_head=True)
  ref = np.load(os.path.join(folder, "expected.npz"))
  np.testing.assert_array_equal(np.asarray(again(_batch(ref))),
                                np.asarray(model(_batch(ref))))


def test_export_loads_in_transformers_with_same_logits(tmp_path):
  """The real check, where torch is installed (not in CI)."""
  torch = pytest.importorskip("torch")
  import transformers  # pylint: disable=import-outside-toplevel
  classes = {"classification": transformers.BertForSequenceClassification,
             "regression": transformers.BertForSequenceClassification,
             "qa": transformers.BertForQuestionAnswering,
             "tagging": transformers.BertForTokenClassification}
  cfg = PRESETS["tiny"].replace(vocab_size=99, max_position_embeddings=64)
  ref = np.load(os.path.join(TINY, "seq_cls", "expected.npz"))
  for kind, n in [("classification", 3), ("regression", 1), ("qa", 2),
                  ("tagging", 4)]:
    model = heads.TaskModel(cfg, kind, n, rngs=nnx.Rngs(4))
    out = tmp_path / kind
    pretrained.export_hf(model, str(out), kind=kind, label_names=None,
                         tokenizer_dir=None, config=cfg)
    hf = classes[kind].from_pretrained(str(out)).eval()
    with torch.no_grad():
      res = hf(**{k: torch.tensor(v, dtype=torch.long)
                  for k, v in _batch(ref).items()})
    ours = np.asarray(model(_batch(ref)))
    if kind == "qa":
      theirs = np.stack([res.start_logits.numpy(), res.end_logits.numpy()], -1)
    else:
      theirs = res.logits.numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-4, err_msg=kind)


@pytest.mark.parametrize("preset,count", [
    # Encoder parameters (embeddings + layers + pooler), as in HF BertModel.
    ("tiny", 1_011_360), ("minilm-l6", 22_713_216), ("base", 109_482_240),
    ("large", 335_141_888)])
def test_preset_parameter_counts(preset, count):
  model = nnx.eval_shape(lambda: Bert(PRESETS[preset], rngs=nnx.Rngs(0)))
  n = sum(np.prod(x.shape) for x in jax.tree.leaves(nnx.state(model)))
  assert n == count


def test_perturbation_is_additive_at_every_component():
  """d(sum of outputs)/d(perturbation) equals a finite difference."""
  cfg = PRESETS["tiny"]
  model = Bert(cfg, rngs=nnx.Rngs(0))
  ids = jnp.array([[101, 2023, 2003, 102, 0]], jnp.int32)
  mask = (ids > 0).astype(jnp.int32)
  names = component_names(cfg)
  zeros = {c: jnp.zeros((1, cfg.hidden_size) if c == "pooler" else
                        (1, 5, cfg.hidden_size)) for c in names}
  base = model(ids, ids * 0, mask, perturb=zeros)
  base_plain = model(ids, ids * 0, mask)
  np.testing.assert_array_equal(base.pooler_output, base_plain.pooler_output)
  for c in names:
    bumped = dict(zeros)
    bumped[c] = zeros[c].at[..., 3].set(1.0)
    out = model(ids, ids * 0, mask, perturb=bumped)
    # A bump at a component changes the pooler output.
    assert np.abs(np.asarray(out.pooler_output - base.pooler_output)).max() > 0


def test_config_rejects_approximate_gelu():
  with pytest.raises(ValueError):
    BertConfig.from_hf_dict({"hidden_act": "gelu_new"})


@pytest.mark.parametrize("shape,rate", [((3, 5, 7), 0.1), ((2, 4, 16, 16), 0.3),
                                        ((1000,), 0.5)])
def test_fast_dropout_equals_nnx_dropout(shape, rate):
  """model.dropout (fused threefry) gives nnx.Dropout's values bit for bit,
  eagerly and under jit, and draws its key from the same stream."""
  x = jax.random.normal(jax.random.key(7), shape)
  module = nnx.Dropout(rate)
  ref = module(x, deterministic=False, rngs=nnx.Rngs(dropout=3))
  ours = model_lib.dropout(module, x, nnx.Rngs(dropout=3))
  np.testing.assert_array_equal(np.asarray(ours), np.asarray(ref))
  jitted = jax.jit(lambda x: model_lib.dropout(module, x,
                                               nnx.Rngs(dropout=3)))(x)
  np.testing.assert_array_equal(np.asarray(jitted), np.asarray(ref))
  key = jax.random.key(11)
  np.testing.assert_array_equal(
      np.asarray(model_lib.threefry_bits(key, shape)),
      np.asarray(jax.random.bits(key, shape, jnp.uint32)))
  assert model_lib.dropout(module, x, None) is x


def test_hub_names_resolve_through_huggingface_hub(monkeypatch):
  """A hub name goes to huggingface_hub (here replaced by a local folder)."""
  import huggingface_hub  # pylint: disable=import-outside-toplevel
  asked = {}

  def fake_download(name, allow_patterns):
    asked["name"], asked["patterns"] = name, allow_patterns
    return os.path.join(TINY, "seq_cls")

  monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
  folder = pretrained.resolve_model_dir("bert-base-uncased")
  assert asked["name"] == "bert-base-uncased"
  assert "model.safetensors" in asked["patterns"]
  assert pretrained.read_config(folder).hidden_size == 32

  def offline(name, allow_patterns):
    raise OSError("We couldn't connect to 'https://huggingface.co'")
  monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
  with pytest.raises(pretrained.UserError, match="packaged preset.*minilm-l6"):
    pretrained.resolve_model_dir("bert-base-uncased")
  with pytest.raises(pretrained.UserError, match="does not exist"):
    pretrained.resolve_model_dir("/no/such/folder")


def _reference_attention(q, k, v, bias, keep, keep_prob):
  """The attention core by plain autodiff-able ops."""
  p = jax.nn.softmax(jnp.einsum("bhqd,bhkd->bhqk", q, k) + bias, axis=-1)
  if keep is not None:
    p = jnp.where(keep, p / keep_prob, 0.0)
  return jnp.einsum("bhqk,bhkd->bhqd", p, v)


@pytest.mark.parametrize("with_dropout", [False, True])
def test_attention_backward_matches_autodiff(with_dropout):
  """model.attention's hand-written backward = autodiff of the plain ops,
  with padded keys, a fully padded example and a dropout mask; also under
  vmap (per-example gradients, as the parameter Fisher takes them)."""
  ks = jax.random.split(jax.random.key(0), 5)
  b, h, t, d = 3, 2, 8, 4
  q, k, v = (jax.random.normal(ks[i], (b, h, t, d)) for i in range(3))
  mask = np.ones((b, t), np.int32)
  mask[1, 5:] = 0
  mask[2] = 0
  bias = jnp.where(mask[:, None, None, :] > 0, 0.0,
                   jnp.finfo(jnp.float32).min)
  keep = (jax.random.bernoulli(ks[3], 0.7, (b, h, t, t)) if with_dropout
          else None)
  g = jax.random.normal(ks[4], (b, h, t, d))

  def loss(fn):
    return lambda q, k, v: jnp.sum(fn(q, k, v, bias, keep, 0.7) * g)

  ours = model_lib.attention(q, k, v, bias, keep, 0.7)
  np.testing.assert_allclose(ours, _reference_attention(q, k, v, bias, keep,
                                                        0.7), atol=1e-6)
  got = jax.grad(loss(model_lib.attention), argnums=(0, 1, 2))(q, k, v)
  want = jax.grad(loss(_reference_attention), argnums=(0, 1, 2))(q, k, v)
  for a, e in zip(got, want):
    assert np.abs(np.asarray(e)).max() > 1e-3  # Not trivially zero.
    np.testing.assert_allclose(a, e, atol=2e-6)

  def one(fn):
    def f(q, k, v, bias, keep):
      return jnp.sum(fn(q[None], k[None], v[None], bias[None],
                        None if keep is None else keep[None], 0.7))
    return jax.vmap(jax.grad(f), in_axes=(0, 0, 0, 0, None if keep is None
                                          else 0))
  np.testing.assert_allclose(one(model_lib.attention)(q, k, v, bias, keep),
                             one(_reference_attention)(q, k, v, bias, keep),
                             atol=2e-6)


def test_dropout_mask_is_reproducible_and_has_the_rate():
  """The same key gives the same mask; the kept share is 1 - rate."""
  module = nnx.Dropout(0.1)
  a = model_lib.dropout_mask(module, (64, 4, 32, 32), nnx.Rngs(dropout=5))
  b = model_lib.dropout_mask(module, (64, 4, 32, 32), nnx.Rngs(dropout=5))
  c = model_lib.dropout_mask(module, (64, 4, 32, 32), nnx.Rngs(dropout=6))
  np.testing.assert_array_equal(a, b)
  assert (np.asarray(a) != np.asarray(c)).mean() > 0.1
  assert abs(float(np.mean(a)) - 0.9) < 0.005
  assert model_lib.dropout_mask(module, (3,), None) is None
  assert model_lib.dropout_mask(nnx.Dropout(0.0), (3,), nnx.Rngs(1)) is None


def test_bfloat16_compute_stays_close_to_pytorch():
  """dtype=bfloat16 (bfloat16 matmul inputs, float32 accumulation): every
  token's final state within 0.05 (cosine >= 0.999) of PyTorch's float32
  output, on the packaged MiniLM (float32 is within 1e-4, above)."""
  ref = np.load(os.path.join(FIXTURES, "minilm_parity.npz"))
  folder = pretrained.resolve_model_dir("minilm-l6")
  model = heads.TaskModel(pretrained.read_config(folder), "classification", 2,
                          dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
  pretrained.load_encoder(model, folder)
  b = _batch(ref)
  out = model.bert(b["input_ids"], b["token_type_ids"], b["attention_mask"])
  mask = ref["attention_mask"].astype(bool)
  ours = np.asarray(out.last_hidden_state)[mask]
  theirs = ref["last_hidden_state"][mask]
  assert out.last_hidden_state.dtype == jnp.float32
  assert np.abs(ours - theirs).max() <= 0.05
  cos = (ours * theirs).sum(-1) / (np.linalg.norm(ours, axis=-1)
                                   * np.linalg.norm(theirs, axis=-1))
  assert cos.min() >= 0.999, cos.min()
  np.testing.assert_allclose(out.pooler_output, ref["pooler_output"],
                             atol=0.01)


def test_bfloat16_matmul_gradients():
  """Both gradients of the bfloat16 matmul are float32 products of the
  bfloat16-rounded operands (the incoming gradient rounded too)."""
  ks = jax.random.split(jax.random.key(1), 3)
  x = jax.random.normal(ks[0], (64, 48))
  w = jax.random.normal(ks[1], (48, 40))
  g = jax.random.normal(ks[2], (64, 40))
  bf = lambda a: a.astype(jnp.bfloat16).astype(jnp.float32)  # pylint: disable=unnecessary-lambda-assignment
  y, vjp = jax.vjp(
      lambda x, w: model_lib._low_precision_matmul(x, w, jnp.bfloat16), x, w)  # pylint: disable=protected-access
  dx, dw = vjp(g)
  np.testing.assert_allclose(y, bf(x) @ bf(w), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(dx, bf(g) @ bf(w).T, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(dw, bf(x).T @ bf(g), rtol=1e-5, atol=1e-5)
  assert dx.dtype == dw.dtype == jnp.float32
  # And close to the float32 gradient.
  np.testing.assert_allclose(dw, x.T @ g, rtol=0.05, atol=0.3)


def _classification_batch(b=4, t=24, seed=0):
  rng = np.random.default_rng(seed)
  ids = rng.integers(1000, 5000, (b, t)).astype(np.int32)
  mask = np.ones((b, t), np.int32)
  mask[1, 10:] = 0
  mask[3, 5:] = 0
  return {"input_ids": jnp.asarray(ids), "token_type_ids": jnp.zeros_like(ids),
          "attention_mask": jnp.asarray(mask),
          "label": jnp.asarray(rng.integers(0, 3, (b,)), jnp.int32),
          "weights": jnp.ones((b,), jnp.float32)}


def _loss_and_grads(model, batch, dropout_seed):
  def loss(m):
    logits = m(batch, rngs=nnx.Rngs(dropout=dropout_seed))
    total, count = heads.batch_loss(m.kind, logits, batch)
    return total / count
  value, grads = nnx.value_and_grad(loss)(model)
  # The unused token type's embedding row gets no gradient.
  return float(value), {
      k: np.asarray(g) for k, g in pretrained.flatten(nnx.to_pure_dict(
          nnx.state(grads, nnx.Param))).items()
      if "token_type" not in k}


def _plain_attention(q, k, v, bias, keep, keep_prob, dtype=jnp.float32):
  del dtype  # float32 only.
  return _reference_attention(q, k, v, bias, keep, keep_prob)


def _plain_linear(layer, x):
  return layer(x)


def test_float32_model_matches_the_autodiff_formulation(monkeypatch):
  """The float32 model (attention core with its hand-written backward, 2-D
  matmuls) against the same model with the plain autodiff attention and
  nnx.Linear: loss within 1e-6 and every gradient leaf within 1e-5 of its
  largest entry, with dropout (hidden and attention, 0.1) and padding."""
  cfg = PRESETS["tiny"].replace(hidden_dropout_prob=0.1,
                                attention_probs_dropout_prob=0.1)
  model = heads.TaskModel(cfg, "classification", 3, rngs=nnx.Rngs(0))
  batch = _classification_batch()
  loss, grads = _loss_and_grads(model, batch, dropout_seed=5)
  monkeypatch.setattr(model_lib, "attention", _plain_attention)
  monkeypatch.setattr(model_lib, "_linear", _plain_linear)
  ref_loss, ref_grads = _loss_and_grads(model, batch, dropout_seed=5)
  assert abs(loss - ref_loss) <= 1e-6 * abs(ref_loss), (loss, ref_loss)
  assert grads.keys() == ref_grads.keys() and len(grads) > 20
  for name, e in ref_grads.items():
    scale = np.abs(e).max()
    assert scale > 0, name
    err = np.abs(grads[name] - e).max() / scale
    assert err <= 1e-5, (name, err)


def test_bfloat16_training_gradients_stay_close_to_float32():
  """dtype=bfloat16 is opt-in (config.dtype) and approximate: on the tiny
  model the loss is within 1% of float32's and every gradient leaf within
  5% of float32's (relative L2 norm); float32 stays the default."""
  assert common.get_config().dtype == "float32"
  cfg = PRESETS["tiny"]
  batch = _classification_batch(seed=1)
  out = {}
  for dtype in (jnp.float32, jnp.bfloat16):
    model = heads.TaskModel(cfg, "classification", 3, dtype=dtype,
                            rngs=nnx.Rngs(0))
    out[dtype] = _loss_and_grads(model, batch, dropout_seed=0)
  (l32, g32), (l16, g16) = out[jnp.float32], out[jnp.bfloat16]
  assert abs(l16 - l32) <= 0.01 * abs(l32), (l16, l32)
  for name, e in g32.items():
    assert g16[name].dtype == np.float32
    err = np.linalg.norm(g16[name] - e) / np.linalg.norm(e)
    assert err <= 0.05, (name, err)


def test_bfloat16_is_fast_reads_the_cpu_flags(tmp_path):
  from taskemb_jax import encoders  # pylint: disable=import-outside-toplevel
  def info(flags):
    path = tmp_path / f"cpuinfo-{len(flags)}"
    path.write_text("processor\t: 0\nmodel name\t: X\nflags\t\t: "
                    + " ".join(flags) + "\n")
    return str(path)
  assert encoders.bfloat16_is_fast(info(["fma", "avx512f", "avx512_bf16"]))
  assert encoders.bfloat16_is_fast(info(["fma", "amx_tile", "amx_bf16"]))
  assert not encoders.bfloat16_is_fast(info(["fma", "avx2", "avx512f"]))
  assert not encoders.bfloat16_is_fast(str(tmp_path / "missing"))
