"""Ranking by description: sentence embeddings of the packaged MiniLM
(mean pooling + L2 norm, as sentence-transformers computes them) and the
cosine scores of library tasks."""

import os

import jax.numpy as jnp
import numpy as np
import pytest

from taskemb_jax import description, library
from taskemb_jax.errors import DataError

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
SHIPPED = os.path.join(os.path.dirname(FIXTURES), "..", "library", "minilm-l6")


@pytest.fixture(scope="module")
def minilm():
  return description.load_encoder("minilm-l6")


def test_sentence_vectors_are_mean_pooled_unit_vectors_of_pytorch_states(
    minilm):
  ref = np.load(os.path.join(FIXTURES, "minilm_parity.npz"))
  mask = ref["attention_mask"][..., None].astype(np.float64)
  want = (ref["last_hidden_state"] * mask).sum(1) / mask.sum(1)
  want /= np.linalg.norm(want, axis=1, keepdims=True)
  got = description.sentence_vectors(
      minilm.bert, jnp.asarray(ref["input_ids"]),
      jnp.asarray(ref["token_type_ids"]), jnp.asarray(ref["attention_mask"]))
  np.testing.assert_allclose(np.asarray(got), want, atol=2e-5)
  # Texts in, the same vectors out (single sentences of the fixture).
  single = [i for i, p in enumerate(ref["text_pairs"]) if not p]
  vecs = minilm([str(ref["texts"][i]) for i in single])
  np.testing.assert_allclose(vecs, want[single], atol=2e-5)
  assert vecs.shape == (len(single), 384)


def test_descriptions_rank_the_shipped_library_sensibly(minilm):
  texts = description.library_descriptions(SHIPPED)
  assert set(texts) == set(library.tasks(SHIPPED)) and all(texts.values())
  film = description.description_scores(
      "Is this film review positive or negative?", texts, minilm)
  top = sorted(film, key=film.get, reverse=True)
  assert set(top[:2]) <= {"doc-polarity", "mr-polarity", "vader-movies",
                          "uci-imdb"}
  pos = description.description_scores(
      "Label each word of a sentence with its part of speech", texts, minilm)
  top = sorted(pos, key=pos.get, reverse=True)
  assert set(top[:4]) == {"wsj-pos", "oanc-pos", "brown-pos", "brown-upos"}
  spam = description.description_scores("Is this email spam?", texts, minilm)
  assert max(spam, key=spam.get) == "spam-assassin"


def test_scores_are_cosines_of_the_encoder_s_vectors():
  table = {"target": [1.0, 0.0], "a": [3.0, 4.0], "b": [0.0, -2.0]}
  calls = []

  def encoder(texts):
    calls.append(list(texts))
    return np.array([table[t] for t in texts])
  scores = description.description_scores(
      "target", {"A": "a", "B": "b", "empty": "  "}, encoder)
  assert scores == pytest.approx({"A": 0.6, "B": 0.0})
  assert calls == [["target", "a", "b"]]
  assert description.description_scores("target", {"E": ""}, encoder) == {}
  with pytest.raises(DataError):
    description.embed([" "], encoder)


def test_task_description_prefers_the_library_entry():
  assert description.task_description("mr-polarity", {
      "description": "mine"}) == "mine"
  assert description.task_description("mr-polarity", {}).startswith(
      "Sentence polarity of movie-review snippets")
  assert description.task_description("no-such-task", {}) == ""


def test_the_encoder_caches_vectors_and_pads_to_few_shapes():
  enc = description.load_encoder("tiny")
  a = enc(["one text", "another one"])
  assert a.shape == (2, 32)
  np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-5)
  before = enc._forward._cache_size()  # pylint: disable=protected-access
  b = enc(["another one", "a third text, a little longer than the others"])
  np.testing.assert_allclose(b[0], a[1])
  assert enc._forward._cache_size() == before  # Same padded shape.
