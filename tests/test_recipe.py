"""The fine-tuning recipe: typed override groups, their precedence, the study."""

import ast
import json
import os
import subprocess
import sys

import pytest
from absl import flags
from ml_collections import config_flags

from configs import offline_study, tiny
from taskemb_jax import files, recipe, runs
from taskemb_jax import train as train_lib
from taskemb_jax.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The study's recipe as it was written before the typed groups: the
# "field=value,..." strings, applied in order after the class defaults.
OLD_STUDY = {
    "all": "max_length=64,num_epochs=2,max_eval_examples=200,"
           "eval_batch_size=128",
    "classification": "learning_rate=1e-4",
    "qa": "learning_rate=1e-4,batch_size=32",
    "tagging": "learning_rate=3e-4,num_epochs=3",
    "target": "num_epochs=1,save_latest=False",
}


def _old_run_config(config, task, family, *, examples, seed, target):
  """run_config as the "field=value" strings gave it (literal_eval)."""
  c = config.copy_and_resolve_references()
  c.task = task
  c.update(recipe.FAMILY_DEFAULTS[family])
  for group in ["all", family] + (["target"] if target else []):
    for item in OLD_STUDY[group].split(","):
      key, value = item.split("=")
      c[key] = type(c[key])(ast.literal_eval(value))
  c.train_examples, c.seed, c.init_from = examples, seed, ""
  c.eval_split = "validation"
  return c


def _training_fields(c):
  return {k: v for k, v in c.to_dict().items() if k != "transfer"}


@pytest.mark.parametrize("task,family,target,expected", [
    ("mr-polarity", "classification", False,
     dict(learning_rate=1e-4, batch_size=32, num_epochs=2, save_latest=True)),
    ("wn-defqa", "qa", False,
     dict(learning_rate=1e-4, batch_size=32, num_epochs=2, save_latest=True)),
    ("wsj-pos", "tagging", False,
     dict(learning_rate=3e-4, batch_size=32, num_epochs=3, save_latest=True)),
    ("wsj-pos", "tagging", True,
     dict(learning_rate=3e-4, batch_size=32, num_epochs=1, save_latest=False)),
    ("rt-subjectivity", "classification", True,
     dict(learning_rate=1e-4, batch_size=32, num_epochs=1, save_latest=False)),
])
def test_study_recipe_is_unchanged(task, family, target, expected):
  config = offline_study.get_config()
  c = recipe.run_config(config, task, examples=1000, seed=2, target=target)
  common = dict(max_length=64, max_eval_examples=200, eval_batch_size=128,
                train_examples=1000, seed=2, eval_split="validation")
  for k, v in {**common, **expected}.items():
    assert c[k] == v and type(c[k]) is type(v), k
  old = _old_run_config(config, task, family, examples=1000, seed=2,
                        target=target)
  assert _training_fields(c) == _training_fields(old)


def test_precedence_of_the_groups():
  config = tiny.get_config()
  config.learning_rate = 0.5  # Top level: below the class default.
  config.weight_decay = 0.25  # Not in the class defaults: kept.
  config.transfer.all.num_epochs = 4
  config.transfer.all.dropout = 0.3
  config.transfer.classification.num_epochs = 5
  config.transfer.tagging.num_epochs = 7
  config.transfer.target.dropout = 0.1
  c = recipe.run_config(config, "mr-polarity", examples=5, seed=1)
  assert (c.learning_rate, c.weight_decay, c.num_epochs, c.dropout) == (
      2e-5, 0.25, 5, 0.3)
  t = recipe.run_config(config, "mr-polarity", examples=5, seed=1,
                        target=True)
  assert (t.num_epochs, t.dropout) == (5, 0.1)
  assert recipe.run_config(config, "wsj-pos", examples=5,
                           seed=1).num_epochs == 7
  assert recipe.run_config(config, "wn-defqa", examples=5,
                           seed=1).num_epochs == 4
  assert c.transfer.all.learning_rate is None  # Unset placeholders stay None.
  # Per-class target groups apply last, to target runs of that class only.
  config.transfer.target.qa.train_examples = 3
  config.transfer.target.qa.dropout = 0.2
  qa_target = recipe.run_config(config, "wn-defqa", examples=5, seed=1,
                                target=True)
  assert (qa_target.train_examples, qa_target.dropout) == (3, 0.2)
  assert recipe.run_config(config, "wn-defqa", examples=5,
                           seed=1).train_examples == 5  # A source.
  assert recipe.run_config(config, "mr-polarity", examples=5, seed=1,
                           target=True).train_examples == 5


