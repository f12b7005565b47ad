"""The task library: embeddings of many tasks on disk, safe to share.

Layout::

  <library>/manifest.json            {"version": 1, "tasks": {name: entry}}
  <library>/<folder>/textemb.npy     [hidden] float32
  <library>/<folder>/taskemb.npz     one [hidden] array per component
  <library>/<folder>/entry.json      the task's manifest entry

`store` reads, writes and repairs it under inter-process locks (its
docstring says how a kill at any instant leaves every task at its old or
new version); `checks` says which embeddings can be ranked and which
compare. Command line::

  python -m taskemb_jax.library list <library>
  python -m taskemb_jax.library verify <library>
  python -m taskemb_jax.library remove <library> <name> [<name> ...]
"""

from taskemb_jax.errors import LibraryError  # noqa: F401
from taskemb_jax.library.checks import (  # noqa: F401
    check_compatible, comparable_options, problems, verify)
from taskemb_jax.library.store import (  # noqa: F401
    ENTRY, FILES, LOCK, MANIFEST, PER_TASK_OPTIONS, TASKEMB, TEXTEMB, TURN,
    VERSION, add, folder_of, load, load_all, open_library, remove, repair,
    tasks)
