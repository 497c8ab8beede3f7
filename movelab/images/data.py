"""Fashion-MNIST: `load_fashion_mnist(path, cache_dir)` -> ImageData (uint8 images, class labels).

60,000 train and 10,000 test images of 28x28 grey pixels (0 = background), 10 classes, read from
the dataset's four IDX files (gzipped or not). They come from, in this order:
  PATH          a folder holding the four files, when one is given (and then only from there)
  Debian        the dataset-fashion-mnist package (/usr/share/datasets/fashion-mnist)
  the cache     cache_dir/fashion-mnist, where a download puts them
  a download    from the dataset's own hosts (Zalando's S3 site, then its GitHub repository), each
                file checked against the MD5 sum the dataset publishes
"""

from __future__ import annotations

import gzip
import hashlib
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from movelab.data.cache import building_directory, default_cache_dir
from movelab.data.errors import DataError
from movelab.hashing import DATA_DIGITS, array_bytes, content_hash

FASHION_MNIST_PACKAGE = "dataset-fashion-mnist"
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")  # where that Debian package puts them
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                         "Sneaker", "Bag", "Ankle boot")
# field of ImageData -> (IDX file name without .gz, MD5 of the published .gz file)
FASHION_MNIST_FILES = {
    "train_images": ("train-images-idx3-ubyte", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
    "train_labels": ("train-labels-idx1-ubyte", "25c81989df183df01b3e8a0aad5dffbe"),
    "test_images": ("t10k-images-idx3-ubyte", "bef4ecab320f06d8554ea6380940ec79"),
    "test_labels": ("t10k-labels-idx1-ubyte", "bb300cfdad3c16e7a12a480ee83cd310"),
}
FASHION_MNIST_URLS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                      "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/"
                      "data/fashion/")
DOWNLOAD_TIMEOUT_S = 60

# IDX type byte -> element type (big-endian); see http://yann.lecun.com/exdb/mnist/
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class ImageData:
    source: str  # the folder the files were read from
    train_images: np.ndarray  # uint8 (N, H, W)
    train_labels: np.ndarray  # uint8 (N,), class ids below len(FASHION_MNIST_CLASSES)
    test_images: np.ndarray
    test_labels: np.ndarray
    content_hash: str = field(init=False)  # sha256 prefix of the four arrays, shapes included

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            images, labels = getattr(self, f"{split}_images"), getattr(self, f"{split}_labels")
            if images.dtype != np.uint8 or images.ndim != 3:
                raise DataError(f"{split} images in {self.source} are {images.dtype} of shape "
                                f"{images.shape}, not uint8 (count, height, width); give the IDX "
                                "image files of Fashion-MNIST")
            if labels.dtype != np.uint8 or labels.shape != images.shape[:1]:
                raise DataError(f"{split} labels in {self.source} are {labels.dtype} of shape "
                                f"{labels.shape}, not uint8 ({len(images)},), one per image; give "
                                "the IDX label files that belong to the image files")
            if labels.size and labels.max() >= len(FASHION_MNIST_CLASSES):
                raise DataError(f"{split} labels in {self.source} go up to {labels.max()}, but "
                                f"Fashion-MNIST has {len(FASHION_MNIST_CLASSES)} classes")
        if self.train_images.shape[1:] != self.test_images.shape[1:]:
            raise DataError(f"train and test images in {self.source} differ in size "
                            f"({self.train_images.shape[1:]} vs {self.test_images.shape[1:]}); "
                            "give the four IDX files of one dataset")
        object.__setattr__(self, "content_hash", content_hash(
            (array_bytes(getattr(self, name)) for name in FASHION_MNIST_FILES), DATA_DIGITS))

    @property
    def image_size(self) -> tuple[int, int]:
        return self.train_images.shape[1], self.train_images.shape[2]


