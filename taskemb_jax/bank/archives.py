"""Reading members of the bank's archives: zip/wheel, tar(.gz), .deb.

Archives are read from bytes already verified against their pinned hash
(`taskemb_jax.bank.fetching.verify`); members are read by name, never
extracted to paths taken from the archive, and nothing in them is run. A
.deb is an ``ar`` archive read in Python (no root, no dpkg).
"""

from __future__ import annotations

import contextlib
import io
import shutil
import subprocess
import tarfile
import zipfile
from typing import Callable, Iterator

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


def _reader(where: str, data: bytes
           ) -> tuple[Callable[[str], bytes], Callable[[], None]]:
  """(read(member) -> bytes, close()) of a zip/wheel, tar(.gz) or .deb.

  `where` names the archive (its file name decides the format) in errors.
  """
  try:
    if where.endswith(".deb"):
      tar = open_deb_data(where, data)
    elif where.endswith((".whl", ".zip")):
      zf = zipfile.ZipFile(io.BytesIO(data))
      return zf.read, zf.close
    else:
      tar = tarfile.open(fileobj=io.BytesIO(data))
    members = {_strip_dot(m.name): m for m in tar.getmembers() if m.isfile()}
  except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError) as e:
    raise DataError(f"{where}: cannot open archive ({e}); delete it and "
                    "fetch again") from e

  def read(name: str) -> bytes:
    if name not in members:
      raise KeyError(name)
    return tar.extractfile(members[name]).read()

  return read, tar.close


@contextlib.contextmanager
def member_reader(archive: str, data: bytes
                 ) -> Iterator[Callable[[tuple[str, ...]], bytes]]:
  """Yields read(path) -> bytes over the members of an archive's bytes.

  `path` is a member name, or a path through nested archives: ``(outer
  member, inner member)`` reads a member of an archive inside `archive`.
  A missing member is a DataError naming the archive.
  """
  readers: dict[tuple[str, ...], Callable[[str], bytes]] = {}
  closers: list[Callable[[], None]] = []

  def read(path: tuple[str, ...]) -> bytes:
    outer = path[:-1]
    if outer not in readers:
      body = read(outer) if outer else data
      readers[outer], close = _reader("!".join((archive,) + outer), body)
      closers.append(close)
    try:
      return readers[outer](path[-1])
    except KeyError:
      raise DataError(f"{'!'.join((archive,) + outer)}: has no member "
                      f"{path[-1]!r}") from None

  try:
    yield read
  finally:
    for close in closers:
      close()
