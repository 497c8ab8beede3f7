"""The image task's model side, on synthetic codes (no dataset needed): the token layout, label
dropout, the guidance arithmetic, and the KV cache (cached forward = full forward; cached
sampling draws the same codes as recomputing every prefix) for all three value paths."""

import math

import numpy as np
import pytest
import torch

from movelab.config import build_config
from movelab.data import DataError
from movelab.images.data import ImageData
from movelab.images.layout import ImageLayout
from movelab.images.sampling import guided_logits, next_code_distribution, sample_codes
from movelab.images.task import ImageTaskData, sample_grid
from movelab.images.tokenizer import ImageCodes, PatchTokenizer
from movelab.model import GPT, KVCache
from movelab.training.config import ImageConfig

PATHS = [("standard", None), ("lave", 1), ("move", 4)]
LAYOUT = ImageLayout(codebook_size=16, grid=3)  # vocab 27, 9 codes an image


pytestmark = pytest.mark.usefixtures("one_thread")


def random_model(value_path, density, layout=LAYOUT, seed=0):
    """A small model with every weight random (init leaves gates and outputs at zero, which
    would hide a wrong cache)."""
    torch.manual_seed(seed)
    model = GPT(build_config(depth=2, width=32, heads=2, vocab_size=layout.vocab_size,
                             seq_len=layout.seq_len, value_path=value_path, density=density))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)
    return model.eval()


