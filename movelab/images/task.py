"""The image task as the training loop sees it (movelab.training.task): `prepare_image_data(corpus,
image_cfg)` -> ImageTaskData, which serves training batches and the fixed validation set like the
text data does, and scores a trained model by sampling (FID, class accuracy, a sample grid).

Sequences follow movelab.images.layout: inputs [class, c1 .. c48], targets [c1 .. c49].
  train_batch   random training images drawn with the loop's numpy generator, and label dropout
                decided by the same generator, so a resumed run draws the same batches
  val_windows   the 10k test images, each conditional on its true class (no dropout)
  metric        bits_per_token, bits per image token: mean nats over the 49 code targets / ln 2
  after training  fid_samples samples (classes in turn) scored by FID and class accuracy against
                the test images, and samples.png
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch

from movelab.data.errors import DataError
from movelab.images.data import ImageData, load_fashion_mnist
from movelab.images.fid import FidEvaluator, frechet_distance
from movelab.images.layout import NUM_CLASSES, ImageLayout
from movelab.images.sampling import sample_codes
from movelab.images.tokenizer import ImageCodes, extract_codes
from movelab.training.config import IMAGE_CORPUS, ImageConfig, is_image_corpus
from movelab.training.task import Task

SAMPLES_PNG = "samples.png"
GRID_COLUMNS = 10  # samples per class in samples.png
GRID_ZOOM = 2  # pixels per image pixel in samples.png


def prepare_image_data(corpus: str, cfg: ImageConfig, cache_dir: Path | None = None
                       ) -> ImageTaskData:
    """Fashion-MNIST (`fashion-mnist`, or `fashion-mnist:PATH` for a folder of its IDX files),
    its tokenizer and codes (trained and encoded once, then cached)."""
    if not is_image_corpus(corpus):
        raise DataError(f"{corpus!r} is not an image corpus; use {IMAGE_CORPUS} or "
                        f"{IMAGE_CORPUS}:PATH")
    path = corpus.partition(":")[2] or None
    images = load_fashion_mnist(path, cache_dir)
    codes = extract_codes(images, cache_dir, patch=cfg.patch, codebook_size=cfg.codebook_size)
    return ImageTaskData(corpus, cfg, images, codes, cache_dir)


class ImageTask(Task):
    name = "image"
    metric, short_metric = "bits_per_token", "bits"
    artefacts = (SAMPLES_PNG,)

    def prepare(self, run, cache_dir: Path | None = None, progress: bool = False
                ) -> ImageTaskData:
        return prepare_image_data(run.train.corpus, run.image, cache_dir)

    def metric_value(self, data, counted: float, y: torch.Tensor) -> float:
        return counted / y.numel() / math.log(2)  # every target is a code

    def record_metrics(self, curve: list[dict]) -> dict:
        # every result row has the text metric's columns; bits per byte has no meaning here
        return {"val_bpb": None, "val_bpb_best": None, **super().record_metrics(curve)}

    def after_training(self, data: ImageTaskData, model, out_dir: Path, seed: int) -> dict:
        return data.evaluate_generation(model, out_dir, seed)

    def fill_caches(self, data: ImageTaskData) -> None:
        data.evaluator()  # trains the FID classifier the first time


class ImageTaskData:
    task = "image"
    eval_batch = 500  # validation sequences per forward pass

    def __init__(self, corpus: str, cfg: ImageConfig, images: ImageData, codes: ImageCodes,
                 cache_dir: Path | None = None):
        self.corpus_name, self.cfg, self.images, self.codes = corpus, cfg, images, codes
        self.cache_dir = cache_dir
        rows, columns = codes.train_codes.shape[1:]
        if rows != columns or codes.tokenizer.codebook_size != cfg.codebook_size:
            raise DataError(f"the tokenizer gives {rows}x{columns} codes of "
                            f"{codes.tokenizer.codebook_size}, the image config asks for a square "
                            f"grid of {cfg.codebook_size}")
        self.layout = ImageLayout(codebook_size=cfg.codebook_size, grid=rows)
        self.train_sequences = self.layout.sequences(codes.train_codes.astype(np.int64),
                                                     codes.train_labels.astype(np.int64))
        self.test_sequences = self.layout.sequences(codes.test_codes.astype(np.int64),
                                                    codes.test_labels.astype(np.int64))

    @property
    def vocab_size(self) -> int:
        return self.layout.vocab_size

    @property
    def epoch_tokens(self) -> int:
        """Model inputs in one pass over the training images."""
        return len(self.train_sequences) * self.layout.seq_len

    def _check_seq_len(self, seq_len: int) -> None:
        if seq_len != self.layout.seq_len:
            raise DataError(f"an image is {self.layout.seq_len} model inputs (class token + "
                            f"{self.layout.codes_per_image - 1} codes) at patch {self.cfg.patch}, "
                            f"not seq_len {seq_len}; pass --seq-len {self.layout.seq_len} (or use "
                            "--task image, which sets it)")

    def train_batch(self, rng: np.random.Generator, batch_size: int,
                    seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, y) int64 (batch_size, seq_len): random training images; each class token is
        replaced by the null token with probability label_dropout (drawn from `rng` too)."""
        self._check_seq_len(seq_len)
        rows = rng.integers(0, len(self.train_sequences), size=batch_size)
        dropped = rng.random(batch_size) < self.cfg.label_dropout
        sequences = self.train_sequences[torch.from_numpy(rows)]  # a copy
        sequences[torch.from_numpy(dropped), 0] = self.layout.null_id
        return sequences[:, :-1].contiguous(), sequences[:, 1:].contiguous()

    def val_windows(self, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, y) of every test image, conditional on its true class."""
        self._check_seq_len(seq_len)
        return self.test_sequences[:, :-1].contiguous(), self.test_sequences[:, 1:].contiguous()

    def describe(self) -> dict:
        return {"corpus": self.corpus_name, "content_hash": self.images.content_hash,
                "source": self.images.source, "vocab_size": self.vocab_size,
                "codebook_size": self.layout.codebook_size, "patch": self.cfg.patch,
                "codes_per_image": self.layout.codes_per_image,
                "train_images": len(self.train_sequences), "val_images": len(self.test_sequences),
                "train_tokens": self.epoch_tokens,
                "val_tokens": len(self.test_sequences) * self.layout.seq_len}

    def evaluator(self, reference: str = "test") -> FidEvaluator:
        """FID against the test images (trains the cached classifier the first time)."""
        return FidEvaluator.for_data(self.images, self.cache_dir, reference=reference)

    def generate(self, model, count: int, seed: int, *, cfg_scale: float | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
        """(uint8 images (count, 28, 28), their classes): `count` samples, classes in turn
        0, 1, ..., 9, 0, ..., drawn with a generator seeded with `seed`."""
        device = model.head.weight.device
        labels = torch.arange(count) % NUM_CLASSES
        generator = torch.Generator(device=device).manual_seed(seed)
        codes = sample_codes(model, labels, self.layout,
                             cfg_scale=self.cfg.cfg_scale if cfg_scale is None else cfg_scale,
                             temperature=self.cfg.temperature, top_k=self.cfg.top_k,
                             generator=generator)
        return self.codes.tokenizer.decode(codes.numpy()), labels.numpy()

    def evaluate_generation(self, model, out_dir: Path, seed: int) -> dict:
        """Sample fid_samples images (classes in turn), score them against the test images and
        write samples.png (one row per class) into out_dir; the record's image fields."""
        start = time.perf_counter()
        images, labels = self.generate(model, self.cfg.fid_samples, seed)
        sampled = time.perf_counter()
        evaluator = self.evaluator()
        fid, class_accuracy = evaluator.score(images, labels)
        reconstructions = self.codes.tokenizer.decode(self.codes.test_codes)
        floor = frechet_distance(evaluator.statistics(reconstructions, cached=True),
                                 evaluator.reference)
        write_sample_grid(Path(out_dir) / SAMPLES_PNG, images, labels)
        return {"fid": fid, "class_accuracy": class_accuracy,
                "fid_samples": self.cfg.fid_samples, "cfg_scale": self.cfg.cfg_scale,
                "temperature": self.cfg.temperature, "top_k": self.cfg.top_k,
                "fid_reference": "test", "fid_tokenizer_floor": floor,
                "classifier_test_accuracy": evaluator.record.get("test_accuracy"),
                "samples_png": SAMPLES_PNG, "sample_seconds": sampled - start,
                "eval_seconds": time.perf_counter() - start}


def sample_grid(images: np.ndarray, labels: np.ndarray, columns: int = GRID_COLUMNS,
                zoom: int = GRID_ZOOM, gap: int = 2) -> np.ndarray:
    """uint8 picture: row c holds the first `columns` images of class c, zoomed, on grey."""
    size = images.shape[1] * zoom
    grid = np.full((NUM_CLASSES * (size + gap) + gap, columns * (size + gap) + gap), 128, np.uint8)
    for c in range(NUM_CLASSES):
        for j, image in enumerate(images[labels == c][:columns]):
            top, left = gap + c * (size + gap), gap + j * (size + gap)
            grid[top:top + size, left:left + size] = image.repeat(zoom, 0).repeat(zoom, 1)
    return grid


def write_sample_grid(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(sample_grid(images, labels)).save(path, format="PNG")
