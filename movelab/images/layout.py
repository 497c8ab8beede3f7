"""Token layout of the image task: one vocabulary for image codes, class tokens and the null class.

With a tokenizer of K codes (K = 512 by default) and the 10 Fashion-MNIST classes:

    ids 0 .. K-1        image codes (the patch tokenizer's codebook entries)
    ids K .. K+9        the class tokens, class c is id K + c
    id  K+10            the null class (no condition), for classifier-free guidance
    vocab_size          K + 11 (523 at K = 512)

An image of G x G codes (G = 28 / patch, 7 at patch 4) is the sequence [class, c1, ..., c_{G^2}]
of G^2 + 1 ids, codes in raster order. The model reads [class, c1 .. c_{G^2 - 1}] (seq_len G^2 =
49) and predicts [c1 .. c_{G^2}]: the class token is a one-token prefix that is never a target.
In training batches the class token is replaced by the null token with probability
`label_dropout` (0.1), so the same model also learns the unconditional distribution.

Memory indexing: the model is the text GPT over this vocabulary, unchanged. The MoVE bank and
the LaVE tables are indexed by the *input* token id exactly as for text, so at the prefix
position the class token's own rows act as a class-conditioned memory, and each code position
reads the rows of the code at that position (the code being predicted from it is the next one).

At sampling time the logits of the non-code ids (classes and null) are masked out, so every
sampled id is a code.
"""

from __future__ import annotations

from dataclasses import dataclass

NUM_CLASSES = 10  # Fashion-MNIST
IMAGE_SIZE = 28  # Fashion-MNIST images are 28 x 28


@dataclass(frozen=True)
class ImageLayout:
    codebook_size: int = 512
    grid: int = 7  # codes per side: IMAGE_SIZE / patch
    num_classes: int = NUM_CLASSES

    @property
    def vocab_size(self) -> int:
        return self.codebook_size + self.num_classes + 1

    @property
    def null_id(self) -> int:
        return self.codebook_size + self.num_classes

    @property
    def codes_per_image(self) -> int:
        return self.grid * self.grid

    @property
    def seq_len(self) -> int:
        """Model inputs per image: the class token and all codes but the last."""
        return self.codes_per_image

    def class_ids(self, labels):
        """Class labels 0..num_classes-1 (ints, numpy or torch) -> their token ids."""
        return labels + self.codebook_size

    def sequences(self, codes, labels):
        """codes (N, grid, grid) and labels (N,) as torch tensors -> int64 (N, 1 + grid^2):
        [class token, codes in raster order]."""
        import torch

        codes = torch.as_tensor(codes).long().reshape(len(codes), -1)
        labels = torch.as_tensor(labels).long()
        if codes.shape[1] != self.codes_per_image:
            raise ValueError(f"{codes.shape[1]} codes per image, the layout has "
                             f"{self.codes_per_image}")
        return torch.cat([self.class_ids(labels)[:, None], codes], dim=1)

    def mask_non_codes(self, logits):
        """Logits (..., vocab_size) with every non-code id (classes, null) set to -inf."""
        logits = logits.clone()
        logits[..., self.codebook_size:] = float("-inf")
        return logits
