import contextlib
import random

import pytest
import torch

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))

WORDS = ("the cat dog sat ran on a mat hill red blue big small and then saw it was "
         "bird tree house river stone quick slow").split()


@pytest.fixture(scope="module")
def one_thread():
    """Two threads of tiny models on a busy machine spend their time waiting on each other."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """Markov-chain 'English': learnable structure, 120 documents, deterministic."""
    rng = random.Random(0)
    follow = {w: rng.sample(WORDS, 3) for w in WORDS}
    folder = tmp_path_factory.mktemp("corpus")
    for d in range(120):
        word, words = rng.choice(WORDS), []
        for _ in range(120):
            words.append(word)
            word = rng.choice(follow[word])
        (folder / f"doc{d:03d}.txt").write_text(" ".join(words).capitalize() + ".\n")
    return f"text:{folder}"


@pytest.fixture
def cache(tmp_path_factory):
    return tmp_path_factory.getbasetemp() / "cache"




@pytest.fixture(scope="session")
def fashion_subset(tmp_path_factory):
    """A folder of IDX files holding the first 3000 training and 600 test images of the real
    Fashion-MNIST (for `--corpus fashion-mnist:FOLDER`); skips when the dataset is absent."""
    import gzip
    import struct

    from movelab.images.data import (FASHION_MNIST_DIR, FASHION_MNIST_FILES,
                                     FASHION_MNIST_PACKAGE, load_fashion_mnist)

    if not FASHION_MNIST_DIR.is_dir():
        pytest.skip(f"Debian's {FASHION_MNIST_PACKAGE} package is not installed (no "
                    f"{FASHION_MNIST_DIR}): apt-get install {FASHION_MNIST_PACKAGE}")
    data = load_fashion_mnist(FASHION_MNIST_DIR)
    folder = tmp_path_factory.mktemp("fashion-subset")
    for field, (name, _) in FASHION_MNIST_FILES.items():
        array = getattr(data, field)[:3000 if field.startswith("train") else 600]
        header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
            f">{array.ndim}I", *array.shape)
        (folder / f"{name}.gz").write_bytes(gzip.compress(header + array.tobytes()))
    return folder


@pytest.fixture
def tiny_classifier(monkeypatch):
    """FID's classifier swapped for a tiny one that trains in a second (cached under its own key)."""
    from movelab.images import classifier

    tiny = classifier.ClassifierConfig(channels=(4, 8), hidden=16, epochs=2, batch_size=64,
                                       train_images=2000, max_shift=0)
    monkeypatch.setattr(classifier, "DEFAULT_CLASSIFIER", tiny)
    return tiny


@pytest.fixture
def interrupt_at_batch(monkeypatch):
    """interrupt_at_batch(data_class, n): a block within which the n-th call of
    data_class.train_batch raises KeyboardInterrupt (Ctrl-C at a drawn batch)."""
    @contextlib.contextmanager
    def interrupting(data_class, n):
        real, calls = data_class.train_batch, [0]

        def batch(self, *args):
            calls[0] += 1
            if calls[0] == n:
                raise KeyboardInterrupt
            return real(self, *args)

        monkeypatch.setattr(data_class, "train_batch", batch)
        try:
            yield
        finally:
            monkeypatch.setattr(data_class, "train_batch", real)

    return interrupting
