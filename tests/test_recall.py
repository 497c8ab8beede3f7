"""The slot axis's positive control (movelab.data.recall): the stream is what the module says, and
its analytic floor is what an oracle that knows the facts scores through the loop's evaluation."""

import math

import numpy as np
import pytest
import torch

from movelab.data import DataError, prepare_text_data
from movelab.data.recall import floor_bits_per_token, parse_recall_spec
from movelab.training.loop import evaluate


class Oracle(torch.nn.Module):
    """Predicts with the true distribution: uniform item after a cue, the stored successor after
    an item that follows a cue, uniform cue after a successor."""

    def __init__(self, data):
        super().__init__()
        self.facts, self.K, self.V = torch.from_numpy(data.facts), data.spec.successors, data.vocab_size

    def forward(self, x, targets, reduction="none"):
        B, T = x.shape
        logp = torch.full((B, T, self.V), -math.inf, dtype=torch.float64)
        is_cue = x < self.K
        after_cue = torch.zeros_like(is_cue)
        after_cue[:, 1:] = is_cue[:, :-1] & ~is_cue[:, 1:]
        logp[..., self.K:] = torch.where(is_cue[..., None], -math.log(self.V - self.K), -math.inf)
        logp[..., :self.K] = torch.where((~is_cue & ~after_cue)[..., None], -math.log(self.K),
                                         -math.inf)
        b, t = after_cue.nonzero(as_tuple=True)
        logp[b, t, self.facts[x[b, t] - self.K, x[b, t - 1]]] = 0.0
        return -logp.gather(-1, targets[..., None]).squeeze(-1).float().reshape(-1)


@pytest.mark.parametrize("K, T", [(1, 48), (4, 48), (16, 50)])
def test_an_oracle_reaches_the_analytic_floor(K, T):
    data = prepare_text_data(f"recall:K={K},tokens=30000", 128)
    x, y = data.val_windows(T)
    bpb, nats = evaluate(Oracle(data), data, x, y)
    assert bpb == pytest.approx(data.floor_bits_per_token(T), abs=1e-6)
    assert nats == pytest.approx(bpb * math.log(2), abs=1e-6)  # one "byte" per token
    # and the floor is the weighted mean of the three kinds of target
    n_items = sum((t + 1) % 3 == 1 for t in range(T))
    n_cues = sum((t + 1) % 3 == 0 for t in range(T))
    assert floor_bits_per_token(K, 128 - K, T) == pytest.approx(
        (n_items * math.log2(128 - K) + n_cues * math.log2(K)) / T)


def test_training_windows_start_at_a_cue_and_follow_the_facts():
    data = prepare_text_data("recall:K=4,seed=3,tokens=3000", 64)
    x, y = data.train_batch(np.random.default_rng(0), 32, 20)
    assert (x[:, 0] < 4).all() and (x[:, 1] >= 4).all()
    cues, items, successors = x[:, 0::3][:, :6], x[:, 1::3][:, :6], x[:, 2::3][:, :6]
    assert torch.equal(successors, torch.from_numpy(data.facts)[items - 4, cues])
    assert torch.equal(x[:, 1:], y[:, :-1])
    # the facts come from the spec's seed, the same on every call; another seed, other facts
    assert np.array_equal(prepare_text_data("recall:K=4,seed=3,tokens=3000", 64).facts, data.facts)
    assert not np.array_equal(prepare_text_data("recall:K=4,seed=4,tokens=3000", 64).facts,
                              data.facts)


def test_every_item_has_k_successors_told_apart_by_the_cue():
    data = prepare_text_data("recall:K=8,tokens=3000", 200)
    assert data.facts.shape == (192, 8) and data.facts.min() >= 8
    distinct = np.array([len(set(row)) for row in data.facts])
    assert distinct.mean() > 7.5  # drawn uniformly from 192 items: collisions are rare


@pytest.mark.parametrize("spec", ["recall:", "recall:K=0", "recall:K=x", "recall:K=2,foo=1",
                                  "recall:K=2,K=3"])
def test_bad_specs_are_data_errors(spec):
    with pytest.raises(DataError):
        parse_recall_spec(spec)


def test_the_vocabulary_must_hold_the_cues_and_items():
    with pytest.raises(DataError, match="vocab"):
        prepare_text_data("recall:K=16", 17)
