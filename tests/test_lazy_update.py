"""The lazy memory update (`memory_update = "lazy"`): row-sparse gradients of the memory equal
the dense ones, clipping over them equals torch's, SparseAdam leaves the rows a batch did not
touch where they are (dense AdamW's momentum keeps moving them), resume is exact, and the
combinations it does not support fail with one line."""

import copy

import pytest
import torch

from movelab.cli import main
from movelab.config import build_config
from movelab.data import TokenData
from movelab.model import GPT
from movelab.training.config import RunConfig, TrainConfig
from movelab.training.loop import Interrupted, train
from movelab.training.optim import build_optimizers, clip_gradients

MEMORY_WEIGHT = {"move": "bank.weight", "lave": "blocks.1.attn.value_mix.table.weight"}


def twin_models(value_path):
    torch.manual_seed(0)
    cfg = build_config(depth=2, width=32, heads=1, vocab_size=64, seq_len=16,
                       value_path=value_path, density=2)
    dense = GPT(cfg)
    with torch.no_grad():  # residual outputs and routers start at zero: give the memory a gradient
        for p in dense.parameters():
            if not p.any():
                p.normal_(0, 0.05)
    lazy = copy.deepcopy(dense)
    return (cfg, (dense, build_optimizers(dense, TrainConfig(tokens=1))),
            (lazy, build_optimizers(lazy, TrainConfig(tokens=1, memory_update="lazy"))))


def train_step(model, optimizers, tokens, max_norm=0.05):
    model(tokens[:, :-1], tokens[:, 1:]).backward()
    norm = clip_gradients(model.parameters(), max_norm)
    for optimizer in optimizers:
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return norm


@pytest.mark.parametrize("value_path", ["move", "lave"])
def test_sparse_gradients_and_their_clipping_equal_the_dense_ones(value_path):
    cfg, (dense, _), (lazy, lazy_optimizers) = twin_models(value_path)
    assert [type(o).__name__ for o in lazy_optimizers] == ["AdamW", "SparseAdam"]
    tokens = torch.randint(cfg.vocab_size, (4, cfg.seq_len + 1),
                           generator=torch.Generator().manual_seed(1))
    for model in (dense, lazy):
        model(tokens[:, :-1], tokens[:, 1:]).backward()
    expected = torch.nn.utils.clip_grad_norm_(dense.parameters(), 0.05)
    assert clip_gradients(lazy.parameters(), 0.05) == pytest.approx(expected.item(), rel=1e-6)
    assert expected > 0.05  # so clipping did scale every gradient
    dense_grads = {name: p.grad for name, p in dense.named_parameters()}
    for name, p in lazy.named_parameters():
        assert p.grad.is_sparse == (name == MEMORY_WEIGHT[value_path]
                                    or name.endswith("value_mix.table.weight"))
        grad = p.grad.to_dense() if p.grad.is_sparse else p.grad
        torch.testing.assert_close(grad, dense_grads[name], rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("value_path", ["move", "lave"])
def test_lazy_leaves_untouched_rows_where_dense_momentum_moves_them(value_path):
    cfg, (dense, dense_optimizers), (lazy, lazy_optimizers) = twin_models(value_path)
    first = torch.tensor([[1, 2, 3, 4] * 4 + [1]])   # ids 1-4
    second = torch.tensor([[5, 6, 7, 8] * 4 + [5]])  # ids 5-8: rows 1-4 untouched
    name = MEMORY_WEIGHT[value_path]
    after_first = {}  # by lazy; SparseAdam adds eps before its bias correction, AdamW after
    for model, optimizers in ((dense, dense_optimizers), (lazy, lazy_optimizers)):
        start = dict(model.named_parameters())[name].detach().clone()
        train_step(model, optimizers, first)
        after_first[model is lazy] = dict(model.named_parameters())[name].detach().clone()
        train_step(model, optimizers, second)
        after_second = dict(model.named_parameters())[name].detach()
        assert not torch.equal(after_first[model is lazy][1:5], start[1:5])  # touched rows moved
        assert torch.equal(after_second[9:], start[9:])              # never-touched rows: both
        moved_again = not torch.equal(after_second[1:5], after_first[model is lazy][1:5])
        assert moved_again == (model is dense), "momentum on rows the batch did not touch"


def tiny_run(corpus, **train_kw):
    model = build_config(depth=2, width=32, heads=1, vocab_size=320, seq_len=32,
                         value_path="move", density=2)
    return RunConfig(model, TrainConfig(corpus=corpus, tokens=8 * 32 * 40, batch_size=8, evals=4,
                                        memory_update="lazy", **train_kw))


def test_lazy_run_resumes_exactly_and_has_its_own_hash(corpus, cache, tmp_path,
                                                        interrupt_at_batch):
    run = tiny_run(corpus)
    assert run.to_dict()["train"]["memory_update"] == "lazy"
    dense = RunConfig(run.model, TrainConfig(**{**run.train.to_dict(), "memory_update": "dense"}))
    assert "memory_update" not in dense.to_dict()["train"] and dense.hash() != run.hash()
    straight = train(run, tmp_path / "straight", cache_dir=cache, progress=False)
    with interrupt_at_batch(TokenData, 23), pytest.raises(Interrupted):
        train(run, tmp_path / "stopped", cache_dir=cache, progress=False)
    resumed = train(run, tmp_path / "stopped", resume=True, cache_dir=cache, progress=False)
    assert resumed["val_bpb"] == straight["val_bpb"]
    assert (tmp_path / "stopped" / "curve.csv").read_text() == \
        (tmp_path / "straight" / "curve.csv").read_text()


def test_lazy_with_compile_fails_with_one_line(corpus, cache, tmp_path, capsys):
    argv = ["train", "--depth", "2", "--width", "32", "--heads", "1", "--vocab-size", "320",
            "--seq-len", "32", "--value-path", "move", "--corpus", f"text:{corpus}",
            "--tokens", "2048", "--memory-update", "lazy", "--compile", "--out",
            str(tmp_path / "run")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "--memory-update lazy trains eager" in err and "\n" not in err
    assert not (tmp_path / "run").exists()
