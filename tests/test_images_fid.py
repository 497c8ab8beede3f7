"""FID: the Frechet distance on known Gaussians, and on real Fashion-MNIST (when installed) in a
tiny classifier's feature space: a set against itself is ~0 and noise raises FID step by step;
the classifier is trained once and then read from its cache."""

import numpy as np
import pytest
import torch

from movelab.images import classifier as classifier_module
from movelab.images.classifier import (ClassifierConfig, accuracy, features,
                                       load_or_train_classifier)
from movelab.images.data import load_fashion_mnist
from movelab.images.fid import FeatureStatistics, FidEvaluator, feature_statistics, frechet_distance

TINY = ClassifierConfig(channels=(4, 8), hidden=16, epochs=2, batch_size=64, train_images=2000,
                        max_shift=0)


pytestmark = pytest.mark.usefixtures("one_thread")


def test_frechet_distance_of_gaussians_matches_the_closed_form():
    """Diagonal covariances: FID = |mu1 - mu2|^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2."""
    a_var, b_var = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    a = FeatureStatistics(np.zeros(3), np.diag(a_var), 100)
    b = FeatureStatistics(np.array([1.0, 2.0, 0.0]), np.diag(b_var), 100)
    expected = 5.0 + np.sum((np.sqrt(a_var) - np.sqrt(b_var)) ** 2)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    rows = np.random.default_rng(0).normal(size=(5000, 3)) * [1, 2, 0.5]
    stats = feature_statistics(rows)
    assert frechet_distance(stats, a) < 0.01  # samples of a are close to a
    with pytest.raises(ValueError, match="at least 2"):
        feature_statistics(rows[:1])


@pytest.fixture(scope="module")
def real(tmp_path_factory, fashion_subset):
    """(real data, tiny classifier and its record, cache folder)."""
    cache = tmp_path_factory.mktemp("fid-cache")
    data = load_fashion_mnist(fashion_subset)
    model, record = load_or_train_classifier(data, cache, TINY)
    return data, model, record, cache


def test_tiny_classifier_is_far_above_chance_and_records_its_accuracy(real):
    data, model, record, _ = real
    assert record["test_accuracy"] == accuracy(model, data.test_images, data.test_labels)
    assert record["test_accuracy"] > 0.6  # chance is 0.1
    assert features(model, data.test_images[:7]).shape == (7, 16)


def test_fid_of_a_set_with_itself_is_zero_and_grows_with_noise(real):
    data, model, record, _ = real
    evaluator = FidEvaluator(model, data.test_images, record)
    assert evaluator.fid(data.test_images) == pytest.approx(0.0, abs=1e-6)
    rng = np.random.default_rng(0)
    fids = []
    for sigma in (8, 24, 64, 128):
        noisy = data.test_images + rng.normal(0, sigma, data.test_images.shape)
        fids.append(evaluator.fid(np.clip(noisy, 0, 255).astype(np.uint8)))
    assert fids[0] > 0 and all(a < b for a, b in zip(fids, fids[1:])), fids
    # other real images of the same distribution are far closer than heavy noise
    other = data.train_images[:600]
    assert evaluator.fid(other) < fids[-1] / 5
    fid, class_accuracy = evaluator.score(other, data.train_labels[:600])  # one pass, same numbers
    assert fid == pytest.approx(evaluator.fid(other), rel=1e-9)
    assert class_accuracy == evaluator.class_accuracy(other, data.train_labels[:600])


def test_classifier_is_trained_once_then_read_from_the_cache(real, monkeypatch):
    data, model, record, cache = real

    def no_training(*args, **kw):
        raise AssertionError("trained again")
    monkeypatch.setattr(classifier_module, "train_classifier", no_training)
    again, again_record = load_or_train_classifier(data, cache, TINY)
    assert again_record == record
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(AssertionError, match="trained again"):  # another config, another model
        load_or_train_classifier(data, cache, ClassifierConfig(channels=(4, 8), hidden=8,
                                                               epochs=1, train_images=100))
