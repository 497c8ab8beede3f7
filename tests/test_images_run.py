"""A tiny image run end to end through the CLI, on real Fashion-MNIST images (a 3000-image
subset, skipped when the dataset is absent), with a 32-code tokenizer and a tiny FID classifier:
its record, curve, sample grid and runs.csv row; resuming it equals running it straight."""

import csv
import io
import json
import math

import pytest
from PIL import Image

from movelab.cli import main
from movelab.images.task import ImageTaskData
from movelab.sweep import RUNS_CSV_COLUMNS, PlannedRun, csv_row
from movelab.training.config import RunConfig
from movelab.training.loop import Interrupted, train


pytestmark = pytest.mark.usefixtures("one_thread")


def argv(folder, cache, out, *extra):
    return ["train", "--task", "image", "--corpus", f"fashion-mnist:{folder}",
            "--codebook-size", "32", "--depth", "2", "--width", "32", "--heads", "1",
            "--value-path", "move", "--density", "2", "--batch-size", "16", "--tokens",
            str(16 * 49 * 60), "--evals", "3", "--fid-samples", "200", "--cfg-scale", "2",
            "--out", str(out), "--cache-dir", str(cache), "--no-progress", *extra]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("image-cache")


def test_image_run_writes_record_curve_and_sample_grid(fashion_subset, cache, tmp_path,
                                                       tiny_classifier, capsys):
    out = tmp_path / "run"
    assert main(argv(fashion_subset, cache, out)) == 0
    assert "bits_per_token" in capsys.readouterr().out
    result = json.loads((out / "result.json").read_text())
    assert result["task"] == "image" and result["config"]["image"]["codebook_size"] == 32
    assert result["config"]["model"]["vocab_size"] == 32 + 11
    # the codes are far from uniform (mostly black tiles): the model learns that quickly
    assert result["bits_per_token"] < 0.8 * math.log2(32)
    assert result["val_bpb"] is None and result["val_loss"] == pytest.approx(
        result["bits_per_token"] * math.log(2))
    assert result["fid"] > 0 and 0 <= result["class_accuracy"] <= 1
    assert result["fid_samples"] == 200 and result["cfg_scale"] == 2.0
    assert result["fid_tokenizer_floor"] < result["fid"]
    assert result["tokens_seen"] == 60 * 16 * 49 and result["data"]["train_images"] == 3000
    curve = (out / "curve.csv").read_text().splitlines()
    assert curve[0].endswith("val_loss,bits_per_token") and len(curve) == 1 + 3
    grid = Image.open(out / "samples.png")
    assert grid.format == "PNG" and grid.size == (10 * 58 + 2, 10 * 58 + 2)  # 10 x 10 samples
    assert (out / "model.pt").exists() and not (out / "checkpoint.pt").exists()

    row = csv_row(result, PlannedRun(RunConfig.from_dict(result["config"]), "move x2", ["grid"]))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=RUNS_CSV_COLUMNS)
    writer.writeheader()
    writer.writerow(row)
    [read] = list(csv.DictReader(io.StringIO(buffer.getvalue())))
    assert read["task"] == "image" and read["val_bpb"] == ""
    assert float(read["bits_per_token"]) == result["bits_per_token"]
    assert float(read["fid"]) == result["fid"] and read["fid_samples"] == "200"
    assert read["corpus"] == f"fashion-mnist:{fashion_subset}"


def test_image_run_resumes_to_the_same_result(fashion_subset, cache, tmp_path, tiny_classifier,
                                              interrupt_at_batch):
    from movelab.cli import build_parser, run_config_from_args

    run = run_config_from_args(build_parser().parse_args(argv(fashion_subset, cache, "x")))
    straight = train(run, tmp_path / "straight", cache_dir=cache, progress=False)
    with interrupt_at_batch(ImageTaskData, 33), pytest.raises(Interrupted):
        train(run, tmp_path / "stopped", cache_dir=cache, progress=False)
    resumed = train(run, tmp_path / "stopped", resume=True, cache_dir=cache, progress=False)
    for key in ("bits_per_token", "fid", "class_accuracy"):
        assert resumed[key] == straight[key]
    assert (tmp_path / "stopped" / "samples.png").read_bytes() == \
        (tmp_path / "straight" / "samples.png").read_bytes()
