"""Run configs with and without the image task: committed text runs keep their hashes, image
settings are serialised only for image runs, the CLI's --task image sets the image shapes, and
an image sweep expands into image runs."""

import json
from pathlib import Path

import pytest

from movelab.cli import build_parser, main, run_config_from_args
from movelab.config import ConfigError, build_config
from movelab.sweep import RUNS_CSV_COLUMNS, load_sweep
from movelab.training.config import ImageConfig, RunConfig, TrainConfig

COMMITTED = Path(__file__).resolve().parents[1] / "results" / "cpu-text" / "runs"


def committed_results():
    return sorted(COMMITTED.glob("*/result.json"))


@pytest.mark.skipif(not committed_results(), reason="no committed cpu-text runs")
def test_committed_text_runs_keep_their_config_hash():
    """Runs are found by config hash: adding the image task must not rename any text run."""
    paths = committed_results()
    for path in paths[:3] + paths[-2:]:
        result = json.loads(path.read_text())
        run = RunConfig.from_dict(result["config"])
        assert run.task == "text" and "image" not in run.to_dict()
        assert run.hash() == result["config_hash"] == path.parent.name


def image_model(**kw):
    return build_config(depth=2, vocab_size=523, seq_len=49, **kw)


def test_image_settings_are_serialised_only_for_image_runs():
    text = RunConfig(build_config(depth=2), TrainConfig(tokens=100))
    assert set(text.to_dict()) == {"model", "train"} and text.image is None
    image = RunConfig(image_model(), TrainConfig(corpus="fashion-mnist", tokens=100))
    assert image.image == ImageConfig() and image.task == "image"  # the defaults, filled in
    assert image.to_dict()["image"]["fid_samples"] == 10_000
    assert RunConfig.from_dict(json.loads(json.dumps(image.to_dict()))) == image
    guided = RunConfig(image_model(), TrainConfig(corpus="fashion-mnist", tokens=100),
                       ImageConfig(cfg_scale=3.0))
    assert guided.hash() != image.hash()  # sampling settings decide the FID: they name the run
    with pytest.raises(ConfigError, match="apply to the image task"):
        RunConfig(build_config(depth=2), TrainConfig(tokens=100), ImageConfig())
    with pytest.raises(ConfigError, match="needs vocab_size 523"):
        RunConfig(build_config(depth=2), TrainConfig(corpus="fashion-mnist", tokens=100))
    with pytest.raises(ConfigError, match="needs seq_len 196"):
        RunConfig(image_model(), TrainConfig(corpus="fashion-mnist", tokens=100),
                  ImageConfig(patch=2))
    with pytest.raises(ConfigError, match="unknown key .cfg. \(did you mean .cfg_scale.\?\)"):
        RunConfig.from_dict({**image.to_dict(), "image": {"cfg": 2}})


@pytest.mark.parametrize("kw,message", [({"patch": 5}, "must divide the image size 28"),
                                        ({"label_dropout": 0.0}, "needs an unconditional model"),
                                        ({"temperature": 0.0}, "must be a finite number above 0"),
                                        ({"top_k": 0}, "at least 1"),
                                        ({"fid_samples": 1}, "at least 2")])
def test_impossible_image_settings_say_what_to_change(kw, message):
    with pytest.raises(ConfigError, match=message):
        ImageConfig(**kw)


def parse_train(*argv):
    return run_config_from_args(build_parser().parse_args(["train", *argv]))


def test_task_image_sets_corpus_vocabulary_and_context():
    run = parse_train("--task", "image", "--preset", "cpu-d4", "--value-path", "move",
                      "--density", "4", "--cfg-scale", "2", "--top-k", "100")
    assert run.train.corpus == "fashion-mnist"
    assert (run.model.vocab_size, run.model.seq_len, run.model.depth, run.model.slots) == \
        (523, 49, 4, 8)
    assert run.image == ImageConfig(cfg_scale=2.0, top_k=100)
    assert parse_train("--corpus", "fashion-mnist").task == "image"  # the corpus implies it
    assert parse_train("--task", "image", "--patch", "7", "--codebook-size", "64").model.seq_len == 16
    assert parse_train("--depth", "2").task == "text"


@pytest.mark.parametrize("argv,message", [
    (["--cfg-scale", "2"], "image settings (--cfg-scale) apply to the image task"),
    (["--task", "text", "--corpus", "fashion-mnist"], "is image data; use --task image"),
    (["--task", "image", "--corpus", "wiki"], "not to the text corpus 'wiki'"),
    (["--task", "image", "--vocab-size", "4096"], "needs vocab_size 523"),
    (["--task", "image", "--patch", "3"], "must divide the image size"),
])
def test_mismatched_image_flags_fail_in_one_line(capsys, argv, message):
    assert main(["train", "--depth", "2", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_image_sweep_expands_into_image_runs(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "sweep.toml").write_text("""
[train]
corpus = "fashion-mnist"
batch_size = 8
[image]
cfg_scale = 2.0
fid_samples = 5000
[budget]
tokens_per_param = 1.0
[[group]]
name = "grid"
depths = [2, 4]
variants = ["standard", "move x4"]
""")
    sweep = load_sweep("img", tmp_path)
    assert len(sweep.runs) == 4
    for planned in sweep.runs:
        run = planned.run
        assert run.task == "image" and run.image == ImageConfig(cfg_scale=2.0, fid_samples=5000)
        assert (run.model.vocab_size, run.model.seq_len) == (523, 49)
        assert run.train.tokens % (8 * 49) == 0
    assert RUNS_CSV_COLUMNS[-5:] == ("bits_per_token", "fid", "class_accuracy", "fid_samples",
                                     "cfg_scale")
    (tmp_path / "img" / "sweep.toml").write_text(
        (tmp_path / "img" / "sweep.toml").read_text().replace("fashion-mnist", "wiki"))
    with pytest.raises(ConfigError, match="has an .image. table but its corpus is text"):
        load_sweep("img", tmp_path)
