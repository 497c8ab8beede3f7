"""Content hashes: the one key scheme of run ids (movelab.config.config_hash) and of every cache
(corpora, tokenizers and token shards, image codes, the FID classifier and its feature
statistics). A key is a sha256 over its parts in order (bytes as they are, text as UTF-8), as
hex, cut to `digits`: 16 for the content of a data set (recorded in every run as its data's
content_hash), 12 for everything else (settings, source files, run configs). Changing what a key
covers moves its cache to a new folder: the old one is left, and the data is rebuilt."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

DATA_DIGITS, KEY_DIGITS = 16, 12


def content_hash(parts: Iterable[bytes | str], digits: int = KEY_DIGITS) -> str:
    """The key of `parts`, hashed in order (a generator is read one part at a time)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
    return digest.hexdigest()[:digits]


def array_bytes(array) -> bytes:
    """A numpy array as a key part: its shape (as repr) then its values in C order."""
    return repr(array.shape).encode() + array.tobytes(order="C")
