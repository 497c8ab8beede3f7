import random

import pytest
import torch

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))

WORDS = ("the cat dog sat ran on a mat hill red blue big small and then saw it was "
         "bird tree house river stone quick slow").split()


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


