"""Token shards on a small text:PATH corpus: batches, validation windows, byte counts, the cache."""

import numpy as np
import pytest
import torch

from movelab.data import DataError, prepare_text_data
from movelab.data import shards as shards_module
from movelab.data.cache import default_cache_dir
from movelab.data.corpus import VAL_FRACTION, load_corpus
from movelab.data.tokenizer import EOS_ID

WORDS = ("river stone över light garden 東京 number seven house walks quietly under the old "
         "bridge while children sing songs of summer and winter").split()


@pytest.fixture
def spec(tmp_path):
    rng = np.random.default_rng(1234)
    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(60):
        words = rng.choice(WORDS, size=int(rng.integers(100, 300)))
        (folder / f"{i:03d}.txt").write_text(" ".join(words) + ".", encoding="utf-8")
    return f"text:{folder}"


@pytest.fixture
def data(spec, tmp_path):
    return prepare_text_data(spec, 300, tmp_path / "cache", progress=False)


def test_token_streams_hold_every_document_after_an_eos(spec, data, tmp_path):
    corpus = load_corpus(spec, tmp_path)
    for documents, tokens in ((corpus.train, data.train_tokens), (corpus.val, data.val_tokens)):
        assert tokens.dtype == np.uint16
        assert tokens[0] == EOS_ID and (np.asarray(tokens) == EOS_ID).sum() == len(documents)
        assert data.tokenizer.decode(tokens.tolist()) == "".join(documents)
    described = data.describe()
    assert described["val_bytes"] == sum(len(text.encode()) for text in corpus.val)
    assert (described["train_tokens"], described["val_tokens"]) == (len(data.train_tokens),
                                                                   len(data.val_tokens))
    assert described["bytes_per_token"] == pytest.approx(
        described["train_bytes"] / described["train_tokens"], abs=1e-4)
    assert (described["corpus"], described["content_hash"], described["vocab_size"]) == (
        spec, corpus.content_hash, 300)


def test_train_batch_is_seeded_and_y_is_x_shifted(data):
    x, y = data.train_batch(np.random.default_rng(7), batch_size=8, seq_len=32)
    x_again, y_again = data.train_batch(np.random.default_rng(7), batch_size=8, seq_len=32)
    assert x.shape == y.shape == (8, 32) and x.dtype == y.dtype == torch.int64
    assert torch.equal(x, x_again) and torch.equal(y, y_again)
    assert torch.equal(x[:, 1:], y[:, :-1])
    all_windows = np.lib.stride_tricks.sliding_window_view(np.asarray(data.train_tokens), 33)
    for row in torch.cat([x, y[:, -1:]], dim=1).numpy():
        assert (all_windows == row).all(axis=1).any()  # a real stretch of the training stream
    other_x, _ = data.train_batch(np.random.default_rng(8), batch_size=8, seq_len=32)
    assert not torch.equal(x, other_x)


def test_val_windows_tile_the_validation_split_identically_each_time(spec, data, tmp_path):
    seq_len = 16
    x, y = data.val_windows(seq_len)
    count = (len(data.val_tokens) - 1) // seq_len
    assert x.shape == (count, seq_len)
    assert np.array_equal(x.flatten().numpy(), data.val_tokens[:count * seq_len])
    assert np.array_equal(y.flatten().numpy(), data.val_tokens[1:count * seq_len + 1])
    reloaded = prepare_text_data(spec, 300, tmp_path / "cache", progress=False)
    assert all(map(torch.equal, reloaded.val_windows(seq_len), (x, y)))
    some_x, _ = data.val_windows(seq_len, max_windows=5)
    picked = [next(i for i in range(count) if torch.equal(x[i], row)) for row in some_x]
    assert picked[0] == 0 and picked == sorted(set(picked)) and picked[-1] >= count * 3 // 4


def test_seq_len_longer_than_validation_split_is_refused(data):
    too_long = len(data.val_tokens)
    message = (rf"sequence length {too_long} is longer than the validation split "
               rf"\({too_long} tokens\); use a smaller --seq-len or a larger corpus")
    with pytest.raises(DataError, match=message):
        data.val_windows(too_long)
    with pytest.raises(DataError, match="longer than the training split"):
        data.train_batch(np.random.default_rng(0), 1, len(data.train_tokens))


def test_bytes_of_the_validation_stream_is_the_utf8_size_of_its_text(spec, data, tmp_path):
    val_stream = torch.from_numpy(np.asarray(data.val_tokens, dtype=np.int64))
    corpus = load_corpus(spec, tmp_path)
    assert data.bytes_of(val_stream) == sum(len(text.encode("utf-8")) for text in corpus.val)
    _, y = data.val_windows(16)
    per_target = data.target_bytes(y)
    assert per_target.shape == y.shape and per_target.device == y.device
    assert (per_target[y == EOS_ID] == 0).all() and (per_target[y != EOS_ID] >= 1).all()
    assert int(per_target.sum()) == data.bytes_of(y)


def test_cached_tokens_are_reused_and_a_killed_build_leaves_nothing(spec, tmp_path, monkeypatch):
    cache = tmp_path / "cache"

    def killed(*args):
        raise KeyboardInterrupt
    monkeypatch.setattr(shards_module, "write_token_stream", killed)
    with pytest.raises(KeyboardInterrupt):
        prepare_text_data(spec, 300, cache, progress=False)
    tokenizer_dir = next((cache / "bpe").iterdir())
    assert sorted(path.name for path in tokenizer_dir.iterdir()) == ["token_bytes.npy",
                                                                     "tokenizer.json"]
    (tokenizer_dir / ".tokens.partial-left-by-kill-9").mkdir()  # what SIGKILL would leave
    (tokenizer_dir / ".tokens.partial-left-by-kill-9" / "meta.json").write_text("{")
    monkeypatch.undo()
    first = prepare_text_data(spec, 300, cache, progress=False)
    monkeypatch.setattr(shards_module, "write_token_stream", killed)
    second = prepare_text_data(spec, 300, cache, progress=False)  # from the cache: no writing
    assert np.array_equal(first.train_tokens, second.train_tokens)
    assert second.describe() == first.describe()


def test_default_cache_dir_follows_movelab_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MOVELAB_CACHE", str(tmp_path / "elsewhere"))
    assert default_cache_dir() == tmp_path / "elsewhere"
    monkeypatch.delenv("MOVELAB_CACHE")
    assert default_cache_dir().parts[-2:] == (".cache", "movelab")


def test_fineweb_parquet_goes_through_the_same_pipeline(tmp_path):
    pyarrow = pytest.importorskip("pyarrow", reason="pyarrow not installed: pip install pyarrow")
    import pyarrow.parquet
    texts = [f"Lesson {i}: water boils at 100 °C at sea level, so tea needs care."
             for i in range(40)]
    pyarrow.parquet.write_table(pyarrow.table({"text": texts, "id": [str(i) for i in range(40)]}),
                                tmp_path / "shard.parquet")
    data = prepare_text_data(f"fineweb-edu:{tmp_path / 'shard.parquet'}", 300, tmp_path / "cache",
                             progress=False, max_docs=40)
    assert (np.asarray(data.val_tokens) == EOS_ID).sum() == round(VAL_FRACTION * 40)
    assert data.describe()["train_bytes"] + data.describe()["val_bytes"] == sum(
        len(text.encode()) for text in texts)
