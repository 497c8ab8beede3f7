"""A discrete image tokenizer: a k-means codebook of non-overlapping patches.

An image is cut into patch x patch tiles (28x28 at patch 4: a 7x7 grid), and each tile becomes the
id of the nearest of `codebook_size` codebook tiles (squared pixel distance). The codebook is
k-means on a random sample of training tiles (k-means++ start, then Lloyd iterations), rounded to
uint8 at the end: decoding pastes codebook tiles, and a decoded image encodes back to the same
tiles, since distances between integer tiles are computed exactly (see `nearest`).

Trained once per (config, dataset content hash) and cached as tokenizer.npz (+ config.json);
`extract_codes` encodes both splits once and caches the codes beside it (codes/*.npy, uint16), so a
model trains on codes without encoding pixels again.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from movelab.data.cache import building_directory, default_cache_dir
from movelab.data.errors import DataError
from movelab.images.data import ImageData
from movelab.hashing import content_hash

KMEANS_VERSION = 1  # bump when training changes, so that cached tokenizers are trained again
SAMPLE_PATCHES = 200_000  # training tiles k-means sees (Fashion-MNIST train has 2.94 M at patch 4)
LLOYD_ITERATIONS = 30
MAX_PATCH = 11  # the largest with 2 * patch**2 * 255**2 < 2**24: float32 distances stay exact
MAX_CODEBOOK_SIZE = 2**16  # codes are cached as uint16
CHUNK_PATCHES = 4096  # tiles per distance matrix (CHUNK_PATCHES x codebook_size floats)
TOKENIZER_FILE = "tokenizer.npz"


@dataclass(frozen=True)
class PatchTokenizer:
    codebook: np.ndarray  # uint8 (codebook_size, patch, patch)

    @property
    def patch(self) -> int:
        return self.codebook.shape[1]

    @property
    def codebook_size(self) -> int:
        return self.codebook.shape[0]

    def encode(self, images: np.ndarray) -> np.ndarray:
        """uint8 images (N, H, W) -> int64 codes (N, H / patch, W / patch)."""
        tiles = to_tiles(images, self.patch)
        _, codes = nearest(torch.from_numpy(tiles.reshape(-1, self.patch**2)).float(),
                           torch.from_numpy(self.codebook.reshape(self.codebook_size, -1)).float())
        return codes.numpy().reshape(tiles.shape[:3])

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Codes (N, rows, columns) -> uint8 images (N, rows * patch, columns * patch)."""
        codes = np.asarray(codes)
        if codes.ndim != 3 or not np.issubdtype(codes.dtype, np.integer):
            raise DataError(f"codes must be integers of shape (count, rows, columns), not "
                            f"{codes.dtype} of shape {codes.shape}")
        if codes.size and (codes.min() < 0 or codes.max() >= self.codebook_size):
            raise DataError(f"codes go from {codes.min()} to {codes.max()}, outside this "
                            f"tokenizer's 0..{self.codebook_size - 1}; decode them with the "
                            "tokenizer that made them")
        count, rows, columns = codes.shape
        tiles = self.codebook[codes]  # (N, rows, columns, patch, patch)
        return tiles.transpose(0, 1, 3, 2, 4).reshape(count, rows * self.patch,
                                                      columns * self.patch)

    def save(self, path: Path) -> None:
        np.savez(path, codebook=self.codebook)

    @classmethod
    def load(cls, path: Path) -> PatchTokenizer:
        with np.load(path, allow_pickle=False) as saved:
            return cls(saved["codebook"])


@dataclass(frozen=True)
class ImageCodes:
    tokenizer: PatchTokenizer
    train_codes: np.ndarray  # uint16 (N, rows, columns)
    train_labels: np.ndarray  # uint8 (N,)
    test_codes: np.ndarray
    test_labels: np.ndarray