def test_groups_are_typed():
  config = tiny.get_config()
  with pytest.raises(TypeError):
    config.transfer.target.num_epochs = 2.9
  with pytest.raises(TypeError):
    config.transfer.all.save_latest = "no"
  with pytest.raises(TypeError):
    config.transfer.all.freeze_encoder = "false"
  config.transfer.all.learning_rate = 1  # An int is a valid float.
  assert recipe.run_config(config, "mr-polarity", examples=5,
                           seed=0).learning_rate == 1.0
  config.transfer.qa.no_such = 3
  with pytest.raises(ConfigError, match=r"config.transfer.qa.no_such is not"):
    recipe.run_config(config, "wn-defqa", examples=5, seed=0)


def test_command_line_values_are_parsed_by_type(monkeypatch):
  argv = ["prog", f"--config={ROOT}/configs/tiny.py",
          "--config.transfer.classification.freeze_encoder=false",
          "--config.transfer.all.freeze_encoder=true",
          "--config.transfer.target.learning_rate=3e-4",
          "--config.transfer.tagging.dtype=bfloat16"]
  monkeypatch.setattr(sys, "argv", argv)
  fv = flags.FlagValues()
  flag = config_flags.DEFINE_config_file("config", None, "", flag_values=fv,
                                         lock_config=True)
  fv(argv)
  t = flag.value.transfer
  assert t.classification.freeze_encoder is False
  assert t.all.freeze_encoder is True
  assert t.target.learning_rate == 3e-4 and t.tagging.dtype == "bfloat16"
  c = recipe.run_config(flag.value, "mr-polarity", examples=5, seed=0)
  assert c.freeze_encoder is False


