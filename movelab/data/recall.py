"""The positive control of the slot axis: a synthetic corpus whose achievable loss depends on how
many facts a model can store per token id (`--corpus recall:K=4`).

Vocabulary (the model's V): ids 0 .. K-1 are *cues*, ids K .. V-1 are *items* (N = V - K).
A table of facts gives every item k and cue c a successor f(k, c), an item drawn uniformly (from
`seed`). The stream is a run of triples

    c  k  f(k, c)        c ~ uniform over the K cues, k ~ uniform over the N items

so each item has K successors and the cue before it says which one follows. A model that stores
K facts per item id (MoVE: one per slot, the router choosing the slot from the cue its attention
has read) and reads the cue predicts every third token exactly; nothing predicts the cue or the
item. Training windows start at a triple (a cue), and so do the validation windows, so the floor
is analytic: with T targets per window, targets t = 0 .. T-1 are an item when (t + 1) % 3 == 1
(log2 N bits), a successor when (t + 1) % 3 == 2 (0 bits) and a cue when (t + 1) % 3 == 0
(log2 K bits); `floor_bits_per_token` averages these.

Bits per byte on this corpus: every synthetic token counts as one byte (`token_bytes` is 1 for
every id), so the val_bpb a run records here *is* bits per token, and the floor above is in the
same unit. No number from a recall run is comparable with a text corpus's bits per byte.

Spec: `recall:K=4`, optionally `recall:K=4,seed=0,tokens=4194304` (the facts' seed and the length
of the training stream; the validation stream is VAL_TRIPLES triples). Generated in process, in
well under a second, and the same for every run with the same spec and vocabulary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from movelab.data.corpus import RECALL_PREFIX as PREFIX
from movelab.data.errors import DataError
from movelab.data.shards import windows_at
from movelab.hashing import DATA_DIGITS, content_hash

DEFAULT_TOKENS = 1 << 22  # training stream: about 4.2M tokens
VAL_TRIPLES = 8192        # validation stream: 24,576 tokens
SPEC_HELP = "recall:K=4 (optionally ,seed=S,tokens=N)"


@dataclass(frozen=True)
class RecallSpec:
    successors: int  # K
    seed: int = 0
    tokens: int = DEFAULT_TOKENS


def parse_recall_spec(spec: str) -> RecallSpec:
    fields: dict[str, int] = {}
    for part in spec[len(PREFIX):].split(","):
        key, equals, value = part.strip().partition("=")
        if not equals or key not in ("K", "seed", "tokens") or key in fields:
            raise DataError(f"cannot read corpus {spec!r}; write {SPEC_HELP}")
        try:
            fields[key] = int(value)
        except ValueError:
            raise DataError(f"{key} in corpus {spec!r} must be a whole number; write "
                            f"{SPEC_HELP}") from None
    if "K" not in fields or fields["K"] < 1:
        raise DataError(f"corpus {spec!r} needs K >= 1 successors per item; write {SPEC_HELP}")
    if fields.get("tokens", DEFAULT_TOKENS) < 3 * 64:
        raise DataError(f"corpus {spec!r}: tokens must be at least 192")
    return RecallSpec(fields["K"], fields.get("seed", 0), fields.get("tokens", DEFAULT_TOKENS))


def floor_bits_per_token(successors: int, items: int, seq_len: int) -> float:
    """The lowest achievable validation bits per token at context seq_len (module doc)."""
    bits = {1: math.log2(items), 2: 0.0, 0: math.log2(successors)}
    return sum(bits[(t + 1) % 3] for t in range(seq_len)) / seq_len


@dataclass
class RecallData:
    """The recall corpus behind the loop's data interface (the same as TokenData's)."""

    spec: RecallSpec
    corpus_name: str
    vocab_size: int
    facts: np.ndarray        # (N, K): successor item id of item K + i under cue c
    train_tokens: np.ndarray
    val_tokens: np.ndarray
    token_bytes: np.ndarray  # 1 for every id: bits per byte = bits per token
    task = "text"
    eval_batch = 64

    @property
    def items(self) -> int:
        return self.vocab_size - self.spec.successors

    @property
    def epoch_tokens(self) -> int:
        return len(self.train_tokens)

    @property
    def content_hash(self) -> str:
        return content_hash([f"{self.corpus_name}|{self.vocab_size}", self.facts.tobytes()],
                            DATA_DIGITS)

    def floor_bits_per_token(self, seq_len: int) -> float:
        return floor_bits_per_token(self.spec.successors, self.items, seq_len)

    def train_batch(self, rng: np.random.Generator, batch_size: int,
                    seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Random windows that start at a triple (a cue)."""
        last_start = len(self.train_tokens) - seq_len - 1
        if last_start < 0:
            raise DataError(f"sequence length {seq_len} is longer than the recall training "
                            f"stream ({len(self.train_tokens)} tokens); raise tokens= in the spec")
        starts = 3 * rng.integers(0, last_start // 3 + 1, size=batch_size)
        return windows_at(self.train_tokens, starts, seq_len)

    def val_windows(self, seq_len: int,
                    max_windows: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Non-overlapping validation windows, each starting at a triple; with max_windows,
        that many spread evenly."""
        stride = 3 * math.ceil((seq_len + 1) / 3)
        count = (len(self.val_tokens) - seq_len - 1) // stride + 1
        if len(self.val_tokens) < seq_len + 1:
            raise DataError(f"sequence length {seq_len} is longer than the recall validation "
                            f"stream ({len(self.val_tokens)} tokens)")
        chosen = np.arange(count)
        if max_windows is not None and max_windows < count:
            chosen = np.arange(max_windows) * count // max_windows
        return windows_at(self.val_tokens, chosen * stride, seq_len)

    def target_bytes(self, targets: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.token_bytes).to(targets.device)[targets]

    def bytes_of(self, targets: torch.Tensor) -> int:
        return int(self.target_bytes(targets).sum())

    def describe(self) -> dict:
        return {"corpus": self.corpus_name, "content_hash": self.content_hash,
                "vocab_size": self.vocab_size, "trained_vocab_size": self.vocab_size,
                "train_tokens": len(self.train_tokens), "val_tokens": len(self.val_tokens),
                "train_bytes": len(self.train_tokens), "val_bytes": len(self.val_tokens),
                "bytes_per_token": 1.0, "successors": self.spec.successors, "items": self.items}


def prepare_recall_data(spec: str, vocab_size: int) -> RecallData:
    parsed = parse_recall_spec(spec)
    successors = parsed.successors
    if vocab_size < successors + 2:
        raise DataError(f"corpus {spec!r} needs a vocabulary of at least K + 2 = "
                        f"{successors + 2} ids (K cues, 2 or more items); raise --vocab-size")
    items = vocab_size - successors
    rng = np.random.default_rng([parsed.seed, 0])
    facts = rng.integers(successors, vocab_size, size=(items, successors))
    dtype = np.uint16 if vocab_size <= 2**16 else np.uint32
    train = _stream(np.random.default_rng([parsed.seed, 1]), facts, parsed.tokens // 3, dtype)
    val = _stream(np.random.default_rng([parsed.seed, 2]), facts, VAL_TRIPLES, dtype)
    return RecallData(parsed, spec, vocab_size, facts, train, val,
                      np.ones(vocab_size, dtype=np.int32))


def _stream(rng: np.random.Generator, facts: np.ndarray, triples: int, dtype) -> np.ndarray:
    items, successors = facts.shape
    cues = rng.integers(0, successors, size=triples)
    keys = rng.integers(0, items, size=triples)
    return np.stack([cues, keys + successors, facts[keys, cues]], axis=1).reshape(-1).astype(dtype)

