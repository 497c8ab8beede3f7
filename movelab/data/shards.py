"""Token shards: `prepare_text_data` turns a corpus into cached token memmaps and serves them.

Each split is one flat token stream, EOS before every document. A corpus with a test split
(`prose`) gets a third stream; a TokenData serves the one its `eval_split` names, "dev" (the
validation split every corpus has) or "test", as its validation tokens. The streams are cached
beside the tokenizer (cache_dir/bpe/<content hash>-v<vocab>/tokens/), so they can never outlive
the tokenizer that made them, and every cache folder appears in one rename, so a killed process
leaves no half cache behind.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer
from tqdm import tqdm

from movelab.data.cache import building_directory, default_cache_dir
from movelab.data.corpus import FINEWEB_MAX_DOCS, load_corpus
from movelab.data.errors import DataError
from movelab.data.tokenizer import EOS_ID, BpeTokenizer, load_or_train_tokenizer

DOCUMENTS_PER_BATCH = 256  # documents encoded per encode_batch call
STREAMS = {"dev": "val", "test": "test"}  # evaluation split -> its token stream's file stem


@dataclass
class TokenData:
    corpus_name: str
    content_hash: str
    vocab_size: int  # the model's embedding size; ids >= trained_vocab_size never occur
    trained_vocab_size: int
    train_tokens: np.memmap
    val_tokens: np.memmap  # the eval_split's tokens
    token_bytes: np.ndarray  # UTF-8 bytes of each token id (0 for EOS and padding)
    tokenizer: Tokenizer
    train_bytes: int  # UTF-8 bytes of each split's text
    val_bytes: int
    eval_split: str = "dev"
    task = "text"  # what the training loop reads (class attributes, not fields)
    eval_batch = 16  # validation windows per forward pass

    @property
    def epoch_tokens(self) -> int:
        """Tokens in one pass over the training split."""
        return len(self.train_tokens)

    def train_batch(self, rng: np.random.Generator, batch_size: int,
                    seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, y), int64 of shape (batch_size, seq_len): random training windows drawn with `rng`,
        y is x shifted left by one token."""
        if len(self.train_tokens) <= seq_len:
            raise DataError(f"sequence length {seq_len} is longer than the training split "
                            f"({len(self.train_tokens)} tokens); use a smaller --seq-len or a "
                            "larger corpus")
        starts = rng.integers(0, len(self.train_tokens) - seq_len, size=batch_size)
        return windows_at(self.train_tokens, starts, seq_len)

    def val_windows(self, seq_len: int,
                    max_windows: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, y) of the validation split cut into consecutive, non-overlapping windows of seq_len
        targets; with max_windows, that many of them spread evenly over the split. The same
        windows for every run on this corpus and seq_len."""
        window_count = (len(self.val_tokens) - 1) // seq_len
        if window_count < 1:
            raise DataError(f"sequence length {seq_len} is longer than the validation split "
                            f"({len(self.val_tokens)} tokens); use a smaller --seq-len or a "
                            "larger corpus")
        chosen = np.arange(window_count)
        if max_windows is not None and max_windows < window_count:
            chosen = np.arange(max_windows) * window_count // max_windows
        return windows_at(self.val_tokens, chosen * seq_len, seq_len)

    def target_bytes(self, targets: torch.Tensor) -> torch.Tensor:
        """UTF-8 bytes of each target token, same shape and device as `targets`."""
        return torch.from_numpy(self.token_bytes).to(targets.device)[targets]

    def bytes_of(self, targets: torch.Tensor) -> int:
        """Total UTF-8 bytes of the target tokens: bits per byte = nats / (ln 2 * bytes_of(y))."""
        return int(self.target_bytes(targets).sum())

    def describe(self) -> dict:
        return {
            "corpus": self.corpus_name,
            "content_hash": self.content_hash,
            "vocab_size": self.vocab_size,
            "trained_vocab_size": self.trained_vocab_size,
            "train_tokens": len(self.train_tokens),
            "val_tokens": len(self.val_tokens),
            "train_bytes": self.train_bytes,
            "val_bytes": self.val_bytes,
            "eval_split": self.eval_split,
            "bytes_per_token": round(self.train_bytes / len(self.train_tokens), 4),
        }


def prepare_text_data(spec: str = "wiki", vocab_size: int = 4096, cache_dir: Path | None = None,
                      progress: bool = True, *, max_docs: int = FINEWEB_MAX_DOCS,
                      eval_split: str = "dev") -> TokenData:
    """Load the corpus `spec`, train (or load) its tokenizer and tokenize every split, each step
    cached under cache_dir (default: $MOVELAB_CACHE, else ~/.cache/movelab); validation serves
    `eval_split`. max_docs bounds the fineweb-edu corpora."""
    if eval_split not in STREAMS:
        raise DataError(f"unknown evaluation split {eval_split!r}; choose dev or test")
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    corpus = load_corpus(spec, cache_dir, max_docs=max_docs, progress=progress)
    bpe = load_or_train_tokenizer(corpus, vocab_size, cache_dir, progress)
    directory = bpe.directory / "tokens"
    if not directory.is_dir():
        with building_directory(directory) as building:
            dtype = token_dtype(vocab_size)
            train_tokens, train_bytes = write_token_stream(bpe, corpus.train,
                                                           building / "train.bin", dtype, progress)
            val_tokens, val_bytes = write_token_stream(bpe, corpus.val, building / "val.bin", dtype,
                                                       progress)
            meta = {"corpus": corpus.name, "dtype": np.dtype(dtype).name,
                    "train_tokens": train_tokens, "train_bytes": train_bytes,
                    "val_tokens": val_tokens, "val_bytes": val_bytes}
            if corpus.test:
                meta["test_tokens"], meta["test_bytes"] = write_token_stream(
                    bpe, corpus.test, building / "test.bin", dtype, progress)
            (building / "meta.json").write_text(json.dumps(meta, indent=1))
    meta = json.loads((directory / "meta.json").read_text())
    stream = STREAMS[eval_split]
    if f"{stream}_bytes" not in meta:
        raise DataError(f"the corpus {spec} has no test split (prose has one); evaluate on its "
                        "dev split (eval_split = \"dev\", the default)")
    return TokenData(
        corpus_name=corpus.name, content_hash=corpus.content_hash, vocab_size=bpe.vocab_size,
        trained_vocab_size=bpe.trained_vocab_size,
        train_tokens=np.memmap(directory / "train.bin", dtype=meta["dtype"], mode="r"),
        val_tokens=np.memmap(directory / f"{stream}.bin", dtype=meta["dtype"], mode="r"),
        token_bytes=bpe.token_bytes, tokenizer=bpe.tokenizer,
        train_bytes=meta["train_bytes"], val_bytes=meta[f"{stream}_bytes"], eval_split=eval_split)


def token_dtype(vocab_size: int) -> type[np.unsignedinteger]:
    return np.uint16 if vocab_size <= 2**16 else np.uint32


def write_token_stream(bpe: BpeTokenizer, documents: list[str], path: Path, dtype,
                       progress: bool) -> tuple[int, int]:
    """Write EOS + tokens of each document to `path`; return (token count, UTF-8 byte count)."""
    token_count = byte_count = 0
    with open(path, "wb") as file, tqdm(total=len(documents), desc=f"tokenizing {path.stem}",
                                        unit="doc", disable=not progress) as bar:
        for start in range(0, len(documents), DOCUMENTS_PER_BATCH):
            batch = documents[start:start + DOCUMENTS_PER_BATCH]
            tokens = np.concatenate([np.array([EOS_ID, *encoding.ids], dtype=dtype)
                                     for encoding in bpe.tokenizer.encode_batch(batch)])
            tokens.tofile(file)
            token_count += len(tokens)
            byte_count += int(bpe.token_bytes[tokens].sum())
            bar.update(len(batch))
    return token_count, byte_count


def windows_at(tokens: np.ndarray, starts: np.ndarray,
               seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs tokens[s : s+seq_len] and targets tokens[s+1 : s+seq_len+1] for each start s."""
    windows = torch.from_numpy(np.array(tokens[starts[:, None] + np.arange(seq_len + 1)],
                                        dtype=np.int64))
    return windows[:, :-1].contiguous(), windows[:, 1:].contiguous()