def extract_codes(data: ImageData, cache_dir: Path | None = None, *, patch: int = 4,
                  codebook_size: int = 512, seed: int = 0) -> ImageCodes:
    """The codes of both splits under the cached tokenizer for this config, encoded once and then
    read from cache_dir (default: $MOVELAB_CACHE, else ~/.cache/movelab)."""
    tokenizer = load_or_train_patch_tokenizer(data, cache_dir, patch=patch,
                                              codebook_size=codebook_size, seed=seed)
    directory = tokenizer_directory(data, cache_dir, patch, codebook_size, seed)[0] / "codes"
    if not directory.is_dir():
        with building_directory(directory) as building:
            np.save(building / "train.npy", tokenizer.encode(data.train_images).astype(np.uint16))
            np.save(building / "test.npy", tokenizer.encode(data.test_images).astype(np.uint16))
    return ImageCodes(tokenizer, np.load(directory / "train.npy"), data.train_labels,
                      np.load(directory / "test.npy"), data.test_labels)


def load_or_train_patch_tokenizer(data: ImageData, cache_dir: Path | None = None, *,
                                  patch: int = 4, codebook_size: int = 512,
                                  seed: int = 0) -> PatchTokenizer:
    """The cached tokenizer for (config, data), trained on data.train_images the first time."""
    directory, config = tokenizer_directory(data, cache_dir, patch, codebook_size, seed)
    if not directory.is_dir():
        with building_directory(directory) as building:
            train_patch_tokenizer(data.train_images, patch, codebook_size, seed).save(
                building / TOKENIZER_FILE)
            (building / "config.json").write_text(json.dumps(config, indent=1))
    return PatchTokenizer.load(directory / TOKENIZER_FILE)


def tokenizer_directory(data: ImageData, cache_dir: Path | None, patch: int, codebook_size: int,
                        seed: int) -> tuple[Path, dict]:
    """cache_dir/image-tokenizers/kmeans-p<patch>-k<size>-<hash of config and data>, and the
    config that hash is of."""
    config = {"method": "kmeans", "version": KMEANS_VERSION, "patch": patch,
              "codebook_size": codebook_size, "seed": seed, "sample_patches": SAMPLE_PATCHES,
              "iterations": LLOYD_ITERATIONS, "data": data.content_hash}
    key = content_hash([json.dumps(config, sort_keys=True)])
    cache = Path(cache_dir if cache_dir is not None else default_cache_dir())
    return cache / "image-tokenizers" / f"kmeans-p{patch}-k{codebook_size}-{key}", config


def train_patch_tokenizer(images: np.ndarray, patch: int = 4, codebook_size: int = 512,
                          seed: int = 0) -> PatchTokenizer:
    """k-means on up to SAMPLE_PATCHES tiles of `images` drawn with `seed`: a k-means++ start, then
    LLOYD_ITERATIONS full Lloyd iterations; the centroids rounded to uint8 are the codebook."""
    if not 1 <= patch <= MAX_PATCH:
        raise DataError(f"patch size {patch} is outside 1..{MAX_PATCH}; choose a patch size that "
                        "divides the image size, such as 2, 4 or 7 for 28x28 images")
    if not 1 <= codebook_size <= MAX_CODEBOOK_SIZE:
        raise DataError(f"codebook size {codebook_size} is outside 1..{MAX_CODEBOOK_SIZE}")
    tiles = to_tiles(images, patch).reshape(-1, patch**2)
    if len(tiles) < codebook_size:
        raise DataError(f"{len(tiles)} tiles cannot make a codebook of {codebook_size}; give more "
                        "images or choose a smaller codebook")
    generator = torch.Generator().manual_seed(seed)
    sample = torch.randperm(len(tiles), generator=generator)[:SAMPLE_PATCHES].numpy()
    points = torch.from_numpy(tiles[np.sort(sample)]).float()
    centroids = kmeans_plus_plus(points, codebook_size, generator)
    for _ in range(LLOYD_ITERATIONS):
        centroids = lloyd_step(points, centroids)
    codebook = centroids.round().clamp(0, 255).to(torch.uint8).numpy()
    return PatchTokenizer(codebook.reshape(codebook_size, patch, patch))


