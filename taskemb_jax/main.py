"""Command line: one entry point, dispatching on config.stage.

  python -m taskemb_jax.main --config=configs/mnli.py --workdir=/tmp/mnli
  python -m taskemb_jax.main --config=configs/tiny.py --workdir=/tmp/t \
      --config.stage=taskemb

Stages: train, predict, export, textemb, taskemb, build_library, rank,
transfer, evaluate, report, demo, list (see README.md). Bad input ends with
one line on stderr and exit status 2. The terminal shows progress bars and
short status lines; the detailed log is <workdir>/taskemb.log (and the
terminal's too with --verbosity=1).
"""

import importlib
import logging as logging_std
import os
import sys
import time
import traceback

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from taskemb_jax import progress
from taskemb_jax import validate
from taskemb_jax.errors import UserError

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder of the stage.")

# stage -> "module:function"; each function takes (config, workdir).
STAGES = {
    "train": "taskemb_jax.train:train_and_evaluate",
    "predict": "taskemb_jax.predict:predict_stage",
    "export": "taskemb_jax.predict:export_stage",
    "textemb": "taskemb_jax.embed:textemb_stage",
    "taskemb": "taskemb_jax.embed:taskemb_stage",
    "build_library": "taskemb_jax.embed:build_library_stage",
    "rank": "taskemb_jax.rank:rank_stage",
    "transfer": "taskemb_jax.transfer:transfer_stage",
    "evaluate": "taskemb_jax.evaluation:evaluate_stage",
    "report": "taskemb_jax.report:report_stage",
    "demo": "taskemb_jax.demo:demo_stage",
    "list": "taskemb_jax.tasks:list_stage",
    "serve": "taskemb_jax.service.serve:serve_stage",
}


def run(config, workdir: str):
  if config.stage not in STAGES:
    raise UserError(f"config.stage={config.stage!r}; use one of "
                    f"{', '.join(STAGES)}")
  validate.check_config(config)
  module, fn = STAGES[config.stage].split(":")
  return getattr(importlib.import_module(module), fn)(config, workdir)


class _QuietLibraries(logging_std.Filter):
  """Drops INFO lines of orbax (dozens per checkpoint); keeps warnings."""

  def filter(self, record):
    return record.levelno > logging_std.INFO or "/orbax/" not in record.pathname


LOG_FILE = "taskemb.log"


def setup_terminal(verbosity: int) -> None:
  """What reaches the terminal.

  By default: progress bars, short status lines, warnings and the results.
  With --verbosity=1 (or more) also the detailed log (`setup_log_file`).
  """
  logging.set_verbosity(logging.INFO)  # --verbosity=1 would mean DEBUG.
  handler = logging.get_absl_handler()
  handler.addFilter(_QuietLibraries())
  if verbosity < 1:
    handler.setLevel(logging_std.WARNING)
    progress.show_on_terminal(sys.stderr)


def setup_log_file(workdir: str) -> None:
  """The detailed log (INFO lines of every stage, with times) goes to
  <workdir>/taskemb.log, written by the first process only; the other
  processes of a job show no progress bars either (one process's bars)."""
  if jax.process_index() != 0:
    progress.show_on_terminal(None)
  if workdir and jax.process_index() == 0:
    os.makedirs(workdir, exist_ok=True)
    log = logging_std.FileHandler(os.path.join(workdir, LOG_FILE))
    log.setFormatter(logging_std.Formatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addFilter(_QuietLibraries())
    logging_std.getLogger().addHandler(log)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  from taskemb_jax import sharding  # pylint: disable=import-outside-toplevel
  # First of all: its malloc settings only hold for threads that start after
  # it, and the calls below start JAX (and XLA:CPU's threads).
  sharding.keep_freed_memory()
  setup_terminal(flags.FLAGS.verbosity)
  try:
    sharding.maybe_initialize_distributed()
    # Before anything is written; one line for all processes of a job.
    sharding.agree(lambda: validate.check_config(_CONFIG.value))
    setup_log_file(_WORKDIR.value or "")
    sharding.configure_jax(_CONFIG.value)
    logging.info("JAX %s, process %d/%d, devices: %s", jax.__version__,
                 jax.process_index(), jax.process_count(), jax.devices())
    run(_CONFIG.value, _WORKDIR.value or "")
  except UserError as e:
    # An error every process of a job raised is printed by process 0 only.
    everywhere = getattr(e, "on_every_process", False)
    if not everywhere or jax.process_index() == 0:
      print(f"error: {e}", file=sys.stderr)
    _exit(2, everywhere)
  except Exception as e:  # pylint: disable=broad-except
    if (getattr(e, "on_every_process", False) or
        not jax.distributed.is_initialized()):
      raise
    if _peer_gone(e):  # Not this process's failure: one line, no traceback.
      print(f"process {jax.process_index()} of {jax.process_count()}: "
            "stopped: another process of the job ended "
            f"({str(e).splitlines()[0]})", file=sys.stderr)
      time.sleep(2)  # The process that ended first is reported first.
    else:
      traceback.print_exc()  # This process's failure alone.
    _exit(1, False)


# What a collective raises when another process of the job has ended.
_PEER_GONE = ("Connection closed by peer", "Connection reset by peer",
              "Broken pipe")


def _peer_gone(error: Exception) -> bool:
  return isinstance(error, jax.errors.JaxRuntimeError) and any(
      m in str(error) for m in _PEER_GONE)


def _exit(status: int, everywhere: bool) -> None:
  """Ends the process with `status`.

  In a job of several processes, an error of this process alone ends it at
  once: JAX's shutdown at exit would wait (minutes) for the other
  processes, which wait for this one in their next collective. The
  launcher then stops them (launch/local_processes.sh; srun
  --kill-on-bad-exit), or JAX's heartbeats do.
  """
  if everywhere or not jax.distributed.is_initialized():
    sys.exit(status)
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(status)  # pylint: disable=protected-access


def _parse_flags(argv):
  """absl flag parsing with one-line errors (e.g. an unknown config field)."""
  try:
    argv = flags.FLAGS(argv)
    _ = _CONFIG.value.stage  # Config files load lazily: fail here, in one line.
    return argv
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
  except OSError as e:
    print(f"error: {str(e).splitlines()[0]}: "
          f"{' '.join(str(e).split()[-8:])}", file=sys.stderr)
  except flags.Error as e:
    print(f"error: {e}", file=sys.stderr)
  except (AttributeError, KeyError, TypeError, ValueError) as e:
    # ml_collections raises these for --config.<unknown field>=... and for a
    # value of the wrong type; name the flag that holds the field.
    missing = str(e).strip("'\"")
    given = [a.split("=")[0] for a in argv[1:] if a.startswith("--config.")]
    field = next((f for f in given if missing in f.split(".")),
                 given[0] if given else "--config")
    print(f"error: {field}: {type(e).__name__}: {e} (not a field of the "
          "config, or a value of the wrong type)", file=sys.stderr)
  sys.exit(2)


def entry_point():
  flags.mark_flag_as_required("config")
  app.run(main, flags_parser=_parse_flags)


if __name__ == "__main__":
  entry_point()
