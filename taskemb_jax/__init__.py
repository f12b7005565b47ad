"""taskemb_jax: which NLP task should you fine-tune on before yours?

A JAX/Flax reimplementation of Vu et al. (2020), "Exploring and Predicting
Transferability across NLP Tasks": fine-tune BERT on classification /
regression, extractive QA and tagging tasks, embed tasks (TextEmb, TaskEmb),
rank source tasks for a target and measure the rankings against real
transfer experiments.

The ranking functions are importable from the package itself (numpy only;
loaded on first use):

* scoring and fusing (`taskemb_jax.rank`): `cosine_scores`, `rank_order`,
  `reciprocal_rank_fusion`;
* metrics of a ranking against measured transfer
  (`taskemb_jax.evaluation`): `ndcg`, `rank_of_best`,
  `average_rank_of_best`, `regret_at_k`, `spearman`.

LogME, the transferability score, is `taskemb_jax.logme.logme`.
"""

import importlib

__version__ = "0.1.0"

_PUBLIC = {
    "cosine_scores": "rank", "rank_order": "rank",
    "reciprocal_rank_fusion": "rank",
    "ndcg": "evaluation", "rank_of_best": "evaluation",
    "average_rank_of_best": "evaluation", "regret_at_k": "evaluation",
    "spearman": "evaluation",
}


def __getattr__(name: str):
  if name in _PUBLIC:
    return getattr(importlib.import_module(f"taskemb_jax.{_PUBLIC[name]}"),
                   name)
  raise AttributeError(f"module 'taskemb_jax' has no attribute {name!r}")
