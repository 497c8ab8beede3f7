"""Where cached data lives, and writes that a killed process cannot leave half done."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def default_cache_dir() -> Path:
    """$MOVELAB_CACHE if set, else ~/.cache/movelab."""
    return Path(os.environ.get("MOVELAB_CACHE") or Path.home() / ".cache" / "movelab").expanduser()


@contextmanager
def building_directory(final: Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside `final`; when the block ends without an error, rename
    it to `final` in one step. A folder at `final` is therefore always complete. If another process
    finished `final` first, its folder is kept and ours discarded."""
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.partial-"))
    try:
        yield temporary
        try:
            temporary.rename(final)
        except OSError:
            if not final.is_dir():
                raise
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` (folders made as needed) so that `path` is always the old file or
    the new one, never a part: a temporary file `.NAME.partial-*` beside it, then a rename over
    it. The one writer of every file that must not be torn (records, checkpoints, caches)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.partial-")
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)


def write_json_atomically(path: Path, value: object, indent: int | None = None) -> None:
    """Write `value` as UTF-8 JSON to `path`, atomically (write_atomically)."""
    write_atomically(path, json.dumps(value, ensure_ascii=False, indent=indent).encode("utf-8"))