def load_fashion_mnist(path: Path | str | None = None, cache_dir: Path | None = None, *,
                       download: bool = True) -> ImageData:
    """Fashion-MNIST from the folder `path` if given, else from the Debian package, the cache
    (default: $MOVELAB_CACHE, else ~/.cache/movelab) or, with `download`, the internet."""
    cache = Path(cache_dir if cache_dir is not None else default_cache_dir()) / "fashion-mnist"
    if path is not None:
        return read_image_data(Path(path).expanduser(), cache)
    for folder in (FASHION_MNIST_DIR, cache):
        if None not in idx_files(folder).values():
            return read_image_data(folder, cache)
    if not download:
        raise DataError(no_data_message("Fashion-MNIST was not found and downloading was turned "
                                        "off", cache))
    try:
        download_fashion_mnist(cache)
    except OSError as error:
        raise DataError(no_data_message(f"Fashion-MNIST was not found and the download failed "
                                        f"({error})", cache)) from None
    return read_image_data(cache, cache)


def read_image_data(folder: Path, cache: Path) -> ImageData:
    files = idx_files(folder)
    missing = [name for name, file in files.items() if file is None]
    if missing:
        raise DataError(no_data_message(f"{folder} lacks the Fashion-MNIST file(s) "
                                        f"{', '.join(missing)}", cache))
    arrays = {field_name: read_idx(files[name])
              for field_name, (name, _) in FASHION_MNIST_FILES.items()}
    return ImageData(str(folder), **arrays)


def no_data_message(problem: str, cache: Path) -> str:
    names = ", ".join(f"{name}.gz" for name, _ in FASHION_MNIST_FILES.values())
    return (f"{problem}. Get its four IDX files ({names}; gzipped or not) one of three ways: "
            f"(1) apt-get install {FASHION_MNIST_PACKAGE} (puts them in {FASHION_MNIST_DIR}); "
            "(2) give the path of a folder holding them; (3) go online, so that they download "
            f"into {cache} from {FASHION_MNIST_URLS[0]}")


def idx_files(folder: Path) -> dict[str, Path | None]:
    """File name (without .gz) -> its path in `folder`, gzipped or plain; None when absent."""
    found = {}
    for name, _ in FASHION_MNIST_FILES.values():
        candidates = [folder / f"{name}.gz", folder / name]
        found[name] = next((file for file in candidates if file.is_file()), None)
    return found


def read_idx(path: Path) -> np.ndarray:
    """The array in an IDX file (gzipped or plain): two zero bytes, a type byte, the number of
    dimensions, each dimension as a big-endian uint32, then the values in C order, big-endian."""
    raw = path.read_bytes()
    if raw.startswith(GZIP_MAGIC):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as error:
            raise DataError(f"{path} is a broken gzip file ({error}); get it again") from None
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in IDX_TYPES:
        raise DataError(f"{path} is not an IDX file (it starts with {raw[:4].hex()}); give the "
                        "IDX files of Fashion-MNIST")
    dimension_count = raw[3]
    header_size = 4 + 4 * dimension_count
    shape = tuple(int(size) for size in np.frombuffer(raw, ">u4", dimension_count, offset=4))
    dtype = np.dtype(IDX_TYPES[raw[2]])
    if len(raw) != header_size + dtype.itemsize * int(np.prod(shape)):
        raise DataError(f"{path} holds {len(raw) - header_size} bytes of data, but its header says "
                        f"{shape} of {dtype.name}; the file is truncated or damaged, get it again")
    values = np.frombuffer(raw, dtype, offset=header_size).reshape(shape)
    return values.astype(dtype.newbyteorder("="))


def download_fashion_mnist(folder: Path) -> None:
    """Fetch the four .gz files into `folder` (all or nothing), each from the first host that
    serves it with the published MD5 sum. Raises OSError when no host does."""
    with building_directory(folder) as building:
        for name, md5 in FASHION_MNIST_FILES.values():
            (building / f"{name}.gz").write_bytes(fetch_checked(f"{name}.gz", md5))


def fetch_checked(file_name: str, md5: str) -> bytes:
    failures = []
    for base in FASHION_MNIST_URLS:
        try:
            content = fetch(base + file_name)
        except OSError as error:
            failures.append(f"{base + file_name}: {error}")
            continue
        if hashlib.md5(content).hexdigest() == md5:
            return content
        failures.append(f"{base + file_name}: MD5 {hashlib.md5(content).hexdigest()}, not {md5}")
    raise OSError("; ".join(failures))


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
        return response.read()
