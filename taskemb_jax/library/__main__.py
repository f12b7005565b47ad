"""``python -m taskemb_jax.library list|verify|remove <library> ...``."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from taskemb_jax.errors import UserError
from taskemb_jax.library.checks import verify
from taskemb_jax.library.store import FILES, open_library, remove


def _listing(lib: str) -> str:
  manifest = open_library(lib)
  lines = [f"{'task':<32} {'class':<15} {'examples':>8}  embeddings"]
  for name, e in sorted(manifest["tasks"].items()):
    e = e if isinstance(e, dict) else {}
    lines.append(f"{name[:32]:<32} {str(e.get('family', '?')):<15} "
                 f"{str(e.get('num_examples', '?')):>8}  "
                 f"{','.join(w for w in FILES if w in e) or '-'}")
  return "\n".join(lines + [f"{len(manifest['tasks'])} tasks in {lib}"])


def main(argv: Sequence[str] | None = None) -> int:
  """`list`, `verify` or `remove`; exit 2 on an error, 1 if verify fails."""
  parser = argparse.ArgumentParser(
      prog="python -m taskemb_jax.library",
      description="List, verify or remove the tasks of a task library.")
  sub = parser.add_subparsers(dest="command", required=True)
  sub.add_parser("list", help="the tasks and their embeddings").add_argument(
      "library")
  sub.add_parser("verify", help="check every task's files (hashes, zero "
                 "vectors); exit 1 if one is unusable").add_argument("library")
  rm = sub.add_parser("remove", help="remove tasks from the library")
  rm.add_argument("library")
  rm.add_argument("names", nargs="+", metavar="name")
  args = parser.parse_args(argv)
  try:
    if args.command == "list":
      print(_listing(args.library))
      return 0
    if args.command == "remove":
      remove(args.library, *args.names)
      print(f"removed {', '.join(args.names)} from {args.library}")
      return 0
    report = verify(args.library)
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  for name, found in report.items():
    print(f"{'ok ' if not found else 'BAD'} {name}"
          + (f": {'; '.join(found)}" if found else ""))
  bad = sum(1 for found in report.values() if found)
  print(f"{len(report)} tasks, {bad} unusable"
        + (f" (remove them: python -m taskemb_jax.library remove "
           f"{args.library} <name>)" if bad else ""))
  return 1 if bad else 0


if __name__ == "__main__":
  sys.exit(main())
