"""Choosing the classifier-free guidance scale (`movelab cfg-scale RUN_DIR`): sample one trained
image run at several scales and score each against 10k *training* images (a fixed subset), so
that the choice does not look at the test images every run is finally scored on.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from movelab.config import ConfigError
from movelab.model import GPT
from movelab.training.config import RunConfig
from movelab.training.loop import RunError
from movelab.training.record import MODEL
from movelab.training.tasks import prepare_data


def load_image_run(run_dir: Path) -> tuple[RunConfig, GPT]:
    """The config and trained model of a finished image run directory."""
    run_dir = Path(run_dir)
    result_path, model_path = run_dir / "result.json", run_dir / MODEL
    if not result_path.exists():
        raise RunError(f"{run_dir} holds no finished run (no result.json); train it first with "
                       "`movelab train --task image ... --out DIR`")
    run = RunConfig.from_dict(json.loads(result_path.read_text())["config"])
    if run.task != "image":
        raise ConfigError(f"{run_dir} is a {run.task} run; guidance applies to image runs")
    if not model_path.exists():
        raise RunError(f"{run_dir} has no {MODEL} (image runs keep their final weights there; "
                       "it is not committed); retrain with `movelab train --from "
                       f"{result_path} --out DIR`")
    model = GPT(run.model)
    model.load_state_dict(torch.load(model_path, map_location="cpu", weights_only=True))
    return run, model.eval()


def choose_cfg_scale(run_dir: Path, scales: list[float], *, samples: int = 2000, seed: int = 0,
                     cache_dir: Path | None = None) -> list[dict]:
    """One row per scale: FID and class accuracy of `samples` images against training images;
    the row with the lowest FID has "best": True."""
    run, model = load_image_run(run_dir)
    data = prepare_data(run, cache_dir)
    evaluator = data.evaluator(reference="train")
    rows = []
    for scale in scales:
        start = time.perf_counter()
        images, labels = data.generate(model, samples, seed, cfg_scale=scale)
        fid, class_accuracy = evaluator.score(images, labels)
        rows.append({"cfg_scale": scale, "fid_train_reference": fid,
                     "class_accuracy": class_accuracy,
                     "samples": samples, "seconds": round(time.perf_counter() - start, 1),
                     "run": str(run_dir), "label": run.model.label, "best": False})
    if rows:
        min(rows, key=lambda r: r["fid_train_reference"])["best"] = True
    return rows


def format_scales(rows: list[dict]) -> str:
    lines = [f"{rows[0]['label']} ({rows[0]['run']}), {rows[0]['samples']} samples per scale, "
             "FID against 10k training images" if rows else "no scales",
             f"{'cfg scale':>10}{'FID':>10}{'class acc':>11}{'seconds':>9}"]
    for r in rows:
        lines.append(f"{r['cfg_scale']:>10g}{r['fid_train_reference']:>10.2f}"
                     f"{r['class_accuracy']:>11.3f}{r['seconds']:>9.1f}" + ("   <- lowest FID"
                                                                               if r["best"] else ""))
    return "\n".join(lines)