@pytest.mark.parametrize("arg,message", [
    ("--config.transfer.target.num_epochs=2.9",
     "invalid literal for int() with base 10: '2.9'"),
    ("--config.transfer.all.save_latest=no",
     "Non-boolean argument to boolean flag"),
])
def test_command_line_type_errors_are_one_line(arg, message, tmp_path):
  p = subprocess.run(
      [sys.executable, "-m", "taskemb_jax.main", "--config=configs/tiny.py",
       "--config.stage=transfer", f"--workdir={tmp_path}", arg],
      cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
  assert p.returncode == 2
  lines = p.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
  assert arg.split("=")[0] in lines[0] and message in lines[0]
  assert not os.listdir(tmp_path)  # Nothing ran.


def test_source_run_dirs_are_distinct(tmp_path):
  a = recipe.source_run_dir(str(tmp_path), "classification:/d/a_b.jsonl")
  b = recipe.source_run_dir(str(tmp_path), "classification:/d/a/b.jsonl")
  assert a != b and os.path.dirname(a) == os.path.dirname(b) == str(
      tmp_path / "sources")
  assert recipe.source_run_dir("w", "mr-polarity") == "w/sources/mr-polarity"


def test_claim_run_refuses_other_settings(tmp_path):
  run = str(tmp_path / "run")
  recipe.claim_run(run, {"learning_rate": 1e-4, "task": "x"},
                   overwrite=False)
  recipe.claim_run(run, {"learning_rate": 1e-4, "task": "x"},
                   overwrite=False)  # Same settings: fine.
  with open(os.path.join(run, "metrics.json"), "w") as f:
    f.write("{}")
  with pytest.raises(ConfigError) as e:
    recipe.claim_run(run, {"learning_rate": 2e-4, "task": "x"},
                     overwrite=False)
  msg = str(e.value)
  assert msg.startswith(run) and "learning_rate: 0.0001 there, 0.0002 here" \
      in msg and "--config.overwrite=true" in msg and "\n" not in msg
  recipe.claim_run(run, {"learning_rate": 2e-4, "task": "x"}, overwrite=True)
  assert os.listdir(run) == ["settings.json"]  # The stale run is gone.
  legacy = str(tmp_path / "legacy")
  os.makedirs(legacy)
  open(os.path.join(legacy, "metrics.json"), "w").close()
  with pytest.raises(ConfigError, match="no settings recorded"):
    recipe.claim_run(legacy, {"task": "x"}, overwrite=False)


def test_finetune_source_refuses_a_source_of_other_settings(tmp_path,
                                                            monkeypatch):
  config = tiny.get_config()
  cfg = recipe.run_config(config, "mr-polarity", examples=32, seed=0)
  run = recipe.source_run_dir(str(tmp_path), "mr-polarity")
  other = runs.run_settings(cfg)
  other["train_examples"] = 1000
  files.write_json(os.path.join(run, recipe.SETTINGS), other)
  trained = []
  monkeypatch.setattr(train_lib, "train_and_evaluate",
                      lambda c, d: trained.append(d))
  monkeypatch.setattr(runs, "is_finished", lambda d, c: bool(trained))
  with pytest.raises(ConfigError, match="train_examples: 1000 there, 32 "
                     "here"):
    recipe.finetune_source(cfg, run)
  assert not trained
  with cfg.unlocked():
    cfg.overwrite = True
  recipe.finetune_source(cfg, run)  # Discarded and fine-tuned afresh.
  assert trained == [run]
  assert files.read_json(os.path.join(run, recipe.SETTINGS)) == \
      runs.run_settings(cfg)
  recipe.finetune_source(cfg, run)  # Finished: reused.
  assert trained == [run]


@pytest.mark.parametrize("task,epochs,lr,finetune_dtype", [
    # The demo's classification recipe: one epoch at 2e-4, in bfloat16.
    ("mr-polarity", 1, 2e-4, "bfloat16"),
    # A tagging or QA target keeps its class's epochs and learning rate.
    ("wsj-pos", 3, 3e-4, "bfloat16"),
    ("squad-nyt", 2, 1e-4, "bfloat16"),
])
def test_target_config_applies_the_class_group_of_rank_finetune(
    task, epochs, lr, finetune_dtype, tmp_path):
  from configs import demo  # pylint: disable=g-import-not-at-top
  from taskemb_jax import embed  # pylint: disable=g-import-not-at-top
  config = demo.get_config()
  config.task = task
  config.rank.finetune.dtype = "bfloat16"
  # The TaskEmb options of a shipped library entry.
  with open(os.path.join(ROOT, "library", "minilm-l6", task,
                         "entry.json")) as f:
    ref = {"taskemb": json.load(f)["taskemb"]}
  cfg = embed.target_config(config, str(tmp_path), ref)
  assert (cfg.num_epochs, cfg.learning_rate) == (epochs, lr)
  assert cfg.embed.num_examples == 250 and cfg.max_length in (64, 128)
  # Fine-tuned in bfloat16, embedded in the library's float32.
  assert (cfg.dtype, cfg.embed.finetune_dtype) == ("float32", finetune_dtype)
  # A dtype of the class's group wins over rank.finetune's.
  config.rank.finetune.tagging.dtype = "float32"
  cfg = embed.target_config(config, str(tmp_path), ref)
  assert cfg.embed.finetune_dtype == (
      "bfloat16" if task != "wsj-pos" else "")
