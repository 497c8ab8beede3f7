"""Who trains a run folder: one exclusive claim, the file `.lock` in the folder.

The claim names its holder, `HOST PID` (or `slurm JOBID` while a SLURM job holds it for a
sweep). It is taken atomically: written beside the folder's `.lock`, then hard-linked into
place, which fails when any claim is there. Reading a claim, judging it stale and replacing it
happen under an flock of the folder itself, which the kernel drops when its holder dies (even
on SIGKILL), so two processes never both take one folder and a stale claim (a process of this
host that is gone) is replaced only by one taker. A live claim is never taken, except by the
holder's own descendant that it started to do the work (`movelab sweep run` claims a run,
then its `movelab train` child adopts the claim).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import subprocess
import tempfile
from pathlib import Path

LOCK = ".lock"


class Claimed(Exception):
    """The folder is claimed by a live holder; `holder` says who."""

    def __init__(self, directory: Path, holder: str):
        super().__init__(f"{directory} is being trained by {holder} (its {LOCK}); wait for it "
                         "to finish or stop that process first")
        self.holder = holder


def me(pid: int | None = None) -> str:
    return f"{socket.gethostname()} {os.getpid() if pid is None else pid}"


def holder(directory: Path) -> str | None:
    try:
        return (Path(directory) / LOCK).read_text().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, UnicodeDecodeError):
        return ""  # unreadable: no live holder wrote it


def alive(claim: str | None) -> bool:
    """Whether the holder of `claim` may still be at work: a process of this host that exists
    (and is not a zombie), or a SLURM job that squeue lists; any claim of another host, or of
    a SLURM job where squeue does not answer, counts as alive, since from here it cannot be told
    (delete such a `.lock` by hand once its run is gone)."""
    if not claim:
        return False
    try:
        host, pid_text = claim.split()
        if host == "slurm":  # squeue lists a job while it is queued or running
            states = slurm_queue([pid_text])
            return states is None or pid_text in states
        pid = int(pid_text)
    except ValueError:
        return False
    if host != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # Linux: a zombie has exited and only waits for its parent to read its status
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def slurm_queue(job_ids: list[str]) -> dict[str, str] | None:
    """The state (PENDING, RUNNING, ...) of each of `job_ids` that squeue lists (a job leaves
    the list when it ends); None when squeue does not answer."""
    if not job_ids:
        return {}
    try:
        out = subprocess.run(["squeue", "--noheader", "--format=%i|%T",
                              f"--jobs={','.join(job_ids)}"],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode:  # it says so when none of the jobs is known any more
        return {} if "Invalid job id" in out.stderr else None
    return dict(line.split("|", 1) for line in out.stdout.split())


def ancestors() -> set[str]:
    """The claims this process may adopt: its ancestors on this host, and its SLURM job."""
    found, pid = set(), os.getppid()
    for _ in range(16):
        if pid <= 1:
            break
        found.add(me(pid))
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            break
    if os.environ.get("SLURM_JOB_ID"):
        found.add(f"slurm {os.environ['SLURM_JOB_ID']}")
    return found


@contextlib.contextmanager
def _guard(directory: Path):
    """An flock of the folder: every read-judge-write of its claim happens inside one."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # drops the flock


def _place(directory: Path, claim: str, *, replace: bool) -> None:
    descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=f"{LOCK}.partial-")
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(claim)
        if replace:
            os.replace(temporary, directory / LOCK)
        else:
            os.link(temporary, directory / LOCK)  # FileExistsError when a claim is there
    finally:
        Path(temporary).unlink(missing_ok=True)


def claim(directory: Path, adopt: set[str] = frozenset(), as_: str | None = None) -> str:
    """Claim `directory` (which must exist) for this process, or for `as_`; returns the claim
    written. A claim in `adopt` (see ancestors) is taken over only when it names a process of
    this host; a SLURM job's claim is adopted as it stands (its launcher releases it). Raises
    Claimed when a live process holds it."""
    directory, mine = Path(directory), as_ or me()
    with _guard(directory):
        current = holder(directory)
        if current is None:
            _place(directory, mine, replace=False)
            return mine
        if current in adopt:
            if current.startswith("slurm "):
                return current
            _place(directory, mine, replace=True)
            return mine
        if current == mine:
            return mine
        if alive(current):
            raise Claimed(directory, current)
        _place(directory, mine, replace=True)  # stale: its process is gone
        return mine


def replace(directory: Path, old: str, new: str) -> bool:
    """Rename the holder of a claim (e.g. to the SLURM job that now does the work), if `old`
    still holds it."""
    with _guard(Path(directory)):
        if holder(directory) != old:
            return False
        _place(Path(directory), new, replace=True)
        return True


def release(directory: Path, mine: str) -> None:
    """Drop the claim if it is `mine`, or stale (its holder gone, e.g. a child that adopted it
    and was killed)."""
    directory = Path(directory)
    if not directory.is_dir():
        return
    with _guard(directory):
        current = holder(directory)
        if current is not None and (current == mine or not alive(current)):
            (directory / LOCK).unlink(missing_ok=True)
