"""Fashion-MNIST loading: the IDX reader, the three sources (a folder, Debian's package, a download)
and the error that names them, on files written here and on the real package when installed."""

import gzip
import hashlib
import struct
import urllib.error

import numpy as np
import pytest

from movelab.data import DataError
from movelab.images import data as data_module
from movelab.images.data import (FASHION_MNIST_DIR, FASHION_MNIST_FILES, FASHION_MNIST_PACKAGE,
                                 FASHION_MNIST_URLS, load_fashion_mnist, read_idx)

IDX_TYPE_BYTES = {np.dtype(np.uint8): 0x08, np.dtype(np.int32): 0x0C}


def idx_bytes(array):
    """The IDX encoding of `array`, written by hand: the format the reader must understand."""
    header = struct.pack(">BBBB", 0, 0, IDX_TYPE_BYTES[array.dtype], array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def small_dataset(seed=0):
    """{field of ImageData: array}: a few random 28x28 images and labels per split."""
    rng = np.random.default_rng(seed)
    return {"train_images": rng.integers(0, 256, (12, 28, 28), dtype=np.uint8),
            "train_labels": rng.integers(0, 10, 12, dtype=np.uint8),
            "test_images": rng.integers(0, 256, (4, 28, 28), dtype=np.uint8),
            "test_labels": rng.integers(0, 10, 4, dtype=np.uint8)}


def gzipped_files(arrays):
    """{file name with .gz: gzipped IDX bytes} of a dataset."""
    return {f"{FASHION_MNIST_FILES[field][0]}.gz": gzip.compress(idx_bytes(array))
            for field, array in arrays.items()}


def write_dataset(folder, arrays):
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in gzipped_files(arrays).items():
        (folder / name).write_bytes(content)


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No Debian package and no network: every fetch fails."""
    monkeypatch.setattr(data_module, "FASHION_MNIST_DIR", tmp_path / "no-debian-package")

    def fail(url):
        raise urllib.error.URLError("no route to host")
    monkeypatch.setattr(data_module, "fetch", fail)


@pytest.mark.parametrize("gzipped", [False, True])
@pytest.mark.parametrize("array", [np.arange(2 * 3 * 5, dtype=np.uint8).reshape(2, 3, 5),
                                   np.array([-70000, 0, 1, 2**31 - 1], dtype=np.int32)])
def test_idx_file_round_trips(tmp_path, array, gzipped):
    content = idx_bytes(array)
    path = tmp_path / "array.idx"
    path.write_bytes(gzip.compress(content) if gzipped else content)
    read = read_idx(path)
    assert read.dtype == array.dtype and read.dtype.isnative
    np.testing.assert_array_equal(read, array)


def test_truncated_or_foreign_files_are_rejected(tmp_path):
    truncated, foreign = tmp_path / "truncated", tmp_path / "foreign"
    truncated.write_bytes(idx_bytes(np.zeros((2, 4, 4), np.uint8))[:-1])
    foreign.write_bytes(b"PK\x03\x04 a zip file")
    with pytest.raises(DataError, match="truncated"):
        read_idx(truncated)
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(foreign)


def test_a_folder_of_idx_files_loads_gzipped_or_plain(tmp_path):
    arrays = small_dataset()
    write_dataset(tmp_path / "gz", arrays)
    plain = tmp_path / "plain"
    plain.mkdir()
    for field, array in arrays.items():
        (plain / FASHION_MNIST_FILES[field][0]).write_bytes(idx_bytes(array))
    write_dataset(tmp_path / "other", small_dataset(seed=1))
    from_gz, from_plain = load_fashion_mnist(tmp_path / "gz"), load_fashion_mnist(plain)
    for field, array in arrays.items():
        np.testing.assert_array_equal(getattr(from_gz, field), array)
    assert from_gz.image_size == (28, 28) and from_gz.source == str(tmp_path / "gz")
    assert from_gz.content_hash == from_plain.content_hash
    assert from_gz.content_hash != load_fashion_mnist(tmp_path / "other").content_hash


def test_a_folder_missing_a_file_names_it_and_the_three_ways(tmp_path):
    write_dataset(tmp_path, small_dataset())
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="lacks the Fashion-MNIST file.s. t10k-labels-idx1-ubyte"
                       ) as error:
        load_fashion_mnist(tmp_path)
    assert_names_the_three_ways(str(error.value))


def test_labels_must_match_the_images(tmp_path):
    arrays = small_dataset()
    arrays["test_labels"] = arrays["test_labels"][:3]
    write_dataset(tmp_path / "short", arrays)
    with pytest.raises(DataError, match="one per image"):
        load_fashion_mnist(tmp_path / "short")
    arrays = small_dataset()
    arrays["train_labels"][0] = 10
    write_dataset(tmp_path / "eleven", arrays)
    with pytest.raises(DataError, match="10 classes"):
        load_fashion_mnist(tmp_path / "eleven")


def assert_names_the_three_ways(message):
    assert f"apt-get install {FASHION_MNIST_PACKAGE}" in message
    assert "give the path of a folder" in message
    assert "go online" in message and FASHION_MNIST_URLS[0] in message


def test_offline_with_nothing_installed_names_the_three_ways(tmp_path, offline):
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="downloading was turned off") as error:
        load_fashion_mnist(cache_dir=cache, download=False)
    assert_names_the_three_ways(str(error.value))
    with pytest.raises(DataError, match="the download failed .*no route to host") as error:
        load_fashion_mnist(cache_dir=cache)
    assert_names_the_three_ways(str(error.value))
    assert str(cache / "fashion-mnist") in str(error.value)
    assert not (cache / "fashion-mnist").exists()  # all or nothing


def test_download_checks_each_file_then_serves_from_the_cache(tmp_path, offline, monkeypatch):
    arrays = small_dataset()
    files = gzipped_files(arrays)
    monkeypatch.setattr(data_module, "FASHION_MNIST_FILES", {
        field: (name, hashlib.md5(files[f"{name}.gz"]).hexdigest())
        for field, (name, _) in FASHION_MNIST_FILES.items()})
    fetched = []

    def serve(url):  # the first host serves damaged files, the second good ones
        fetched.append(url)
        name = url.rpartition("/")[2]
        return files[name] if url.startswith(FASHION_MNIST_URLS[1]) else b"damaged"
    monkeypatch.setattr(data_module, "fetch", serve)
    downloaded = load_fashion_mnist(cache_dir=tmp_path)
    assert len(fetched) == 8
    np.testing.assert_array_equal(downloaded.train_images, arrays["train_images"])
    again = load_fashion_mnist(cache_dir=tmp_path)
    assert len(fetched) == 8 and again.content_hash == downloaded.content_hash


@pytest.mark.skipif(not FASHION_MNIST_DIR.is_dir(),
                    reason=f"Debian's {FASHION_MNIST_PACKAGE} package is not installed "
                           f"(no {FASHION_MNIST_DIR}): apt-get install {FASHION_MNIST_PACKAGE}")
def test_debian_package_gives_the_whole_dataset(tmp_path, monkeypatch):
    monkeypatch.setattr(data_module, "fetch", None)  # never called
    data = load_fashion_mnist(cache_dir=tmp_path)
    assert data.source == str(FASHION_MNIST_DIR)
    assert data.train_images.shape == (60_000, 28, 28)
    assert data.test_images.shape == (10_000, 28, 28)
    assert data.train_images.dtype == np.uint8 and data.train_labels.dtype == np.uint8
    assert (np.bincount(data.train_labels) == 6000).all()
    assert (np.bincount(data.test_labels) == 1000).all()
    assert data.train_labels[:5].tolist() == [9, 0, 0, 3, 0]  # the published first labels
