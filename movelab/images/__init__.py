"""Image data for class-conditional generation: Fashion-MNIST (`load_fashion_mnist` -> ImageData)
and a discrete patch tokenizer whose codes are cached per split (`extract_codes` -> ImageCodes)."""

from movelab.images.data import FASHION_MNIST_CLASSES, ImageData, load_fashion_mnist
from movelab.images.tokenizer import (ImageCodes, PatchTokenizer, extract_codes,
                                      load_or_train_patch_tokenizer, train_patch_tokenizer)

__all__ = ["FASHION_MNIST_CLASSES", "ImageCodes", "ImageData", "PatchTokenizer", "extract_codes",
           "load_fashion_mnist", "load_or_train_patch_tokenizer", "train_patch_tokenizer"]
