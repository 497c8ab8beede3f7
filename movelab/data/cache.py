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


def write_json_atomically(path: Path, value: object, indent: int | None = None) -> None:
    """Write `value` as JSON to a temporary file beside `path`, then rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.partial-")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            json.dump(value, file, ensure_ascii=False, indent=indent)
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)
