"""The embedding stages: embed a task (TextEmb, TaskEmb) into a library.

* `textemb_stage`: TextEmb of config.task with the pretrained encoder.
* `taskemb_stage`: TaskEmb of config.task from its fine-tuned model
  (fine-tuned first unless config.embed.finetuned names a finished run).
* `build_library_stage`: fine-tune and embed a list of tasks with the
  library's recipe (`taskemb_jax.recipe`), resumably.

The embeddings themselves are computed by `taskemb_jax.embeddings`; the
library on disk is `taskemb_jax.library`.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import ml_collections
import numpy as np
from absl import logging

from taskemb_jax import data
from taskemb_jax import embeddings
from taskemb_jax import encoders
from taskemb_jax import files
from taskemb_jax import heads
from taskemb_jax import input_pipeline
from taskemb_jax import library as library_lib
from taskemb_jax import recipe
from taskemb_jax import runs
from taskemb_jax import sharding
from taskemb_jax import tasks as tasks_lib
from taskemb_jax import train
from taskemb_jax import progress
from taskemb_jax.errors import ConfigError, LibraryError

FINETUNE_MODES = ("full", "head", "none")


def _embed_split(config, task: tasks_lib.Task, tokenizer, labels,
                 records) -> data.Split:
  """The training split used for embeddings (subset of embed.num_examples)."""
  return data.load_split(task, "train", tokenizer, labels,
                         data.Window.from_config(config),
                         max_examples=config.embed.num_examples,
                         seed=config.embed.seed, records=records)


def textemb_stage(config: ml_collections.ConfigDict, workdir: str
                  ) -> np.ndarray:
  """Computes TextEmb of config.task and stores it in config.library."""
  del workdir
  task = tasks_lib.get_task(config.task)
  spec = encoders.spec_from_config(config)
  tokenizer = input_pipeline.load_tokenizer(spec.tokenizer_dir)
  records = task.load("train", config.data_dir or None)
  labels = data.label_names(task, records)
  split = _embed_split(config, task, tokenizer, labels, records)
  model = encoders.create_model(spec, task.kind, len(labels or ()), seed=0,
                                dtype=config.dtype)
  mesh = sharding.make_mesh(config.num_devices)
  vec, n = embeddings.compute_textemb(model, split, mesh,
                                      batch_size=config.eval_batch_size,
                                      max_length=config.max_length)
  options = {"max_length": config.max_length, "dtype": config.dtype,
             "num_examples": n, "seed": config.embed.seed}
  entry = task_entry(task, n, spec)
  sharding.on_writer(lambda: library_lib.add(
      config.library, entry, textemb=vec, textemb_options=options,
      overwrite=config.overwrite))
  progress.say(f"TextEmb of {task.name} ({n} examples) added to "
               f"{config.library}")
  return vec


def task_entry(task: tasks_lib.Task, n: int,
               spec: encoders.ModelSpec) -> dict[str, Any]:
  """The library entry of a task: what it is and what it was embedded with.

  The base model is recorded portably: its name and the fingerprints of its
  weights and tokenizer, never a path of the machine that embedded it.
  """
  return {"name": task.name, "kind": task.kind, "family": task.family,
          "metric": task.metric, "size": task.size, "num_examples": n,
          "title": task.title, "description": task.description,
          "base": encoders.base_fingerprints(spec), "model": spec.name}


def fisher_options(config) -> embeddings.FisherOptions:
  """The TaskEmb options of a stage's config (config.embed)."""
  e = config.embed
  if e.estimator not in embeddings.ESTIMATORS:
    raise ConfigError(f"config.embed.estimator={e.estimator!r}; use one of "
                      f"{embeddings.ESTIMATORS}")
  comps = tuple(files.comma_list(e.components)) \
      if e.components != "all" else ()
  return embeddings.FisherOptions(estimator=e.estimator, num_samples=e.num_samples,
                       sigma=e.sigma, components=comps,
                       param_fisher=e.param_fisher, param_chunk=e.param_chunk,
                       seed=e.seed)


