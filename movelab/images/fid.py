"""FID in the feature space of the cached Fashion-MNIST classifier (movelab.images.classifier).

    FID = ||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 sqrtm(S_1 S_2))

with mu, S the mean and covariance (N - 1 normalised) of the penultimate-layer features of two
image sets, and sqrtm scipy's matrix square root, of which the real part is kept (round-off
gives it tiny imaginary parts). Like Inception FID, it is biased upward at small sample counts:
compare FIDs of the same number of samples.

The reference set is the 10k test images; its statistics are computed once per evaluator.
`class_accuracy` is the classifier's accuracy on class-conditional samples against the class
each was asked for.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from movelab.data.cache import write_atomically
from movelab.images.classifier import (Classifier, accuracy, features, features_and_predictions,
                                       load_or_train_classifier)
from movelab.images.data import ImageData
from movelab.hashing import DATA_DIGITS, array_bytes, content_hash


@dataclass(frozen=True)
class FeatureStatistics:
    mean: np.ndarray  # (D,)
    covariance: np.ndarray  # (D, D)
    count: int


def feature_statistics(feature_rows: np.ndarray) -> FeatureStatistics:
    rows = np.asarray(feature_rows, dtype=np.float64)
    if len(rows) < 2:
        raise ValueError(f"FID needs at least 2 images per set, got {len(rows)}")
    return FeatureStatistics(rows.mean(0), np.cov(rows, rowvar=False), len(rows))


def frechet_distance(a: FeatureStatistics, b: FeatureStatistics) -> float:
    """The Frechet distance between two Gaussians with these means and covariances."""
    import scipy.linalg  # here: importing it costs text runs, which load this module too, ~0.7 s

    with warnings.catch_warnings():  # features of dead ReLU units make S singular: expected
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        product = scipy.linalg.sqrtm(a.covariance @ b.covariance)
        if not np.isfinite(product).all():  # nudge both, as pytorch-fid does
            offset = np.eye(len(a.mean)) * 1e-6
            product = scipy.linalg.sqrtm((a.covariance + offset) @ (b.covariance + offset))
    distance = (np.sum((a.mean - b.mean) ** 2) + np.trace(a.covariance) + np.trace(b.covariance)
                - 2 * np.trace(np.real(product)))
    return float(max(distance, 0.0))


class FidEvaluator:
    """FID and class accuracy of uint8 images (N, 28, 28) against a reference set (by default
    the test images of `data`), in `classifier`'s feature space."""

    def __init__(self, classifier: Classifier, reference_images: np.ndarray,
                 record: dict | None = None, cache: Path | None = None):
        """`cache`: a folder where statistics of fixed image sets (the reference, the tokenizer's
        reconstructions) are kept, keyed by a hash of the images (the classifier's folder)."""
        self.classifier, self.record, self.cache = classifier, record or {}, cache
        self.reference = self.statistics(reference_images, cached=True)

    @classmethod
    def for_data(cls, data: ImageData, cache_dir: Path | None = None, *,
                 reference: str = "test") -> FidEvaluator:
        """The cached classifier of `data` (trained the first time), reference `test` (the 10k
        test images) or `train` (10k training images, fixed; for choices that must not look at
        the test set)."""
        classifier, record = load_or_train_classifier(data, cache_dir)
        if reference == "test":
            images = data.test_images
        elif reference == "train":
            images = data.train_images[np.random.default_rng(0).permutation(
                len(data.train_images))[:len(data.test_images)]]
        else:
            raise ValueError(f"reference must be 'test' or 'train', not {reference!r}")
        return cls(classifier, images, record, Path(record["directory"]))

    def statistics(self, images: np.ndarray, *, cached: bool = False) -> FeatureStatistics:
        """Feature mean and covariance of `images`; with `cached`, kept in the cache folder."""
        if not cached or self.cache is None:
            return feature_statistics(features(self.classifier, images))
        key = content_hash([array_bytes(images)], DATA_DIGITS)
        path = self.cache / f"statistics-{key}.npz"
        if not path.exists():
            stats = feature_statistics(features(self.classifier, images))
            buffer = io.BytesIO()
            np.savez(buffer, mean=stats.mean, covariance=stats.covariance, count=stats.count)
            write_atomically(path, buffer.getvalue())
        with np.load(path) as saved:
            return FeatureStatistics(saved["mean"], saved["covariance"], int(saved["count"]))

    def score(self, images: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
        """(FID, class accuracy against `labels`) of class-conditional samples, one pass."""
        rows, predicted = features_and_predictions(self.classifier, images)
        return (frechet_distance(feature_statistics(rows), self.reference),
                float(np.mean(predicted == np.asarray(labels))))

    def fid(self, images: np.ndarray) -> float:
        return frechet_distance(self.statistics(images), self.reference)

    def class_accuracy(self, images: np.ndarray, labels: np.ndarray) -> float:
        return accuracy(self.classifier, images, labels)
