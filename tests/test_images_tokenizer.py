"""The k-means patch tokenizer: code shapes, exact round trips of codebook images, the caches of the
tokenizer and of the codes, and reconstruction quality on real Fashion-MNIST when installed."""

import numpy as np
import pytest

from movelab.data import DataError
from movelab.images import tokenizer as tokenizer_module
from movelab.images.data import (FASHION_MNIST_DIR, FASHION_MNIST_PACKAGE, ImageData,
                                 load_fashion_mnist)
from movelab.images.tokenizer import (MAX_PATCH, PatchTokenizer, code_usage, extract_codes,
                                      load_or_train_patch_tokenizer, reconstruction_error,
                                      train_patch_tokenizer)

REAL_PSNR_FLOOR = 19.0  # dB; patch 4, codebook 64 from 3000 train images gave 19.65 on 1000 test


pytestmark = pytest.mark.usefixtures("one_thread")


def random_images(count, seed=0, size=8):
    return np.random.default_rng(seed).integers(0, 256, (count, size, size), dtype=np.uint8)


def small_data(seed=0):
    rng = np.random.default_rng(seed)
    return ImageData("synthetic", random_images(40, seed), rng.integers(0, 10, 40, dtype=np.uint8),
                     random_images(10, seed + 1), rng.integers(0, 10, 10, dtype=np.uint8))


@pytest.fixture(scope="module")
def tokenizer():
    return train_patch_tokenizer(random_images(100), patch=4, codebook_size=16, seed=0)


def test_codes_have_one_id_per_tile_within_the_codebook(tokenizer):
    codes = tokenizer.encode(random_images(7, seed=1))
    assert codes.shape == (7, 2, 2) and np.issubdtype(codes.dtype, np.integer)
    assert codes.min() >= 0 and codes.max() < 16
    assert tokenizer.decode(codes).shape == (7, 8, 8) and tokenizer.decode(codes).dtype == np.uint8


def test_decoded_codes_encode_back_to_the_same_images(tokenizer):
    codes = np.random.default_rng(2).integers(0, 16, (50, 2, 2))
    decoded = tokenizer.decode(codes)
    np.testing.assert_array_equal(tokenizer.decode(tokenizer.encode(decoded)), decoded)
    assert reconstruction_error(tokenizer, decoded)["mse"] == 0


@pytest.mark.parametrize("patch", [4, MAX_PATCH])
def test_tiles_one_grey_level_apart_are_told_apart(patch):
    """Distances are exact: bright tiles that differ in a single pixel by one level keep their
    codes (float32 rounding of |p|^2 - 2 p.c + |c|^2 would confuse them)."""
    pixels = patch * patch
    codebook = np.full((pixels + 1, pixels), 255, dtype=np.uint8)
    codebook[np.arange(1, pixels + 1), np.arange(pixels)] = 254  # tile i: pixel i - 1 darker
    tokenizer = PatchTokenizer(codebook.reshape(-1, patch, patch))
    codes = np.arange(len(codebook)).reshape(-1, 1, 1)
    np.testing.assert_array_equal(tokenizer.encode(tokenizer.decode(codes)), codes)


def test_training_is_deterministic_and_save_load_keeps_the_codebook(tokenizer, tmp_path):
    again = train_patch_tokenizer(random_images(100), patch=4, codebook_size=16, seed=0)
    np.testing.assert_array_equal(again.codebook, tokenizer.codebook)
    tokenizer.save(tmp_path / "tokenizer.npz")
    loaded = PatchTokenizer.load(tmp_path / "tokenizer.npz")
    assert loaded.patch == 4 and loaded.codebook_size == 16
    np.testing.assert_array_equal(loaded.codebook, tokenizer.codebook)


def test_bad_settings_and_codes_are_data_errors(tokenizer):
    with pytest.raises(DataError, match="do not split into 3x3 tiles"):
        train_patch_tokenizer(random_images(10), patch=3, codebook_size=4)
    with pytest.raises(DataError, match="cannot make a codebook of 64"):
        train_patch_tokenizer(random_images(10), patch=4, codebook_size=64)
    with pytest.raises(DataError, match="outside this tokenizer's 0..15"):
        tokenizer.decode(np.full((1, 2, 2), 16))


def test_code_usage_counts_codes_and_their_perplexity():
    usage = code_usage(np.array([[0, 0], [1, 1]]), codebook_size=4)
    assert usage == {"used": 0.5, "perplexity": pytest.approx(2.0)}


def test_cached_tokenizer_is_not_trained_again(tmp_path, monkeypatch):
    data = small_data()
    first = load_or_train_patch_tokenizer(data, tmp_path, patch=4, codebook_size=16)
    [saved] = tmp_path.glob("image-tokenizers/kmeans-p4-k16-*/tokenizer.npz")
    modified = saved.stat().st_mtime_ns

    def no_training(*args):
        raise AssertionError("trained again")
    monkeypatch.setattr(tokenizer_module, "train_patch_tokenizer", no_training)
    cached = load_or_train_patch_tokenizer(data, tmp_path, patch=4, codebook_size=16)
    np.testing.assert_array_equal(cached.codebook, first.codebook)
    assert saved.stat().st_mtime_ns == modified
    with pytest.raises(AssertionError, match="trained again"):  # other data, other tokenizer
        load_or_train_patch_tokenizer(small_data(seed=1), tmp_path, patch=4, codebook_size=16)


def test_codes_of_both_splits_are_extracted_once_as_uint16(tmp_path, monkeypatch):
    data = small_data()
    codes = extract_codes(data, tmp_path, patch=4, codebook_size=16)
    assert codes.train_codes.shape == (40, 2, 2) and codes.test_codes.shape == (10, 2, 2)
    assert codes.train_codes.dtype == codes.test_codes.dtype == np.uint16
    np.testing.assert_array_equal(codes.test_codes, codes.tokenizer.encode(data.test_images))
    np.testing.assert_array_equal(codes.train_labels, data.train_labels)

    def no_encoding(self, images):
        raise AssertionError("encoded again")
    monkeypatch.setattr(PatchTokenizer, "encode", no_encoding)
    cached = extract_codes(data, tmp_path, patch=4, codebook_size=16)
    np.testing.assert_array_equal(cached.train_codes, codes.train_codes)


@pytest.mark.skipif(not FASHION_MNIST_DIR.is_dir(),
                    reason=f"Debian's {FASHION_MNIST_PACKAGE} package is not installed "
                           f"(no {FASHION_MNIST_DIR}): apt-get install {FASHION_MNIST_PACKAGE}")
def test_real_images_reconstruct_above_the_psnr_floor_with_most_codes_used(tmp_path):
    data = load_fashion_mnist(cache_dir=tmp_path, download=False)
    tokenizer = train_patch_tokenizer(data.train_images[:3000], patch=4, codebook_size=64)
    test_images = data.test_images[:1000]
    codes = tokenizer.encode(test_images)
    assert codes.shape == (1000, 7, 7)
    assert reconstruction_error(tokenizer, test_images)["psnr"] > REAL_PSNR_FLOOR
    assert code_usage(codes, 64)["used"] > 0.9
    decoded = tokenizer.decode(codes)
    np.testing.assert_array_equal(tokenizer.decode(tokenizer.encode(decoded)), decoded)
