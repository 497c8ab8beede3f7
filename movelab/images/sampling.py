"""Class-conditional sampling of image codes: autoregressive, KV-cached, with temperature, top-k
and classifier-free guidance (CFG) by batch doubling.

Each step runs the conditional rows (prefix = the class token) and, with guidance, the same
rows again with the null class token as prefix, in one batch of twice the size; the next-code
logits are then

    logits = uncond + s * (cond - uncond)          (s = cfg_scale; s = 1: no guidance)

computed with torch.lerp, which is exact at both ends: s = 0 gives the unconditional logits and
s = 1 the conditional ones, bit for bit. Non-code ids (classes, null) are masked out, the logits
divided by the temperature, cut to the top k, and one code drawn per row from a seeded
generator; the conditional and unconditional rows both continue with the drawn code.

With `use_cache=False` every step recomputes the whole prefix (the reference the tests hold the
cache to): the same model calls, the same draws from the generator, so the same codes.
"""

from __future__ import annotations

import torch

from movelab.images.layout import ImageLayout
from movelab.model import GPT, KVCache

SAMPLE_BATCH = 1000  # images per batch (twice as many rows with guidance)


def guided_logits(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """uncond + scale * (cond - uncond), exact at scale 0 (uncond) and 1 (cond)."""
    return torch.lerp(uncond, cond, scale)


def next_code_distribution(logits: torch.Tensor, layout: ImageLayout, *, temperature: float = 1.0,
                           top_k: int | None = None) -> torch.Tensor:
    """Logits (B, V) -> probabilities (B, V) over the codes only, after temperature and top-k."""
    logits = layout.mask_non_codes(logits.float()) / temperature
    if top_k is not None and top_k < layout.codebook_size:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return torch.softmax(logits, dim=-1)


@torch.no_grad()
def sample_codes(model: GPT, labels: torch.Tensor, layout: ImageLayout, *, cfg_scale: float = 1.0,
                 temperature: float = 1.0, top_k: int | None = None,
                 generator: torch.Generator | None = None, batch_size: int = SAMPLE_BATCH,
                 use_cache: bool = True) -> torch.Tensor:
    """Codes (N, grid, grid), int64 on the CPU, of one sample per class label in `labels` (N,).
    Batches of `batch_size` are drawn in order from `generator` (on the model's device)."""
    was_training = model.training
    model.eval()
    try:
        batches = [_sample_batch(model, chunk, layout, cfg_scale, temperature, top_k, generator,
                                 use_cache)
                   for chunk in torch.as_tensor(labels).long().split(batch_size)]
    finally:
        model.train(was_training)
    codes = torch.cat(batches) if batches else torch.empty(0, layout.codes_per_image,
                                                           dtype=torch.long)
    return codes.view(-1, layout.grid, layout.grid)


def _sample_batch(model, labels, layout, cfg_scale, temperature, top_k, generator, use_cache):
    device = model.head.weight.device
    guided = cfg_scale != 1
    prefix = layout.class_ids(labels.to(device))[:, None]
    if guided:
        prefix = torch.cat([prefix, torch.full_like(prefix, layout.null_id)])
    rows, cache = len(labels), KVCache() if use_cache else None
    sequence, new = prefix, prefix
    for _ in range(layout.codes_per_image):
        logits = model(new if use_cache else sequence, cache=cache)[:, -1]
        if guided:
            logits = guided_logits(logits[:rows], logits[rows:], cfg_scale)
        probabilities = next_code_distribution(logits, layout, temperature=temperature,
                                               top_k=top_k)
        code = torch.multinomial(probabilities, 1, generator=generator)
        new = torch.cat([code, code]) if guided else code
        sequence = torch.cat([sequence, new], dim=1)
    return sequence[:rows, 1:].cpu()
