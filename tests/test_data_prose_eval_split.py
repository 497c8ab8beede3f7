"""Evaluating on dev or test: TrainConfig.eval_split, kept out of the hash at its default, and the
test stream of a corpus that has one (prose, built here from small databases)."""

import json
from pathlib import Path

import pytest

from movelab.cli import main
from movelab.config import ConfigError, build_config
from movelab.data import prose
from movelab.training.config import ImageConfig, RunConfig, TrainConfig
from movelab.training.loop import train

from test_data_prose import sources  # noqa: F401 (a fixture)

REPO = Path(__file__).resolve().parents[1]


def test_default_eval_split_leaves_dicts_and_committed_run_ids_as_they_were():
    assert "eval_split" not in TrainConfig(tokens=1).to_dict()
    committed = sorted(REPO.glob("results/cpu-text/runs/*/result.json"))[:5]
    assert committed
    for path in committed:
        result = json.loads(path.read_text())
        assert RunConfig.from_dict(result["config"]).hash() == result["run_id"]


def test_test_split_is_a_different_run_and_round_trips():
    model = build_config(depth=2)
    dev, test = (RunConfig(model, TrainConfig(tokens=1000, eval_split=split))
                 for split in ("dev", "test"))
    assert test.to_dict()["train"]["eval_split"] == "test"
    assert RunConfig.from_dict(test.to_dict()) == test and test.hash() != dev.hash()
    with pytest.raises(ConfigError, match="unknown --eval-split .val.; choose one of dev, test"):
        TrainConfig(tokens=1, eval_split="val")
    image = ImageConfig()
    with pytest.raises(ConfigError, match="applies to text corpora"):
        RunConfig(build_config(depth=2, vocab_size=image.layout.vocab_size,
                               seq_len=image.layout.seq_len),
                  TrainConfig(tokens=1, corpus="fashion-mnist", eval_split="test"), image)


def test_cli_eval_split_on_a_corpus_without_test_split_is_one_line(corpus, cache, tmp_path,
                                                                   capsys):
    status = main(["train", "--corpus", corpus, "--depth", "1", "--width", "64", "--heads", "2",
                   "--vocab-size", "300", "--seq-len", "32", "--tokens", "2048", "--threads", "1",
                   "--eval-split", "test", "--cache-dir", str(cache), "--out", str(tmp_path / "r"),
                   "--no-progress"])
    assert status == 2
    assert "has no test split" in capsys.readouterr().err


def test_training_scores_the_split_it_is_told(sources, monkeypatch, tmp_path, one_thread):  # noqa: F811
    monkeypatch.setattr(prose, "SOURCES", sources)
    model = build_config(depth=1, width=64, heads=2, vocab_size=300, seq_len=16)
    scored = {}
    for split in ("dev", "test"):
        run = RunConfig(model, TrainConfig(corpus="prose", tokens=1024, batch_size=4, evals=1,
                                           eval_split=split))
        result = train(run, tmp_path / split, cache_dir=tmp_path / "cache", progress=False)
        assert result["data"]["eval_split"] == split
        scored[split] = (result["data"]["val_bytes"], result["val_bpb"])
    splits = prose.load_prose(tmp_path / "cache")
    for split in ("dev", "test"):
        assert scored[split][0] == sum(len(d.text.encode()) for d in getattr(splits, split))
    assert scored["dev"][1] != scored["test"][1]
