"""taskemb_jax: which NLP task should you fine-tune on before yours?

A JAX/Flax reimplementation of Vu et al. (2020), "Exploring and Predicting
Transferability across NLP Tasks": fine-tune BERT on classification /
regression, extractive QA and tagging tasks, embed tasks (TextEmb, TaskEmb),
rank source tasks for a target and measure the rankings against real
transfer experiments.
"""

__version__ = "0.1.0"
