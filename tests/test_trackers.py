"""`--tracker tensorboard|wandb`: what the libraries wrote, read back, equals curve.csv and the
run's config. The trackers are an optional extra (`.[trackers]`, which `make test` installs);
without it these tests skip, saying so."""

import csv
import json
import os

import numpy as np
import pytest
from PIL import Image

from movelab.cli import main
from movelab.config import ConfigError
from movelab.images.task import SAMPLES_PNG, ImageTask
from movelab.training import trackers
from movelab.training.trackers import ENV_GROUP, ENV_TRACKERS, chosen_trackers

TINY = ["--depth", "1", "--width", "64", "--heads", "2", "--vocab-size", "320", "--seq-len", "32",
        "--batch-size", "8", "--tokens", "10240", "--evals", "4", "--threads", "1",
        "--no-progress"]


def needs(module):
    return pytest.importorskip(module, reason=f"the trackers extra is not installed (no {module}): "
                                              "pip install -e '.[trackers]'")


def curve_rows(run_dir):
    with open(run_dir / "curve.csv") as file:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(file)]


def train_tiny(corpus, cache, out, *flags):
    assert main(["train", "--corpus", corpus, "--cache-dir", str(cache), "--out", str(out),
                 *TINY, *flags]) == 0
    return json.loads((out / "result.json").read_text())


def test_tensorboard_event_files_hold_the_curve_and_the_config(corpus, cache, tmp_path):
    needs("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = train_tiny(corpus, cache, tmp_path / "run", "--tracker", "tensorboard")
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"),
                              size_guidance={"scalars": 0, "tensors": 0}).Reload()
    rows = curve_rows(tmp_path / "run")
    assert len(rows) == 4
    assert set(events.Tags()["scalars"]) == set(rows[0]) - {"step"}
    for key in set(rows[0]) - {"step"}:
        logged = [(e.step, e.value) for e in events.Scalars(key)]
        assert [step for step, _ in logged] == [row["step"] for row in rows]
        # event files store float32
        assert np.allclose([v for _, v in logged], [row[key] for row in rows], rtol=1e-6)
    text = events.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert json.loads(text.strip("`\n")) == result["config"]


def wandb_records(path):
    """The records of a .wandb file: a LevelDB-style log (32 KiB blocks of chunks, each with a
    7-byte header: crc32, length, type) after a 7-byte ':W&B' header, each record a protobuf."""
    from wandb.proto.wandb_internal_pb2 import Record

    data, block, position, pending = path.read_bytes(), 32768, 7, b""
    assert data[:4] == b":W&B"
    while position + 7 <= len(data):
        if block - position % block < 7:  # a block's tail too short for a header is padding
            position += block - position % block
            continue
        length, kind = int.from_bytes(data[position + 4:position + 6], "little"), data[position + 6]
        if kind == 0:
            position += block - position % block
            continue
        pending += data[position + 7:position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # a whole record, or the last chunk of one
            yield Record.FromString(pending)
            pending = b""


def test_wandb_offline_run_holds_the_curve_config_and_group(corpus, cache, tmp_path,
                                                            monkeypatch):
    needs("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv(ENV_GROUP, "my-sweep")
    result = train_tiny(corpus, cache, tmp_path / "run", "--tracker", "wandb")
    (run_file,) = (tmp_path / "run" / "wandb").glob(f"offline-run-*/run-{result['run_id']}.wandb")
    history, config, group = [], {}, None
    for record in wandb_records(run_file):
        if record.HasField("history"):
            items = {item.key or "/".join(item.nested_key): json.loads(item.value_json)
                     for item in record.history.item}
            history.append({k: v for k, v in items.items() if not k.startswith("_")}
                           | {"step": record.history.step.num})
        elif record.HasField("run"):
            config |= {item.key: json.loads(item.value_json) for item in record.run.config.update}
            group = record.run.run_group
    assert history == curve_rows(tmp_path / "run")
    assert {k: config[k] for k in result["config"]} == result["config"]
    assert group == "my-sweep"


def test_the_sample_grid_of_an_image_run_goes_to_tensorboard(tmp_path):
    needs("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from movelab.config import build_config
    from movelab.training.config import RunConfig, TrainConfig

    grid = np.zeros((12, 20, 3), dtype=np.uint8)
    grid[:, :10, 0] = 255
    Image.fromarray(grid).save(tmp_path / SAMPLES_PNG)
    run = RunConfig(build_config(depth=2), TrainConfig(tokens=1))
    opened = trackers.Trackers(("tensorboard",), tmp_path, run)
    opened.close([tmp_path / name for name in ImageTask.artefacts])
    events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"images": 0}).Reload()
    (image,) = events.Images("samples")
    assert (image.height, image.width) == (12, 20)


def test_trackers_come_from_the_flags_else_the_environment(monkeypatch):
    monkeypatch.delenv(ENV_TRACKERS, raising=False)
    assert chosen_trackers(None) == ()
    monkeypatch.setenv(ENV_TRACKERS, "wandb,tensorboard,wandb")
    assert chosen_trackers(None) == ("wandb", "tensorboard")
    assert chosen_trackers(["tensorboard"]) == ("tensorboard",)
    monkeypatch.setenv(ENV_TRACKERS, "tensorbored")
    with pytest.raises(ConfigError, match="unknown tracker tensorbored"):
        chosen_trackers(None)


def test_an_unknown_tracker_fails_with_one_line_and_status_2(corpus, cache, tmp_path, capsys,
                                                             monkeypatch):
    monkeypatch.setenv(ENV_TRACKERS, "mlflow")
    assert main(["train", "--corpus", corpus, "--cache-dir", str(cache), "--out",
                 str(tmp_path / "run"), *TINY]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown tracker mlflow" in err
    assert not (tmp_path / "run").exists()


def test_sweep_run_hands_its_trackers_and_name_to_every_run(tmp_path, monkeypatch):
    """`movelab sweep run --tracker` sets the environment its runs' processes inherit."""
    from movelab import sweep as sweeps

    seen = {}

    def fake_run_sweep(sweep, **kw):
        seen.update({k: os.environ.get(k) for k in (ENV_TRACKERS, ENV_GROUP)})
        return 0

    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "sweep.toml").write_text(
        '[train]\ncorpus = "text:/nonexistent"\nbatch_size = 2\n[budget]\ntokens = 1024\n'
        '[[group]]\nname = "g"\ndepths = [2]\nvariants = ["standard"]\n')
    monkeypatch.setattr(sweeps, "run_sweep", fake_run_sweep)
    for name in (ENV_TRACKERS, ENV_GROUP):  # restored to absent afterwards
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    assert main(["sweep", "run", "s", "--results-dir", str(tmp_path), "--tracker", "tensorboard",
                 "--tracker", "wandb", "--no-timing"]) == 0
    assert seen == {ENV_TRACKERS: "tensorboard,wandb", ENV_GROUP: "s"}