def synthetic_task(count=400, label_dropout=0.1, seed=0):
    """ImageTaskData over random codes of a 16-code, 3x3 layout (images are unused here)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, count, dtype=np.uint8)
    codes = rng.integers(0, 16, (count, 3, 3)).astype(np.uint16)
    images = np.zeros((count, 12, 12), np.uint8)
    data = ImageData("synthetic", images, labels, images[:50], labels[:50])
    tokenizer = PatchTokenizer(np.zeros((16, 4, 4), np.uint8))
    codes = ImageCodes(tokenizer, codes, labels, codes[:50], labels[:50])
    return ImageTaskData("synthetic", ImageConfig(codebook_size=16, label_dropout=label_dropout,
                                                  cfg_scale=1.0),
                         data, codes)


def test_token_layout_puts_codes_then_classes_then_null():
    layout = ImageLayout()  # the default: 512 codes, 7x7
    assert layout.vocab_size == 523 and layout.null_id == 522 and layout.seq_len == 49
    assert layout.class_ids(np.arange(10)).tolist() == list(range(512, 522))
    assert ImageConfig().layout == layout and ImageConfig(patch=2).layout.seq_len == 196
    codes = torch.arange(2 * 49).view(2, 7, 7) % 512
    sequences = layout.sequences(codes, torch.tensor([3, 9]))
    assert sequences.shape == (2, 50) and sequences[:, 0].tolist() == [515, 521]
    assert torch.equal(sequences[:, 1:], codes.view(2, 49))  # raster order
    masked = layout.mask_non_codes(torch.zeros(2, 523))
    assert torch.isfinite(masked[:, :512]).all() and torch.isinf(masked[:, 512:]).all()


def test_batches_are_class_then_codes_with_label_dropout_at_its_rate():
    task = synthetic_task(label_dropout=0.1)
    x, y = task.train_batch(np.random.default_rng(0), 20_000, 9)
    assert x.shape == y.shape == (20_000, 9) and x.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])  # inputs: prefix + all codes but the last
    assert (y < 16).all()  # every target is a code
    null = x[:, 0] == LAYOUT.null_id
    assert abs(null.float().mean().item() - 0.1) < 4 * math.sqrt(0.1 * 0.9 / 20_000)
    assert ((x[~null, 0] >= 16) & (x[~null, 0] < 26)).all()  # the others keep a class token
    # each row is a training image: its codes decide its class, which the kept rows show
    table = {tuple(s[1:].tolist()): s[0].item() for s in task.train_sequences}
    kept = [(tuple(torch.cat([x[i, 1:], y[i, -1:]]).tolist()), x[i, 0].item())
            for i in range(200) if not null[i]]
    assert all(table[codes] == cls for codes, cls in kept)
    # the same generator state gives the same batch (what resume relies on)
    a = task.train_batch(np.random.default_rng(5), 64, 9)
    b = task.train_batch(np.random.default_rng(5), 64, 9)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    none = synthetic_task(label_dropout=0.0).train_batch(np.random.default_rng(0), 1000, 9)[0]
    assert not (none[:, 0] == LAYOUT.null_id).any()


def test_validation_is_every_test_image_with_its_true_class():
    task = synthetic_task()
    x, y = task.val_windows(9)
    assert x.shape == (50, 9)
    assert torch.equal(x[:, 0], torch.as_tensor(task.codes.test_labels.astype(np.int64)) + 16)
    assert torch.equal(y.view(50, 3, 3), torch.as_tensor(task.codes.test_codes.astype(np.int64)))
    with pytest.raises(DataError, match="pass --seq-len 9"):
        task.val_windows(256)


def test_guidance_is_exact_at_zero_and_one_and_extrapolates_beyond():
    cond, uncond = torch.randn(4, 27), torch.randn(4, 27)
    assert torch.equal(guided_logits(cond, uncond, 0.0), uncond)
    assert torch.equal(guided_logits(cond, uncond, 1.0), cond)
    torch.testing.assert_close(guided_logits(cond, uncond, 3.0), uncond + 3 * (cond - uncond))
    torch.testing.assert_close(guided_logits(cond, uncond, 0.5), (cond + uncond) / 2)


def test_next_code_distribution_masks_classes_and_keeps_the_top_k():
    logits = torch.randn(5, 27)
    logits[:, 16:] = 100.0  # classes and null most likely: must still never be drawn
    p = next_code_distribution(logits, LAYOUT)
    assert (p[:, 16:] == 0).all() and torch.allclose(p.sum(1), torch.ones(5))
    top = next_code_distribution(logits, LAYOUT, top_k=3)
    assert ((top > 0).sum(1) == 3).all()
    assert torch.equal(top.argmax(1), p.argmax(1))
    spaced = torch.cat([torch.randperm(16).float() * 0.1, torch.zeros(11)]).repeat(5, 1)
    cold = next_code_distribution(spaced, LAYOUT, temperature=0.01)
    assert (cold.max(1).values > 0.99).all()
    assert next_code_distribution(spaced, LAYOUT, temperature=100).max() < 0.07  # near uniform


@pytest.mark.parametrize("value_path,density", PATHS)
def test_cached_forward_gives_the_full_forward_logits(value_path, density):
    model = random_model(value_path, density)
    tokens = torch.randint(0, LAYOUT.vocab_size, (3, LAYOUT.seq_len))
    with torch.no_grad():
        full = model(tokens)
        cache = KVCache()
        pieces = [model(tokens[:, :1], cache=cache), model(tokens[:, 1:4], cache=cache)]
        pieces += [model(tokens[:, t:t + 1], cache=cache) for t in range(4, LAYOUT.seq_len)]
    assert cache.length == LAYOUT.seq_len
    torch.testing.assert_close(torch.cat(pieces, 1), full, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="longer than seq_len"):
        model(tokens[:, :1], cache=cache)


@pytest.mark.parametrize("value_path,density", PATHS)
@pytest.mark.parametrize("cfg_scale,top_k", [(1.0, None), (2.5, 5)])
def test_cached_sampling_draws_what_full_recomputation_draws(value_path, density, cfg_scale,
                                                              top_k):
    model = random_model(value_path, density)
    labels = torch.arange(12) % 10
    runs = [sample_codes(model, labels, LAYOUT, cfg_scale=cfg_scale, temperature=0.9, top_k=top_k,
                         generator=torch.Generator().manual_seed(7), batch_size=5,
                         use_cache=use_cache) for use_cache in (True, False)]
    assert runs[0].shape == (12, 3, 3) and (runs[0] < 16).all() and (runs[0] >= 0).all()
    assert torch.equal(runs[0], runs[1])
    other_seed = sample_codes(model, labels, LAYOUT, cfg_scale=cfg_scale, top_k=top_k,
                              generator=torch.Generator().manual_seed(8), batch_size=5)
    assert not torch.equal(other_seed, runs[0])


def test_the_class_token_conditions_the_samples():
    """A model whose logits depend on the class token (through its embedding only) samples the
    codes its class prefers; guidance sharpens the difference to the null class."""
    model = random_model("standard", None)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.final_norm.weight.fill_(1.0)
        # class c's embedding points at code c; codes and null point nowhere in particular
        model.embed.weight[16:26, :10] = torch.eye(10) * 5
        model.head.weight[:10, :10] = torch.eye(10)
    labels = torch.arange(200) % 10
    codes = sample_codes(model, labels, LAYOUT, generator=torch.Generator().manual_seed(0))
    # only the first code sees the class token itself (attention would carry it later on, but
    # this model's attention outputs are zero)
    first = codes.view(200, -1)[:, 0]
    assert (first == labels).float().mean() > 0.5
    guided = sample_codes(model, labels, LAYOUT, cfg_scale=3.0,
                          generator=torch.Generator().manual_seed(0)).view(200, -1)[:, 0]
    assert (guided == labels).float().mean() > (first == labels).float().mean()


def test_sample_grid_puts_each_class_on_its_own_row():
    images = np.repeat(np.arange(30, dtype=np.uint8)[:, None, None] * 8, 28, 1).repeat(28, 2)
    labels = np.arange(30) % 10
    grid = sample_grid(images, labels, columns=3, zoom=1, gap=2)
    assert grid.shape == (10 * 30 + 2, 3 * 30 + 2)
    for c in range(10):
        for j in range(3):
            top, left = 2 + c * 30, 2 + j * 30
            assert (grid[top:top + 28, left:left + 28] == images[c + 10 * j]).all()
