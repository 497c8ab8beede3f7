"""Byte-level BPE (Hugging Face `tokenizers`) trained on a corpus's train split only.

Id 0 is `<|endoftext|>` (EOS), the separator placed before every document; the same string inside a
text encodes as ordinary bytes. All 256 byte symbols are in the vocabulary, so any text encodes, and
decoding gives the text back exactly.

Vocabulary size: when the training text supports fewer merges than asked for, the vocabulary is
PADDED to the requested size with ids that never occur. `vocab_size` is therefore always the
requested size (what the model's embedding must have); `trained_vocab_size` says how many are real.

`token_bytes[i]` is the number of UTF-8 bytes token i decodes to (0 for EOS and padding), for
bits per byte = total nats / (ln 2 * total bytes of the target tokens).

Trained once per (corpus content hash, vocab size), cached as tokenizer.json + token_bytes.npy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from movelab.data.cache import building_directory
from movelab.data.corpus import Corpus
from movelab.data.errors import DataError

EOS = "<|endoftext|>"
EOS_ID = 0
MIN_VOCAB_SIZE = 257  # 256 bytes + EOS


@dataclass(frozen=True)
class BpeTokenizer:
    tokenizer: Tokenizer
    token_bytes: np.ndarray  # int32, one entry per id of the padded vocabulary
    directory: Path  # holds tokenizer.json and token_bytes.npy

    @property
    def vocab_size(self) -> int:
        return len(self.token_bytes)

    @property
    def trained_vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()


def load_or_train_tokenizer(corpus: Corpus, vocab_size: int, cache_dir: Path,
                            progress: bool = False) -> BpeTokenizer:
    """The cached tokenizer for (corpus, vocab_size), trained on corpus.train the first time."""
    if vocab_size < MIN_VOCAB_SIZE:
        raise DataError(f"vocab size {vocab_size} is too small: byte-level BPE needs at least "
                        f"{MIN_VOCAB_SIZE} (256 bytes + the end-of-text token)")
    directory = tokenizer_directory(cache_dir, corpus.content_hash, vocab_size)
    if not directory.is_dir():
        with building_directory(directory) as building:
            tokenizer = train_bpe(corpus.train, vocab_size, progress)
            tokenizer.save(str(building / "tokenizer.json"))
            np.save(building / "token_bytes.npy", count_token_bytes(tokenizer, vocab_size))
    return BpeTokenizer(load_tokenizer(directory / "tokenizer.json"),
                        np.load(directory / "token_bytes.npy"), directory)


def tokenizer_directory(cache_dir: Path, content_hash: str, vocab_size: int) -> Path:
    return Path(cache_dir) / "bpe" / f"{content_hash}-v{vocab_size}"


def train_bpe(documents: list[str], vocab_size: int, progress: bool) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=progress)
    tokenizer.train_from_iterator(documents, trainer, length=len(documents))
    assert tokenizer.token_to_id(EOS) == EOS_ID
    return tokenizer


def load_tokenizer(path: Path) -> Tokenizer:
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.encode_special_tokens = True  # "<|endoftext|>" in a text is text, not EOS
    return tokenizer


def count_token_bytes(tokenizer: Tokenizer, vocab_size: int) -> np.ndarray:
    """UTF-8 bytes per id, padded with zeros to vocab_size. A byte-level token's string has one
    character per byte, so its length is its byte count, even for part of a multi-byte character."""
    counts = np.zeros(vocab_size, dtype=np.int32)
    for token_id in range(tokenizer.get_vocab_size()):
        if token_id != EOS_ID:
            counts[token_id] = len(tokenizer.id_to_token(token_id))
    return counts
