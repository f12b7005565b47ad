"""Task heads on top of BERT and their per-example losses.

One model class, `TaskModel`, composes the encoder with the head of the task's
kind (Hugging Face's `BertFor{SequenceClassification, QuestionAnswering,
TokenClassification}` layouts, so exported weights load there):

* ``classification`` / ``regression``: pooler output -> dropout -> linear,
  logits [batch, num_labels] (num_labels = 1 for regression);
* ``qa``: linear on every token -> start and end logits [batch, length];
  SQuAD 2.0 no-answer is position 0 ([CLS]);
* ``tagging``: dropout -> linear on every token -> logits
  [batch, length, num_labels]; only the first sub-token of a word carries a
  label (the others hold ``IGNORE``).

`per_example_loss` gives L_i for every example (also what TaskEmb
differentiates); `batch_loss` combines them into the training objective.
"""

from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp
from flax import nnx

from taskemb_jax.batching import IGNORE  # Labels of unlabelled tokens.
from taskemb_jax.model import Bert, BertConfig, dropout

Array = jax.Array


class TaskModel(nnx.Module):
  """BERT plus the head for one task kind.

  Attributes: `bert` (the encoder), `classifier` (classification, regression,
  tagging) or `qa_outputs` (qa), named as in Hugging Face.
  """

  def __init__(self, cfg: BertConfig, kind: str, num_labels: int, *,
               dtype=jnp.float32, rngs: nnx.Rngs):
    if kind == "regression":
      num_labels = 1
    elif kind == "qa":
      num_labels = 2
    self.kind = kind
    self.num_labels = num_labels
    self.bert = Bert(cfg, dtype=dtype, rngs=rngs)
    init = nnx.initializers.truncated_normal(stddev=cfg.initializer_range)
    layer = nnx.Linear(cfg.hidden_size, num_labels, kernel_init=init,
                       dtype=jnp.float32, rngs=rngs)
    if kind == "qa":
      self.qa_outputs = layer
    else:
      self.classifier = layer
    self.dropout = nnx.Dropout(cfg.hidden_dropout_prob)

  def __call__(self, batch: Mapping[str, Array], *,
               rngs: nnx.Rngs | None = None,
               perturb: Mapping[str, Array] | None = None) -> Array:
    """Returns logits for a batch dict of [batch, length] int arrays.

    Shapes: classification [batch, num_labels]; regression [batch, 1];
    qa [batch, length, 2] (start, end); tagging [batch, length, num_labels].
    """
    out = self.bert(batch["input_ids"], batch["token_type_ids"],
                    batch["attention_mask"], rngs=rngs, perturb=perturb)
    if self.kind == "qa":
      return self.qa_outputs(out.last_hidden_state.astype(jnp.float32))
    if self.kind == "tagging":
      x = dropout(self.dropout, out.last_hidden_state, rngs)
      return self.classifier(x.astype(jnp.float32))
    x = dropout(self.dropout, out.pooler_output, rngs)
    return self.classifier(x)


def _cross_entropy(logits: Array, labels: Array) -> Array:
  """logits [..., C], int labels [...] (valid ids) -> [...] float32."""
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  return -jnp.take_along_axis(logp, labels[..., None], axis=-1)[..., 0]


def mask_padding(qa_logits: Array, attention_mask: Array) -> Array:
  """Sets QA logits of padding positions to -1e9 so they never win or count.

  qa_logits [batch, length, 2], attention_mask [batch, length].
  """
  return jnp.where(attention_mask[..., None] > 0, qa_logits, -1e9)


def per_example_loss(kind: str, logits: Array,
                     batch: Mapping[str, Array]) -> Array:
  """The loss L_i of every example, [batch] float32.

  classification: cross-entropy; regression: squared error; qa: (CE of the
  start + CE of the end) / 2 over non-padding positions; tagging: mean
  cross-entropy over the example's labelled tokens (0 if it has none).
  Padding rows get a finite value; weight them out with batch['weights'].
  """
  if kind == "classification":
    return _cross_entropy(logits, batch["label"])
  if kind == "regression":
    return jnp.square(logits[:, 0].astype(jnp.float32) - batch["label"])
  if kind == "qa":
    lg = mask_padding(logits, batch["attention_mask"])
    return 0.5 * (_cross_entropy(lg[..., 0], batch["start_position"])
                  + _cross_entropy(lg[..., 1], batch["end_position"]))
  if kind == "tagging":
    tok, count = _tagging_token_loss(logits, batch["labels"])
    return tok.sum(-1) / jnp.maximum(count, 1.0)
  raise ValueError(f"unknown kind {kind!r}")


def _tagging_token_loss(logits: Array, labels: Array) -> tuple[Array, Array]:
  """-> (per-token CE [batch, length] zero where unlabelled, count [batch])."""
  valid = labels != IGNORE
  ce = _cross_entropy(logits, jnp.where(valid, labels, 0))
  return jnp.where(valid, ce, 0.0), valid.sum(-1).astype(jnp.float32)


def batch_loss(kind: str, logits: Array,
               batch: Mapping[str, Array]) -> tuple[Array, Array]:
  """The training objective as (sum of losses, count); loss = sum / count.

  Examples are weighted by batch['weights'] (0 for padding rows). Tagging
  averages over all labelled tokens of the batch, as Hugging Face's
  `BertForTokenClassification` does; other kinds average over examples.
  """
  w = batch["weights"]
  if kind == "tagging":
    tok, count = _tagging_token_loss(logits, batch["labels"])
    return (tok.sum(-1) * w).sum(), (count * w).sum()
  return (per_example_loss(kind, logits, batch) * w).sum(), w.sum()


def predictions(kind: str, logits: Array,
                batch: Mapping[str, Array]) -> dict[str, Array]:
  """Device-side predictions kept for host metrics.

  classification: 'pred' [batch] int; regression: 'pred' [batch] float;
  qa: 'start_logits', 'end_logits' [batch, length] (padding masked);
  tagging: 'pred' [batch, length] int.
  """
  if kind == "classification":
    return {"pred": jnp.argmax(logits, -1).astype(jnp.int32)}
  if kind == "regression":
    return {"pred": logits[:, 0].astype(jnp.float32)}
  if kind == "qa":
    lg = mask_padding(logits, batch["attention_mask"])
    return {"start_logits": lg[..., 0], "end_logits": lg[..., 1]}
  return {"pred": jnp.argmax(logits, -1).astype(jnp.int32)}
