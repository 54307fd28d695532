"""A small, realistic example model that ``mlsec demo`` (and the tests) build from scratch.

Everything is generated in code: a Hugging Face style directory with a model card, a config, a
tokenizer, safetensors weights and a benign pickle checkpoint. Nothing is downloaded.
"""

from __future__ import annotations

import json
import pickle
import random
import struct
from collections import OrderedDict
from pathlib import Path

__all__ = ["MODEL_CARD", "build_example_model", "write_safetensors"]

MODEL_CARD = """\
---
license: apache-2.0
language: en
library_name: transformers
pipeline_tag: text-classification
datasets:
  - imdb
base_model: distilbert-base-uncased
---
# tiny-sentiment

A tiny sentiment classifier built by `mlsec demo` to show the supply-chain checks end to end.
Its weights are random; do not use it for anything but demonstrations.

## Training data
Fine-tuned on the `imdb` reviews data set.
"""


def write_safetensors(path: Path, tensors: dict[str, tuple[str, list[int], bytes]]) -> None:
    """Write a valid safetensors file from ``{name: (dtype, shape, raw little-endian bytes)}``."""
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)  # the format pads the header to 8 bytes
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for _dtype, _shape, raw in tensors.values():
            f.write(raw)


def build_example_model(dest: Path, *, seed: int = 0) -> Path:
    """Create the example model directory ``dest`` and return it."""
    rng = random.Random(seed)  # noqa: S311 - demo weights, not secrets
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "README.md").write_text(MODEL_CARD)
    config = {
        "architectures": ["DistilBertForSequenceClassification"],
        "model_type": "distilbert",
        "hidden_size": 16,
        "num_labels": 2,
        "id2label": {"0": "NEGATIVE", "1": "POSITIVE"},
    }
    (dest / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    vocab = {tok: i for i, tok in enumerate(["[PAD]", "[UNK]", "good", "bad", "movie", "the"])}
    tokenizer = {"version": "1.0", "model": {"type": "WordPiece", "vocab": vocab}}
    (dest / "tokenizer.json").write_text(json.dumps(tokenizer) + "\n")

    def floats(n: int) -> bytes:
        return struct.pack(f"<{n}f", *(rng.uniform(-1, 1) for _ in range(n)))

    write_safetensors(
        dest / "model.safetensors",
        {
            "embeddings.weight": ("F32", [6, 16], floats(96)),
            "classifier.weight": ("F32", [2, 16], floats(32)),
            "classifier.bias": ("F32", [2], floats(2)),
        },
    )
    # A benign pickle of plain containers, like a training-state file next to the weights.
    state = OrderedDict(epoch=3, lr=5e-5, labels=["NEGATIVE", "POSITIVE"], history=[0.61, 0.42])
    (dest / "training_state.pkl").write_bytes(pickle.dumps(state, protocol=4))
    return dest