def finetuned_model(config, task, spec, workdir, records
                    ) -> tuple[heads.TaskModel, tuple[str, ...] | None]:
  """The model TaskEmb differentiates, per config.embed.finetune, and labels.

  'full': the best checkpoint of the fine-tuning run in config.embed.finetuned
  (default <workdir>/finetune), trained there first unless finished (and
  resumed if interrupted), in config.embed.finetune_dtype if set; the model
  returned computes in config.dtype;
  'head': the same with the encoder frozen; 'none': the pretrained encoder
  with a random head.
  """
  mode = config.embed.finetune
  if mode not in FINETUNE_MODES:
    raise ConfigError(f"config.embed.finetune={mode!r}; use one of "
                      f"{FINETUNE_MODES}")
  if mode == "none":
    labels = data.label_names(task, records)
    return encoders.create_model(spec, task.kind, len(labels or ()),
                                 seed=config.seed, dtype=config.dtype), labels
  run_dir = config.embed.finetuned
  if not run_dir:
    if not workdir:
      raise ConfigError("TaskEmb with embed.finetune='full'|'head' needs "
                        "--workdir (to fine-tune into) or embed.finetuned")
    run_dir = os.path.join(workdir, "finetune")
  cfg = config.copy_and_resolve_references()
  with cfg.unlocked():
    cfg.freeze_encoder = mode == "head"
    cfg.dtype = config.embed.finetune_dtype or config.dtype
  if not runs.is_finished(run_dir, cfg):
    train.train_and_evaluate(cfg, run_dir)
  model, info, _ = encoders.load_finetuned(run_dir, dtype=config.dtype)
  if info["task"] != task.name:
    raise ConfigError(f"config.embed.finetuned={run_dir!r} was trained on "
                      f"{info['task']!r}, not {task.name!r}")
  return model, tuple(info["labels"]) if info["labels"] else None


def taskemb_stage(config: ml_collections.ConfigDict, workdir: str
                  ) -> dict[str, np.ndarray]:
  """Computes TaskEmb of config.task and stores it in config.library."""
  task = tasks_lib.get_task(config.task)
  spec = encoders.spec_from_config(config)
  options = fisher_options(config)
  records = task.load("train", config.data_dir or None)
  model, labels = finetuned_model(config, task, spec, workdir, records)
  tokenizer = input_pipeline.load_tokenizer(spec.tokenizer_dir)
  split = _embed_split(config, task, tokenizer, labels, records)
  mesh = sharding.make_mesh(config.num_devices)
  emb, n = embeddings.compute_taskemb(model, split, mesh, options,
                                      batch_size=config.eval_batch_size,
                                      max_length=config.max_length)
  recorded = dataclasses.asdict(options)
  recorded.update(finetune=config.embed.finetune, max_length=config.max_length,
                  dtype=config.dtype, num_examples=n,
                  finetune_dtype=config.embed.finetune_dtype or config.dtype,
                  components=sorted(c for c in emb if not c.startswith(
                      "params/")))
  entry = task_entry(task, n, spec)
  sharding.on_writer(lambda: library_lib.add(
      config.library, entry, taskemb=emb, taskemb_options=recorded,
      overwrite=config.overwrite))
  progress.say(f"TaskEmb of {task.name} ({n} examples, {len(emb)} "
               f"components) added to {config.library}")
  return emb


