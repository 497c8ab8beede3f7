"""The Fashion-MNIST classifier whose penultimate layer is FID's feature space (movelab.images.fid)
and which scores class-conditional samples.

A small CNN: two blocks of (3x3 convolution, batch norm, ReLU, 2x2 max pool), 28 -> 14 -> 7, then a
fully connected layer of `hidden` units with ReLU (the features) and a linear layer to the 10
classes. Trained with AdamW on the 60k training images (random shifts of up to 2 pixels), one
cosine schedule. Trained once per (config, dataset content hash) and cached as
cache_dir/fid-classifiers/cnn-<hash>/classifier.pt with config.json, which records its test
accuracy.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from movelab.data.cache import building_directory, default_cache_dir
from movelab.images.data import FASHION_MNIST_CLASSES, ImageData
from movelab.hashing import content_hash

CLASSIFIER_VERSION = 1  # bump when training changes, so that cached classifiers are trained again
CLASSIFIER_FILE = "classifier.pt"
FEATURE_BATCH = 1000


@dataclass(frozen=True)
class ClassifierConfig:
    channels: tuple[int, int] = (32, 64)
    hidden: int = 128  # the feature dimension
    epochs: int = 4
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 1e-4
    max_shift: int = 2  # augmentation: random shifts of up to this many pixels
    train_images: int | None = None  # the first N training images only (tests); None: all
    seed: int = 0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# what FID uses; a test may swap in a tiny one (the cache key includes the config)
DEFAULT_CLASSIFIER = ClassifierConfig()


class Classifier(nn.Module):
    def __init__(self, cfg: ClassifierConfig, num_classes: int = len(FASHION_MNIST_CLASSES)):
        super().__init__()
        c1, c2 = cfg.channels
        self.conv1, self.norm1 = nn.Conv2d(1, c1, 3, padding=1, bias=False), nn.BatchNorm2d(c1)
        self.conv2, self.norm2 = nn.Conv2d(c1, c2, 3, padding=1, bias=False), nn.BatchNorm2d(c2)
        self.fc = nn.Linear(c2 * 7 * 7, cfg.hidden)
        self.out = nn.Linear(cfg.hidden, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Images as floats in [0, 1], (N, 1, 28, 28) -> penultimate features (N, hidden)."""
        x = F.max_pool2d(F.relu(self.norm1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.norm2(self.conv2(x))), 2)
        return F.relu(self.fc(x.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(x))


def to_input(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 images (N, 28, 28) -> float (N, 1, 28, 28) in [0, 1]."""
    return torch.as_tensor(np.asarray(images)).float().div(255).unsqueeze(1)


@torch.no_grad()
def _batched(classifier: Classifier, images: np.ndarray, method: str) -> torch.Tensor:
    classifier.eval()
    device = next(classifier.parameters()).device
    outputs = [getattr(classifier, method)(to_input(images[i:i + FEATURE_BATCH]).to(device)).cpu()
               for i in range(0, len(images), FEATURE_BATCH)]
    return torch.cat(outputs) if outputs else torch.empty(0)


def features_and_predictions(classifier: Classifier, images: np.ndarray
                             ) -> tuple[np.ndarray, np.ndarray]:
    """features(...) and predict(...) in one pass over the images."""
    classifier.eval()
    device = next(classifier.parameters()).device
    rows, classes = [], []
    with torch.no_grad():
        for i in range(0, len(images), FEATURE_BATCH):
            h = classifier.features(to_input(images[i:i + FEATURE_BATCH]).to(device))
            rows.append(h.double().cpu())
            classes.append(classifier.out(h).argmax(1).cpu())
    return torch.cat(rows).numpy(), torch.cat(classes).numpy()


def features(classifier: Classifier, images: np.ndarray) -> np.ndarray:
    """Penultimate-layer features (N, hidden), float64, of uint8 images (N, 28, 28)."""
    return _batched(classifier, images, "features").double().numpy()


def predict(classifier: Classifier, images: np.ndarray) -> np.ndarray:
    """Predicted class of each uint8 image (N, 28, 28)."""
    return _batched(classifier, images, "forward").argmax(1).numpy()


def accuracy(classifier: Classifier, images: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(predict(classifier, images) == np.asarray(labels)))


def train_classifier(data: ImageData, cfg: ClassifierConfig = DEFAULT_CLASSIFIER, *,
                     log=None) -> Classifier:
    """A classifier trained on data.train_images (the first cfg.train_images of them if set)."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    images, labels = data.train_images, data.train_labels
    if cfg.train_images is not None:
        images, labels = images[:cfg.train_images], labels[:cfg.train_images]
    x, y = to_input(images), torch.as_tensor(labels.astype(np.int64))
    model = Classifier(cfg)
    steps = cfg.epochs * math.ceil(len(x) / cfg.batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / steps)))
    model.train()
    start = time.perf_counter()
    for epoch in range(cfg.epochs):
        order = torch.from_numpy(rng.permutation(len(x)))
        for i in range(0, len(x), cfg.batch_size):
            rows = order[i:i + cfg.batch_size]
            batch = shift(x[rows], rng, cfg.max_shift)
            loss = F.cross_entropy(model(batch), y[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        if log:
            log(f"classifier epoch {epoch + 1}/{cfg.epochs}: loss {loss.item():.3f}, "
                f"{time.perf_counter() - start:.0f} s")
    return model.eval()


def shift(x: torch.Tensor, rng: np.random.Generator, max_shift: int) -> torch.Tensor:
    """Each image moved by a random (dy, dx) of at most max_shift pixels, zeros shifted in."""
    if max_shift == 0:
        return x
    padded = F.pad(x, (max_shift,) * 4)
    size = x.shape[-1]
    offsets = torch.from_numpy(rng.integers(0, 2 * max_shift + 1, size=(len(x), 2)))
    rows = (offsets[:, :1] + torch.arange(size))[:, :, None]  # (N, size, 1)
    columns = (offsets[:, 1:] + torch.arange(size))[:, None, :]  # (N, 1, size)
    return padded[torch.arange(len(x))[:, None, None], 0, rows, columns].unsqueeze(1)


def classifier_directory(data: ImageData, cache_dir: Path | None,
                         cfg: ClassifierConfig) -> tuple[Path, dict]:
    key_fields = {"version": CLASSIFIER_VERSION, **cfg.to_dict(), "data": data.content_hash}
    key = content_hash([json.dumps(key_fields, sort_keys=True)])
    cache = Path(cache_dir if cache_dir is not None else default_cache_dir())
    return cache / "fid-classifiers" / f"cnn-{key}", key_fields


def load_or_train_classifier(data: ImageData, cache_dir: Path | None = None,
                             cfg: ClassifierConfig | None = None, *, log=None
                             ) -> tuple[Classifier, dict]:
    """(classifier in eval mode on the CPU, its record: config, test accuracy, training time,
    the cache folder it is in),
    trained the first time and then read from cache_dir (default $MOVELAB_CACHE, else
    ~/.cache/movelab). cfg None: DEFAULT_CLASSIFIER as it is at call time."""
    cfg = DEFAULT_CLASSIFIER if cfg is None else cfg
    directory, key_fields = classifier_directory(data, cache_dir, cfg)
    if not directory.is_dir():
        with building_directory(directory) as building:
            start = time.perf_counter()
            model = train_classifier(data, cfg, log=log)
            seconds = time.perf_counter() - start
            torch.save(model.state_dict(), building / CLASSIFIER_FILE)
            record = {**key_fields, "test_accuracy": accuracy(model, data.test_images,
                                                              data.test_labels),
                      "train_seconds": round(seconds, 1), "threads": torch.get_num_threads()}
            (building / "config.json").write_text(json.dumps(record, indent=1))
    record = {**json.loads((directory / "config.json").read_text()), "directory": str(directory)}
    model = Classifier(cfg)
    model.load_state_dict(torch.load(directory / CLASSIFIER_FILE, map_location="cpu",
                                     weights_only=True))
    return model.eval(), record
