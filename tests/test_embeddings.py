"""TaskEmb / TextEmb: exact cases, three-way agreement, invariances, stages."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import synthetic
from configs import tiny
from taskemb_jax import data, embed, embeddings, encoders, heads, input_pipeline
from taskemb_jax import library, sharding
from taskemb_jax.model import PRESETS, component_names

CFG = PRESETS["tiny"].replace(hidden_dropout_prob=0.1,
                              attention_probs_dropout_prob=0.1)
TOKENIZER = None


def tokenizer():
  global TOKENIZER
  if TOKENIZER is None:
    TOKENIZER = input_pipeline.load_tokenizer(
        encoders.spec_from_config(tiny.get_config()).tokenizer_dir)
  return TOKENIZER


def make(kind, n=12, max_length=64, seed=0):
  """A tiny model (random, perturbed head) and a split of synthetic data."""
  records = synthetic.make_records(kind, n, seed=seed)
  labels = {"classification": ["negative", "positive"],
            "tagging": ["B-ANIMAL", "O"]}.get(kind)
  l2i = {l: i for i, l in enumerate(labels)} if labels else None
  feats = input_pipeline.encode(kind, records, tokenizer(),
                                max_length=max_length, label_to_id=l2i,
                                doc_stride=16, max_query_length=16)
  model = heads.TaskModel(CFG, kind, len(labels or ()), rngs=nnx.Rngs(seed))
  # Larger head weights so that gradients are far from zero everywhere.
  head = model.qa_outputs if kind == "qa" else model.classifier
  head.kernel.value = head.kernel.value * 50
  return model, data.Split(records, feats)


def batch_of(split, batch_size, buckets=(32, 64)):
  return next(input_pipeline.batches(split.features, batch_size,
                                     buckets=buckets, shuffle=False))


def run_fisher(model, batch, kind, estimator="empirical", **kw):
  comps = tuple(component_names(CFG, pooler=kind in ("classification",
                                                     "regression")))
  return jax.jit(lambda s, b, k: embeddings.fisher_step(
      nnx.graphdef(model), s, b, k, kind=kind, components=comps,
      estimator=estimator, **kw))(nnx.state(model), batch, jax.random.key(0))


KINDS = ["classification", "regression", "qa", "tagging"]


@pytest.mark.parametrize("kind", ["classification", "regression"])
def test_pooler_fisher_matches_the_closed_form(kind):
  """dL/dpooler by hand: W (softmax - onehot) for CE, 2 (pred - y) w for MSE."""
  model, split = make(kind)
  batch = batch_of(split, 16)
  out = run_fisher(model, batch, kind)
  pooled = np.asarray(model.bert(batch["input_ids"], batch["token_type_ids"],
                                 batch["attention_mask"]).pooler_output,
                      np.float64)
  w_ = np.asarray(model.classifier.kernel.value, np.float64)  # [hidden, C]
  b_ = np.asarray(model.classifier.bias.value, np.float64)
  logits = pooled @ w_ + b_
  if kind == "classification":
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(len(p)), batch["label"]] -= 1.0
    grads = p @ w_.T
  else:
    grads = 2 * (logits[:, 0] - batch["label"])[:, None] * w_[:, 0][None]
  expected = (grads ** 2 * batch["weights"][:, None]).sum(0)
  np.testing.assert_allclose(out["pooler"], expected, rtol=2e-4, atol=1e-9)
  assert float(out["count"]) == 12


@pytest.mark.parametrize("kind", KINDS)
def test_batched_trick_vmap_and_loop_agree(kind):
  model, split = make(kind, n=6)
  batch = batch_of(split, 8)
  comps = tuple(component_names(CFG, pooler=kind in ("classification",
                                                     "regression")))
  batched = run_fisher(model, batch, kind)
  # vmap: every example is its own batch of one.
  g = embeddings.per_example_activation_grads(model, batch, comps)
  mask = jnp.asarray(batch["attention_mask"], jnp.float32)
  via_vmap = embeddings.token_average(jax.tree.map(jnp.square, g), mask,
                                      jnp.asarray(batch["weights"]))
  # Naive loop: one example at a time through fisher_step.
  loop = {c: 0.0 for c in comps}
  for i in range(6):
    one = {k: v[i:i + 1] for k, v in batch.items()}
    res = run_fisher(model, one, kind)
    for c in comps:
      loop[c] = loop[c] + np.asarray(res[c])
  for c in comps:
    scale = np.abs(loop[c]).max()
    assert scale > 0, c
    np.testing.assert_allclose(batched[c], loop[c], rtol=1e-4,
                               atol=1e-6 * scale, err_msg=c)
    np.testing.assert_allclose(via_vmap[c], loop[c], rtol=1e-4,
                               atol=1e-6 * scale, err_msg=c)


@pytest.mark.parametrize("kind", ["classification", "qa", "tagging"])
def test_invariant_to_batch_size_and_padding(kind):
  model, split = make(kind, n=12)
  cfg = tiny.get_config()
  mesh = sharding.make_mesh()
  opts = embeddings.FisherOptions()
  results = []
  for batch_size, max_length in ((4, 64), (16, 64), (16, 128)):
    cfg.eval_batch_size, cfg.max_length = batch_size, max_length
    emb, n = embeddings.compute_taskemb(model, split, mesh, opts,
                                        batch_size=batch_size,
                                        max_length=max_length)
    assert n == len(split.features["input_ids"])
    results.append(emb)
  for other in results[1:]:
    for c in results[0]:
      np.testing.assert_allclose(other[c], results[0][c], rtol=1e-4,
                                 atol=1e-9, err_msg=c)


def test_token_average_by_hand():
  sq = {"x": jnp.arange(2 * 3 * 2, dtype=jnp.float32).reshape(2, 3, 2),
        "pooler": jnp.array([[1.0, 2.0], [3.0, 4.0]])}
  mask = jnp.array([[1, 1, 0], [1, 1, 1]], jnp.float32)
  w = jnp.array([1.0, 1.0])
  out = embeddings.token_average(sq, mask, w)
  # Example 0: mean of tokens 0,1 = ([0,1]+[2,3])/2 = [1,2];
  # example 1: ([6,7]+[8,9]+[10,11])/3 = [8,9].
  np.testing.assert_allclose(out["x"], [9.0, 11.0])
  np.testing.assert_allclose(out["pooler"], [4.0, 6.0])


def test_original_estimator_matches_its_definition():
  """(sum over tokens and examples of d(mean loss)/dh)^2 / batch tokens."""
  model, split = make("classification", n=6)
  batch = batch_of(split, 8)
  comps = ("layer_1/output", "pooler")
  g = embeddings.per_example_activation_grads(model, batch, comps)
  w = np.asarray(batch["weights"])
  n = w.sum()
  mask = np.asarray(batch["attention_mask"], np.float64)
  out = jax.jit(lambda s, b: embeddings.fisher_step(
      nnx.graphdef(model), s, b, jax.random.key(0), kind="classification",
      components=comps, estimator="original"))(nnx.state(model), batch)
  tok = np.einsum("bth,bt->h", np.asarray(g["layer_1/output"]) / n, mask)
  np.testing.assert_allclose(out["layer_1/output"], tok ** 2 / mask.sum(),
                             rtol=1e-4)
  pool = (np.asarray(g["pooler"]) / n * w[:, None]).sum(0)
  np.testing.assert_allclose(out["pooler"], pool ** 2 / mask.sum(), rtol=1e-4)


def test_sampled_estimator_converges_to_the_expectation():
  """E_y~p [g_y^2] computed exactly by enumerating the two labels."""
  model, split = make("classification", n=4)
  batch = batch_of(split, 4)
  logits = np.asarray(model(batch), np.float64)
  p = np.exp(logits - logits.max(1, keepdims=True))
  p /= p.sum(1, keepdims=True)
  comps = ("layer_0/output", "pooler")
  exact = {c: 0.0 for c in comps}
  for i in range(4):
    one = {k: v[i:i + 1] for k, v in batch.items()}
    for y in (0, 1):
      lab = dict(one, label=np.array([y], np.int32))
      g = embeddings.per_example_activation_grads(model, lab, comps)
      avg = embeddings.token_average(jax.tree.map(jnp.square, g),
                                     jnp.asarray(one["attention_mask"],
                                                 jnp.float32),
                                     jnp.ones(1))
      for c in comps:
        exact[c] = exact[c] + p[i, y] * np.asarray(avg[c])
  sampled = jax.jit(lambda s, b, k: embeddings.fisher_step(
      nnx.graphdef(model), s, b, k, kind="classification", components=comps,
      estimator="sampled", num_samples=400))(nnx.state(model), batch,
                                             jax.random.key(3))
  for c in comps:
    rel = np.abs(np.asarray(sampled[c]).sum() - exact[c].sum()) / exact[c].sum()
    assert rel < 0.1, (c, rel)
  # ... and it is not the empirical Fisher with the gold labels.
  gold = run_fisher(model, batch, "classification")
  assert not np.allclose(gold["pooler"], exact["pooler"], rtol=0.1)


def test_param_fisher_vmap_matches_a_loop():
  model, split = make("tagging", n=4)
  batch = batch_of(split, 4)
  out = jax.jit(lambda s, b: embeddings.param_fisher_step(
      nnx.graphdef(model), s, b, kind="tagging", chunk=2))(nnx.state(model),
                                                           batch)
  gd, params, rest = nnx.split(model, nnx.Param, ...)
  total = None
  for i in range(4):
    one = {k: v[i:i + 1] for k, v in batch.items()}

    def loss(p):
      return heads.per_example_loss("tagging", nnx.merge(gd, p, rest)(one),
                                    one)[0]
    g = jax.tree.map(jnp.square, jax.grad(loss)(params))
    total = g if total is None else jax.tree.map(jnp.add, total, g)
  nonzero = []

  def close(a, b):
    a, b = np.asarray(a), np.asarray(b)
    nonzero.append(np.abs(b).max() > 0)  # The pooler is unused in tagging.
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4 * np.abs(b).max())
  jax.tree.map(close, out["params"], total)
  assert sum(nonzero) == len(nonzero) - 2


def test_textemb_is_the_mean_of_token_means():
  model, split = make("classification", n=5)
  cfg = tiny.get_config()
  vec, n = embeddings.compute_textemb(model, split, sharding.make_mesh(),
                                      batch_size=cfg.eval_batch_size,
                                      max_length=cfg.max_length)
  assert n == 5
  means = []
  for ids, types in zip(split.features["input_ids"],
                        split.features["token_type_ids"]):
    h = model.bert(jnp.asarray(ids)[None], jnp.asarray(types)[None],
                   jnp.ones((1, len(ids)), jnp.int32)).last_hidden_state
    means.append(np.asarray(h[0]).mean(0))
  np.testing.assert_allclose(vec, np.mean(means, 0), rtol=1e-4, atol=1e-6)


def _tiny_classification_config(tmp_path, n_train: int, n_val: int):
  """The tiny test config on a synthetic classification task in tmp_path,
  one epoch, with its library in tmp_path/lib."""
  data = synthetic.write_task(str(tmp_path / "data"), "classification",
                              n_train=n_train, n_val=n_val)
  cfg = tiny.get_config()
  cfg.task = f"classification:{data}"
  cfg.library = str(tmp_path / "lib")
  cfg.num_epochs = 1
  return cfg


def test_stages_write_the_library(tmp_path):
  cfg = _tiny_classification_config(tmp_path, n_train=64, n_val=32)
  cfg.embed.num_examples = 40
  embed.textemb_stage(cfg, str(tmp_path / "wd"))
  emb = embed.taskemb_stage(cfg, str(tmp_path / "wd"))
  assert set(emb) == set(component_names(CFG))
  entry = library.load(cfg.library, cfg.task)
  assert entry["textemb"].shape == (32,)
  assert entry["entry"]["num_examples"] == 40
  assert entry["entry"]["taskemb"]["estimator"] == "empirical"
  assert os.path.exists(tmp_path / "wd" / "finetune" / "best")
  # The same again needs an explicit overwrite; nothing is damaged.
  before = json.load(open(tmp_path / "lib" / "manifest.json"))
  with pytest.raises(library.LibraryError, match="overwrite"):
    embed.taskemb_stage(cfg, str(tmp_path / "wd"))
  assert json.load(open(tmp_path / "lib" / "manifest.json")) == before
  # Deterministic: recomputing with overwrite gives identical arrays.
  cfg.overwrite = True
  again = embed.taskemb_stage(cfg, str(tmp_path / "wd"))
  for c in emb:
    np.testing.assert_array_equal(emb[c], again[c])


def test_head_mode_trains_only_the_head(tmp_path):
  cfg = _tiny_classification_config(tmp_path, n_train=32, n_val=16)
  cfg.embed.finetune = "head"
  embed.taskemb_stage(cfg, str(tmp_path / "wd"))
  tuned, _, _ = encoders.load_finetuned(str(tmp_path / "wd" / "finetune"))
  fresh = encoders.create_model(encoders.spec_from_config(cfg),
                                "classification", 2, seed=cfg.seed)
  a, b = nnx.state(tuned), nnx.state(fresh)
  jax.tree.map(np.testing.assert_array_equal, a["bert"], b["bert"])
  assert not np.allclose(a["classifier"]["kernel"].value,
                         b["classifier"]["kernel"].value)
  assert library.load(cfg.library, cfg.task)["entry"]["taskemb"][
      "finetune"] == "head"
