"""Byte-level BPE: exact round trips, the byte table, EOS, padding and the cache."""

import numpy as np
import pytest

from movelab.data import DataError
from movelab.data import tokenizer as tokenizer_module
from movelab.data.corpus import Corpus
from movelab.data.tokenizer import EOS, EOS_ID, load_or_train_tokenizer

UNSEEN_TEXT = "Zürich 東京 🙂 naïve\tcafé — ¿qué? <|endoftext|> \u00a0x\n\nend"


@pytest.fixture
def corpus():
    sentences = ["The cat sat on the mat.", "Der Bär aß Äpfel.", "Ein Ölfass rollte.",
                 "Le garçon mange une crêpe.", "Numbers: 3.14159, 2718, 42!"]
    documents = [" ".join(sentences[(i + j) % len(sentences)] for j in range(8)) for i in range(40)]
    return Corpus("test", documents[:36], documents[36:])


def encode(bpe, text):
    return bpe.tokenizer.encode(text).ids


def test_any_text_round_trips_and_its_bytes_add_up(corpus, tmp_path):
    bpe = load_or_train_tokenizer(corpus, 300, tmp_path)
    for text in [UNSEEN_TEXT, *corpus.val]:
        ids = encode(bpe, text)
        assert bpe.tokenizer.decode(ids) == text
        assert bpe.token_bytes[ids].sum() == len(text.encode("utf-8"))


def test_merges_are_learned_from_train_only(tmp_path):
    corpus = Corpus("test", ["apple pie " * 50, "apple tart " * 50],
                    ["zebra zebra zebra " * 50])
    vocab = load_or_train_tokenizer(corpus, 300, tmp_path).tokenizer.get_vocab()
    assert "Ġapple" in vocab and "Ġzebra" not in vocab


def test_eos_is_id_zero_with_zero_bytes_and_the_literal_string_is_plain_text(corpus, tmp_path):
    bpe = load_or_train_tokenizer(corpus, 300, tmp_path)
    assert bpe.tokenizer.token_to_id(EOS) == EOS_ID == 0
    assert bpe.token_bytes[EOS_ID] == 0
    assert EOS_ID not in encode(bpe, f"a{EOS}b")


def test_byte_table_counts_utf8_bytes_of_each_token(corpus, tmp_path):
    bpe = load_or_train_tokenizer(corpus, 400, tmp_path)
    assert bpe.token_bytes.shape == (400,) and bpe.token_bytes.dtype == np.int32
    whole_tokens = [i for i in range(1, bpe.trained_vocab_size)
                    if "\ufffd" not in bpe.tokenizer.decode([i])]
    assert len(whole_tokens) > 100
    for token_id in whole_tokens:
        assert bpe.token_bytes[token_id] == len(bpe.tokenizer.decode([token_id]).encode("utf-8"))
    assert (bpe.token_bytes[1:bpe.trained_vocab_size] >= 1).all()


def test_small_corpus_is_padded_to_the_requested_vocab_size(tmp_path):
    bpe = load_or_train_tokenizer(Corpus("tiny", ["ab ab ab", "abc"], ["ab"]), 1000, tmp_path)
    assert bpe.vocab_size == 1000 and len(bpe.token_bytes) == 1000
    assert bpe.trained_vocab_size < 300
    assert (bpe.token_bytes[bpe.trained_vocab_size:] == 0).all()


def test_vocab_below_bytes_plus_eos_is_refused(corpus, tmp_path):
    with pytest.raises(DataError, match="at least 257"):
        load_or_train_tokenizer(corpus, 256, tmp_path)


def test_cached_tokenizer_is_loaded_not_retrained(corpus, tmp_path, monkeypatch):
    first = load_or_train_tokenizer(corpus, 300, tmp_path)
    saved = (first.directory / "tokenizer.json").read_text()

    def fail(*args):
        raise AssertionError("retrained although cached")
    monkeypatch.setattr(tokenizer_module, "train_bpe", fail)
    second = load_or_train_tokenizer(corpus, 300, tmp_path)
    assert second.directory == first.directory
    assert (second.directory / "tokenizer.json").read_text() == saved
    assert np.array_equal(second.token_bytes, first.token_bytes)
    with pytest.raises(AssertionError, match="retrained"):  # another size is another tokenizer
        load_or_train_tokenizer(corpus, 301, tmp_path)


def test_interrupted_training_leaves_no_cache(corpus, tmp_path, monkeypatch):
    def interrupted(*args):
        raise KeyboardInterrupt
    monkeypatch.setattr(tokenizer_module, "count_token_bytes", interrupted)
    with pytest.raises(KeyboardInterrupt):
        load_or_train_tokenizer(corpus, 300, tmp_path)
    assert list((tmp_path / "bpe").iterdir()) == []
    monkeypatch.undo()
    bpe = load_or_train_tokenizer(corpus, 300, tmp_path)
    assert (bpe.directory / "token_bytes.npy").is_file()