def build_library_stage(config: ml_collections.ConfigDict,
                        workdir: str) -> list[str]:
  """Embeds every task of config.transfer.sources into config.library.

  Each task is fine-tuned exactly like a source of the transfer sweep
  (`recipe.run_config`: the class defaults, the sweep's overrides,
  transfer.source_examples examples, transfer.source_seed) into
  <workdir>/sources/<task>, so a sweep in the same workdir reuses these
  runs. Tasks already in the library are skipped (resumable) unless
  config.overwrite.
  """
  if not workdir:
    raise ConfigError("the build_library stage needs --workdir")
  names = files.comma_list(config.transfer.sources)
  if not names:
    raise ConfigError("config.transfer.sources lists no task to embed")
  have = set(library_lib.tasks(config.library)) if os.path.isdir(
      config.library) else set()
  for k, name in enumerate(names, 1):
    if name in have and not config.overwrite:
      entry = library_lib.load(config.library, name)["entry"]
      if "textemb" in entry and "taskemb" in entry:
        logging.info("library: %s already embedded", name)
        continue
    progress.say(f"library: task {k}/{len(names)}: {name}")
    cfg = recipe.run_config(config, name,
                            examples=config.transfer.source_examples,
                            seed=config.transfer.source_seed)
    run_dir = recipe.source_run_dir(workdir, name)
    recipe.finetune_source(cfg, run_dir)
    with cfg.unlocked():
      cfg.embed.finetuned = run_dir
      cfg.overwrite = True
    textemb_stage(cfg, workdir)
    taskemb_stage(cfg, workdir)
  return names


def target_config(config: ml_collections.ConfigDict, workdir: str,
                  ref: dict[str, Any]) -> ml_collections.ConfigDict:
  """The run config of `embed_target`: the library's recipe for the
  target's class, changed by rank.finetune, then rank.finetune.<class>,
  and rank.embed_examples, with the TaskEmb options of library entry `ref`
  (a fine-tuning dtype other than the library's applies to the fine-tuning
  only)."""
  # Fine-tuned like the library's tasks of its class (the sweep's recipe).
  cfg = recipe.run_config(config, config.task,
                          examples=config.transfer.source_examples,
                          seed=config.transfer.source_seed)
  r = config.rank
  family = tasks_lib.get_task(config.task).family
  groups = [(r.finetune, "rank.finetune"),
            (r.finetune.get(family), f"rank.finetune.{family}")]
  with cfg.unlocked():
    # A faster (or slower) target recipe: rank.finetune, rank.embed_examples.
    for group, where in groups:
      recipe.apply_group(cfg, group, where)
    finetune_dtype = next((g.dtype for g, _ in reversed(groups)
                           if g is not None and g.dtype is not None), None)
    if r.embed_examples:
      cfg.embed.num_examples = r.embed_examples
    cfg.library = os.path.join(workdir, "target_library")
    cfg.overwrite = True
    if "taskemb" in ref:
      t = ref["taskemb"]
      cfg.embed.estimator = t["estimator"]
      cfg.embed.finetune = t["finetune"]
      cfg.embed.num_samples = t["num_samples"]
      cfg.embed.sigma = t["sigma"]
      if finetune_dtype is not None and finetune_dtype != t["dtype"]:
        cfg.embed.finetune_dtype = finetune_dtype
      cfg.dtype = t["dtype"]
  return cfg


def embed_target(config: ml_collections.ConfigDict, workdir: str,
                 ref: dict[str, Any], lib: str) -> str:
  """Embeds config.task like the entry `ref` of library `lib` was embedded.

  Returns the path of the one-task library it is written to.

  The target is fine-tuned and embedded with the recipe of the library's
  tasks of its class (`recipe.run_config`: lengths, epochs, learning rate)
  and the method options the library recorded (base model, estimator,
  fine-tuning mode, dtype), into <workdir>/target_library, so that it
  compares with the sources. `config.rank.finetune` (and its group for
  the target's class) and `config.rank.embed_examples` change the recipe
  (`target_config`: a faster target; a fine-tuning dtype applies to the
  fine-tuning only: TextEmb and the Fisher are computed in the library's
  dtype); TextEmb is skipped when `config.rank.textemb` is off and the
  method does not use it.
  """
  cfg = target_config(config, workdir, ref)
  r = config.rank
  base = encoders.base_fingerprints(encoders.spec_from_config(cfg))
  if base != ref["base"]:
    raise LibraryError(
        f"config.model={config.model!r} is not the base model of library "
        f"{lib} ({ref.get('model')}); set --config.model to it")
  if "textemb" in ref and (r.textemb or "textemb" in r.method):
    textemb_stage(cfg, workdir)
  if "taskemb" in ref:
    taskemb_stage(cfg, os.path.join(workdir, "target"))
  return cfg.library
