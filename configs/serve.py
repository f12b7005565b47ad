"""The task-bank service: submit a task, get the library's tasks to fine-tune
on first (HTTP API, job queue, web page; see README.md, "Service").

  python -m taskemb_jax.main --config=configs/serve.py --workdir=work/serve

serves http://127.0.0.1:8000 with one worker process, an embedded job queue
(SQLite in the workdir) and the shipped MiniLM library; a job is ranked like
`make demo` ranks its target (about 70 s cold, 46 s warm on a 2-core
CPU). Many worker hosts on one Redis queue:

  # API host (no local worker), reachable from the network:
  python -m taskemb_jax.main --config=configs/serve.py --workdir=work/serve \
      --config.serve.broker=redis://10.0.0.5:6379 --config.serve.workers=0 \
      --config.serve.host=0.0.0.0
  # every worker host:
  python -m taskemb_jax.main --config=configs/serve.py --workdir=work/serve \
      --config.serve.broker=redis://10.0.0.5:6379 --config.serve.role=worker

`--config=configs/serve.py:tiny` is the CPU test mode: the tiny random model,
short runs (give it a library built with the same settings,
--config.library=...).
"""

import ml_collections

from configs import demo
from taskemb_jax.errors import ConfigError


def serve_group() -> ml_collections.ConfigDict:
  s = ml_collections.ConfigDict()
  # all (API + `workers` worker processes) | api | worker (consumer only).
  s.role = "all"
  # Address of the HTTP server; loopback unless told otherwise.
  s.host = "127.0.0.1"
  s.port = 8000
  # Worker processes started with the server (role 'all'; 0 = none).
  s.workers = 1
  # '' = embedded queue (SQLite in the workdir); redis://host:port[/db] =
  # one queue shared by many worker hosts.
  s.broker = ""
  # Name of the queue (several services may share one Redis).
  s.queue = "taskemb"
  # Secret for cancelling (DELETE) and publishing jobs ('' = both off).
  s.token = ""
  # Largest upload in MB, and most examples in a file.
  s.max_upload_mb = 20
  s.max_examples = 50_000
  # Longest task description, in characters.
  s.max_description_chars = 4000
  # Seconds between a worker's heartbeats, and without one before its job is
  # taken as lost (retried once, then failed).
  s.heartbeat_s = 5.0
  s.stale_s = 60.0
  # Runs of a job before it fails (a retry follows a lost worker only).
  s.max_attempts = 2
  # Sentence model of description-only ranking ('' = config.model).
  s.description_model = "minilm-l6"
  # Sources counted as a method's top sources (agreement, class warning).
  s.top_k = 3
  # Keep a job's run folder (fine-tuned target) after it ends.
  s.keep_runs = False
  return s


def get_config(mode: str = ""):
  c = demo.get_config()
  c.stage = "serve"
  c.task = ""
  c.serve = serve_group()
  if mode == "tiny":
    _tiny(c)
  elif mode:
    raise ConfigError(f"configs/serve.py:{mode}: use configs/serve.py or "
                      "configs/serve.py:tiny")
  return c


def _tiny(c: ml_collections.ConfigDict) -> None:
  """The tiny random model and runs of seconds (tests, load benchmark)."""
  c.model = "tiny"
  c.dropout = 0.0
  c.learning_rate = 1e-3
  c.max_length = 16
  c.eval_batch_size = 32
  c.transfer.source_examples = 48
  c.transfer.all.num_epochs = 1
  c.transfer.all.max_length = 16
  c.transfer.all.batch_size = 8
  c.transfer.all.max_eval_examples = 16
  c.transfer.all.eval_batch_size = 32
  c.transfer.classification.learning_rate = 1e-3
  c.transfer.qa.learning_rate = 1e-3
  c.transfer.tagging.learning_rate = 1e-3
  c.transfer.qa.batch_size = 8
  c.transfer.tagging.num_epochs = 1
  c.embed.num_examples = 24
  c.rank.embed_examples = 0  # The library's 24.
  c.rank.finetune.dtype = None  # The same on every CPU.
  c.eval_batch_size = 32
  c.serve.description_model = "tiny"