def to_tiles(images: np.ndarray, patch: int) -> np.ndarray:
    """uint8 images (N, H, W) -> their tiles (N, H / patch, W / patch, patch, patch)."""
    if images.dtype != np.uint8 or images.ndim != 3:
        raise DataError(f"images must be uint8 of shape (count, height, width), not "
                        f"{images.dtype} of shape {images.shape}")
    count, height, width = images.shape
    if height % patch or width % patch:
        raise DataError(f"{height}x{width} images do not split into {patch}x{patch} tiles; choose "
                        "a patch size that divides both sides")
    grid = images.reshape(count, height // patch, patch, width // patch, patch)
    return grid.transpose(0, 1, 3, 2, 4)


def kmeans_plus_plus(points: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """`count` starting centroids: the first a random point, each next one a point drawn with
    probability proportional to its squared distance from the nearest centroid so far."""
    centroids = torch.empty(count, points.shape[1])
    centroids[0] = points[torch.randint(len(points), (1,), generator=generator)]
    distances = ((points - centroids[0]) ** 2).sum(1)
    for index in range(1, count):
        weights = distances if distances.sum() > 0 else torch.ones_like(distances)  # all covered
        centroids[index] = points[torch.multinomial(weights, 1, generator=generator)]
        distances = torch.minimum(distances, ((points - centroids[index]) ** 2).sum(1))
    return centroids


def lloyd_step(points: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """Each centroid moved to the mean of the points nearest to it; a centroid that no point is
    nearest to restarts at one of the points farthest from their centroids."""
    distances, assignment = nearest(points, centroids)
    counts = torch.bincount(assignment, minlength=len(centroids))
    sums = torch.zeros_like(centroids).index_add_(0, assignment, points)
    updated = sums / counts.clamp(min=1)[:, None].float()
    empty = counts == 0
    updated[empty] = points[distances.topk(int(empty.sum())).indices]
    return updated


def nearest(points: torch.Tensor, centroids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(squared distance to, index of) the nearest centroid of each point, as |c|^2 - 2 p.c (+ |p|^2
    once the nearest is known), in chunks of points. For integer points and centroids of at most
    MAX_PATCH**2 values, every term and partial sum is an integer below 2**24, which float32 holds
    exactly: no rounding."""
    centroid_norms = (centroids**2).sum(1)
    distances, indices = [], []
    for chunk in points.split(CHUNK_PATCHES):
        chunk_distances, chunk_indices = torch.addmm(centroid_norms, chunk, centroids.T,
                                                     alpha=-2).min(1)
        distances.append(chunk_distances + (chunk**2).sum(1))
        indices.append(chunk_indices)
    return torch.cat(distances), torch.cat(indices)


def reconstruction_error(tokenizer: PatchTokenizer, images: np.ndarray) -> dict[str, float]:
    """mse: mean squared error of decode(encode(images)), pixels scaled to [0, 1]; psnr: the peak
    signal-to-noise ratio of that mean, in dB."""
    reconstructed = tokenizer.decode(tokenizer.encode(images))
    difference = (reconstructed.astype(np.float64) - images) / 255
    mse = float(np.mean(difference**2))
    return {"mse": mse, "psnr": -10 * math.log10(mse) if mse else math.inf}


def code_usage(codes: np.ndarray, codebook_size: int) -> dict[str, float]:
    """used: the fraction of the codebook that occurs in `codes`; perplexity: exp of the entropy of
    their distribution (codebook_size if all are equally frequent)."""
    frequencies = np.bincount(np.ravel(codes), minlength=codebook_size) / np.size(codes)
    present = frequencies[frequencies > 0]
    return {"used": len(present) / codebook_size,
            "perplexity": float(np.exp(-(present * np.log(present)).sum()))}
