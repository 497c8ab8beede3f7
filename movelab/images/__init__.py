"""Image data for class-conditional generation: Fashion-MNIST (`load_fashion_mnist` -> ImageData)
and a discrete patch tokenizer whose codes are cached per split (`extract_codes` -> ImageCodes);
the token layout of the image task (`layout`), its training data (`task`), KV-cached sampling
with classifier-free guidance (`sampling`), and FID in a cached classifier's feature space
(`classifier`, `fid`).

Names are imported lazily (PEP 562), so the torch-free parts (`movelab.images.layout`) can be
imported by configuration code without loading torch."""

from importlib import import_module

_EXPORTS = {
    "FASHION_MNIST_CLASSES": "data", "ImageData": "data", "load_fashion_mnist": "data",
    "ImageCodes": "tokenizer", "PatchTokenizer": "tokenizer", "extract_codes": "tokenizer",
    "load_or_train_patch_tokenizer": "tokenizer", "train_patch_tokenizer": "tokenizer",
    "ImageLayout": "layout",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(import_module(f"movelab.images.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
