"""The image task's parts: Fashion-MNIST (`data`: load_fashion_mnist -> ImageData), a discrete
patch tokenizer whose codes are cached per split (`tokenizer`: extract_codes -> ImageCodes), the
token layout (`layout`, torch-free, which the run configuration reads), KV-cached sampling with
classifier-free guidance (`sampling`), FID in a cached classifier's feature space (`classifier`,
`fid`), the task the training loop drives (`task`) and guidance-scale selection (`guidance`).
Import the module you need; the package itself imports nothing."""
