"""Ranking by description: sentence embeddings of what tasks are about.

The packaged all-MiniLM-L6-v2 is a sentence-embedding model: a text's vector
is the mean of its last hidden states over its tokens ([CLS] and [SEP]
included, padding excluded), L2-normalised -- what sentence-transformers
computes for it (max. 256 word pieces). A library task is scored for a
target by the cosine similarity of the two descriptions' vectors:

  enc = description.load_encoder("minilm-l6")
  scores = description.description_scores(
      "Is this film review positive or negative?",
      description.library_descriptions("library/minilm-l6"), enc)

`description_scores(target_text, source_texts, encoder)` takes plain
arguments, so that a stage can use it as one more ranking method. Any
callable from a list of texts to [n, hidden] unit vectors is an encoder.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from taskemb_jax import input_pipeline
from taskemb_jax import library as library_lib
from taskemb_jax import pretrained
from taskemb_jax import tasks as tasks_lib
from taskemb_jax.errors import DataError
from taskemb_jax.model import PRESETS, Bert

# sentence-transformers' max_seq_length of all-MiniLM-L6-v2.
MAX_LENGTH = 256
# Padded lengths and batch size: jit compiles one forward per length.
_LENGTHS = (16, 32, 64, 128, 256)
_BATCH = 16
# Texts whose vectors an encoder keeps (the library's descriptions).
_CACHE = 4096

Encoder = Callable[[Sequence[str]], np.ndarray]


def mean_pool(hidden: jax.Array, mask: jax.Array) -> jax.Array:
  """[batch, length, hidden] states, [batch, length] mask -> unit [batch, hidden].

  The mean over the tokens whose mask is 1, then L2 normalisation.
  """
  m = mask.astype(jnp.float32)[..., None]
  mean = (hidden.astype(jnp.float32) * m).sum(1) / jnp.maximum(m.sum(1), 1e-9)
  norm = jnp.linalg.norm(mean, axis=-1, keepdims=True)
  return mean / jnp.maximum(norm, 1e-12)


def sentence_vectors(bert: Bert, input_ids: jax.Array,
                     token_type_ids: jax.Array,
                     attention_mask: jax.Array) -> jax.Array:
  """int [batch, length] inputs -> unit sentence vectors [batch, hidden]."""
  out = bert(input_ids, token_type_ids, attention_mask)
  return mean_pool(out.last_hidden_state, attention_mask)


@dataclasses.dataclass
class SentenceEncoder:
  """A BERT sentence encoder: `encoder(texts)` -> [n, hidden] unit vectors."""

  name: str
  bert: Bert
  tokenizer: Any
  max_length: int = MAX_LENGTH

  def __post_init__(self):
    graphdef, state = nnx.split(self.bert)
    self._state = state
    self._cache: dict[str, np.ndarray] = {}
    self._forward = jax.jit(lambda s, ids, types, mask: sentence_vectors(
        nnx.merge(graphdef, s), ids, types, mask))

  def __call__(self, texts: Sequence[str]) -> np.ndarray:
    """Vectors of `texts`; those of texts seen before come from a cache."""
    todo = sorted({t for t in texts if t not in self._cache})
    if todo:
      if len(self._cache) + len(todo) > _CACHE:
        self._cache.clear()
      self._cache.update(zip(todo, self._encode(todo)))
    out = np.zeros((len(texts), self.bert.cfg.hidden_size), np.float32)
    for i, t in enumerate(texts):
      out[i] = self._cache[t]
    return out

  def _encode(self, texts: list[str]) -> np.ndarray:
    out = np.zeros((len(texts), self.bert.cfg.hidden_size), np.float32)
    for start in range(0, len(texts), _BATCH):
      chunk = texts[start:start + _BATCH]
      enc = self.tokenizer(chunk, truncation=True, max_length=self.max_length)
      longest = max(len(ids) for ids in enc["input_ids"])
      length = next((n for n in _LENGTHS if n >= longest), longest)
      ids = np.zeros((_BATCH, length), np.int32)
      mask = np.zeros((_BATCH, length), np.int32)
      for row, seq in enumerate(enc["input_ids"]):
        ids[row, :len(seq)] = seq
        mask[row, :len(seq)] = 1
      mask[len(chunk):, 0] = 1  # Padding rows: one token, no division by 0.
      vecs = self._forward(self._state, ids, np.zeros_like(ids), mask)
      out[start:start + len(chunk)] = np.asarray(vecs)[:len(chunk)]
    return out


def load_encoder(model: str = "minilm-l6", seed: int = 0) -> SentenceEncoder:
  """The sentence encoder of `model`.

  `model`: a packaged pretrained preset ('minilm-l6'), a Hugging Face folder
  or hub name, or a random preset ('tiny', for tests; its vectors mean
  nothing). Random presets use the MiniLM vocabulary.
  """
  if model in PRESETS and model not in pretrained.PACKAGED:
    bert = Bert(PRESETS[model], rngs=nnx.Rngs(seed))
    tokenizer_dir = pretrained.resolve_model_dir("minilm-l6")
  else:
    folder = pretrained.resolve_model_dir(model)
    bert = Bert(pretrained.read_config(folder), rngs=nnx.Rngs(seed))
    state = nnx.state(bert, nnx.Param)
    template = {"bert": nnx.to_pure_dict(state)}
    params, _ = pretrained.hf_to_params(pretrained.read_tensors(folder),
                                        template, source=folder)
    nnx.replace_by_pure_dict(state, params["bert"])
    nnx.update(bert, state)
    tokenizer_dir = folder
  tokenizer = input_pipeline.load_tokenizer(tokenizer_dir)
  limit = min(MAX_LENGTH, bert.cfg.max_position_embeddings)
  return SentenceEncoder(model, bert, tokenizer, limit)


def embed(texts: Sequence[str], encoder: Encoder) -> np.ndarray:
  """[n, hidden] unit vectors of `texts` (an empty text is an error)."""
  for t in texts:
    if not isinstance(t, str) or not t.strip():
      raise DataError("a description must be a non-empty text")
  if not texts:
    return np.zeros((0, 0), np.float32)
  return np.asarray(encoder(list(texts)), np.float32)


def description_scores(target_text: str, source_texts: Mapping[str, str],
                       encoder: Encoder) -> dict[str, float]:
  """Cosine similarity of each source's description to the target's.

  Sources with an empty description are left out.
  """
  names = sorted(n for n, t in source_texts.items()
                 if isinstance(t, str) and t.strip())
  if not names:
    return {}
  vecs = embed([target_text] + [source_texts[n] for n in names], encoder)
  vecs = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
  return {n: float(s) for n, s in zip(names, vecs[1:] @ vecs[0])}


def task_description(name: str, entry: Mapping[str, Any] | None = None) -> str:
  """A task's paragraph: its library entry's 'description' if it has one,
  else the task registry's (bank tasks carry one), else ''."""
  text = (entry or {}).get("description")
  if isinstance(text, str) and text.strip():
    return text
  try:
    return tasks_lib.get_task(name).description
  except DataError:
    return ""


def library_descriptions(lib: str) -> dict[str, str]:
  """{task name: description} of every task of the library."""
  manifest = library_lib.open_library(lib)
  return {n: task_description(n, e) for n, e in manifest["tasks"].items()}
