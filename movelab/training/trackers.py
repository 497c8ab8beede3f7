"""Watch a run while it trains: the rows of curve.csv (and the run's config; at the end the
pictures its task leaves, e.g. the image task's sample grid) also go to TensorBoard or Weights & Biases, through the libraries themselves.

  tensorboard  event files in <run dir>/tensorboard (torch.utils.tensorboard); a sweep's runs
               all live under results/<sweep>/runs/, so `tensorboard --logdir
               results/<sweep>/runs` watches the whole sweep, one curve per run
  wandb        one wandb run per movelab run (id = the config hash, so a resumed run continues
               it), grouped by sweep, files in <run dir>/wandb; offline unless this machine is
               logged in (`wandb login`) or WANDB_MODE says otherwise. `wandb sync <run
               dir>/wandb/offline-run-*` uploads an offline run later

Both are optional extras (`pip install -e .[trackers]`). The trackers of a run are its
`--tracker` flags, or else the comma list in $MOVELAB_TRACKERS (which `movelab sweep run
--tracker` sets for its runs, with $MOVELAB_TRACKER_GROUP = the sweep's name).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from movelab.config import ConfigError

TRACKERS = ("tensorboard", "wandb")
ENV_TRACKERS, ENV_GROUP = "MOVELAB_TRACKERS", "MOVELAB_TRACKER_GROUP"
WANDB_PROJECT = "movelab"


def chosen_trackers(flags: list[str] | None) -> tuple[str, ...]:
    """The trackers of a run: its flags, else $MOVELAB_TRACKERS; each known, each once."""
    names = flags if flags else [n for n in os.environ.get(ENV_TRACKERS, "").split(",") if n]
    names = [n.strip() for n in names]
    unknown = sorted(set(names) - set(TRACKERS))
    if unknown:
        raise ConfigError(f"unknown tracker {', '.join(unknown)}; choose from "
                          f"{', '.join(TRACKERS)} (repeat --tracker for both)")
    return tuple(dict.fromkeys(names))


class Trackers:
    """The open trackers of one run; `log` one curve row, `close` at the end (or on a stop)."""

    def __init__(self, names: tuple[str, ...], out_dir: Path, run, group: str | None = None):
        self.writers = [_OPENERS[name](Path(out_dir), run, group) for name in names]

    def log(self, row: dict) -> None:
        for writer in self.writers:
            writer.log(row)

    def close(self, pictures: list[Path] = ()) -> None:
        """Log those of the PNG `pictures` that exist (each under its file's stem: samples.png
        as "samples"), and close every tracker."""
        pictures = [Path(p) for p in pictures if Path(p).suffix == ".png" and Path(p).is_file()]
        for writer in self.writers:
            for picture in pictures:
                writer.image(picture)
            writer.close()
        self.writers = []


def open_trackers(names, out_dir: Path, run, *, active: bool = True) -> Trackers:
    """Trackers `names` for the run in `out_dir`; none on a rank that does not report."""
    return Trackers(tuple(names) if active else (), out_dir, run, os.environ.get(ENV_GROUP))


def _scalars(row: dict) -> dict:
    """A curve row's numbers (a memory run's diagnostics can be None: not defined there)."""
    return {key: float(value) for key, value in row.items()
            if key != "step" and value is not None}


def _need(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"--tracker needs {module.split('.')[0]}: pip install -e '.[trackers]' "
                          f"(or pip install {'tensorboard' if 'tensorboard' in module else module})"
                          ) from None


class _TensorBoard:
    def __init__(self, out_dir: Path, run, group: str | None):
        tensorboard = _need("torch.utils.tensorboard")
        _need("tensorboard")
        self.writer = tensorboard.SummaryWriter(log_dir=str(out_dir / "tensorboard"))
        self.writer.add_text("config", "```\n" + json.dumps(run.to_dict(), indent=1) + "\n```")

    def log(self, row: dict) -> None:
        for key, value in _scalars(row).items():
            self.writer.add_scalar(key, value, global_step=int(row["step"]))
        self.writer.flush()

    def image(self, path: Path) -> None:
        import numpy as np
        from PIL import Image

        self.writer.add_image(path.stem, np.asarray(Image.open(path).convert("RGB")),
                              dataformats="HWC")

    def close(self) -> None:
        self.writer.close()


class _Wandb:
    def __init__(self, out_dir: Path, run, group: str | None):
        wandb = _need("wandb")
        self.wandb = wandb
        mode = os.environ.get("WANDB_MODE") or ("online" if wandb.login(prompt=False, verify=False)
                                                else "offline")
        self.run = wandb.init(project=WANDB_PROJECT, id=run.hash(), name=run.model.label,
                              group=group, config=run.to_dict(), dir=str(out_dir), mode=mode,
                              resume="allow")

    def log(self, row: dict) -> None:
        self.run.log(_scalars(row), step=int(row["step"]))

    def image(self, path: Path) -> None:
        self.run.log({path.stem: self.wandb.Image(str(path))})

    def close(self) -> None:
        self.run.finish()
        self.wandb.teardown()  # finish() returns before wandb's service has written every record


_OPENERS = {"tensorboard": _TensorBoard, "wandb": _Wandb}
