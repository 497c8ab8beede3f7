"""Training configuration: everything besides the model that decides a run's outcome."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from movelab.accounting import analytic_costs
from movelab.config import (ConfigError, DictConfig, ModelConfig, check_number, config_hash,
                            recipe_field, setting, unknown_keys)
from movelab.images.layout import IMAGE_SIZE, ImageLayout

OPTIMIZERS = ("adamw", "muon")
MEMORY_UPDATES = ("dense", "lazy")
# what the forward computes in (computed_precision): auto is bf16 autocast on CUDA and fp32 on the
# CPU; bf16 and fp32 ask for one on either
PRECISIONS = ("auto", "fp32", "bf16")
# the memory's learning rate over M slots: memory_lr x 1, x 1/sqrt(M) or x 1/M (M = 1 for LaVE)
MEMORY_LR_SCALINGS = ("constant", "inv_sqrt", "inv")
EVAL_SPLITS = ("dev", "test")  # what validation scores (movelab.data.shards.STREAMS)
# the horizon, exactly one of them; the command line trains on DEFAULT_TOKENS given none
HORIZONS = ("tokens", "tokens_per_param", "flops")
DEFAULT_TOKENS = 1_000_000
IMAGE_CORPUS = "fashion-mnist"  # --corpus fashion-mnist or fashion-mnist:PATH selects the image task


def is_image_corpus(corpus: str) -> bool:
    return isinstance(corpus, str) and (corpus == IMAGE_CORPUS
                                        or corpus.startswith(IMAGE_CORPUS + ":"))


# the range of every number of TrainConfig (the horizons are checked when given)
TRAIN_RANGES = {
    "tokens": dict(whole=True, minimum=1), "tokens_per_param": dict(above=0),
    "flops": dict(above=0), "batch_size": dict(whole=True, minimum=1), "lr": dict(above=0),
    "embedding_lr": dict(minimum=0), "memory_lr": dict(minimum=0), "muon_lr": dict(minimum=0),
    "weight_decay": dict(minimum=0), "warmup_frac": dict(minimum=0, below=1),
    "final_lr_frac": dict(minimum=0, maximum=1), "grad_clip": dict(above=0),
    "evals": dict(whole=True, minimum=1), "seed": dict(whole=True, minimum=0, below=2**63),
    "router_lr": dict(above=0), "adam_beta1": dict(minimum=0, below=1),
    "adam_beta2": dict(minimum=0, below=1), "adam_eps": dict(above=0),
    "lr_reference_width": dict(whole=True, minimum=1), "val_fraction": dict(above=0, below=1),
    "eval_batch": dict(whole=True, minimum=1)}


def computed_precision(device_type: str, requested: str = "auto") -> str:
    """What a run at `requested` precision (TrainConfig.precision) computes in on a device of
    `device_type` ("cpu" or "cuda"): "auto" is bf16 on CUDA and fp32 on the CPU."""
    if requested not in PRECISIONS:
        raise ConfigError(f"unknown precision {requested!r}; choose one of {', '.join(PRECISIONS)}")
    if requested == "auto":
        return "bf16" if device_type == "cuda" else "fp32"
    return requested


@dataclass(frozen=True)
class TrainConfig(DictConfig):
    corpus: str = setting(
        "wiki", "text: wiki (default; offline, ships in gensim's wheel), pydocs (Debian's "
        "python3.11-doc, 3x wiki), pydocs:HTML_DIR, prose (Debian's dictionaries and "
        "documentation, with a test split; docs/corpora.md), text:PATH (a file or folder of "
        ".txt/.md), fineweb-edu[:PARQUET_DIR], recall:K=N (synthetic positive control of the "
        "slot axis, val_bpb is bits per token; movelab/data/recall.py); image: fashion-mnist "
        "(default) or fashion-mnist:IDX_DIR")
    # The horizon: exactly one of tokens, tokens per active parameter, or a FLOP budget.
    tokens: int | None = setting(None, f"train on N tokens (default {DEFAULT_TOKENS:,})",
                                 metavar="N")
    tokens_per_param: float | None = setting(None, "R tokens per active parameter", metavar="R")
    flops: float | None = setting(None, "a training-FLOP budget (6N + attention)", metavar="C")
    # sequences per optimizer step (the global batch)
    batch_size: int = setting(16, "sequences per step, global (default {default})")
    # adamw everywhere, or muon for the transformer matrices
    optimizer: str = setting("adamw", "adamw (default) or muon for the transformer matrices",
                             choices=OPTIMIZERS)
    # peak AdamW learning rate of the matmul weights and norms *at width 64*; it scales as
    # 64 / width (muP's rule for Adam on hidden weights). 1e-2 is the best mean over 3 seeds at
    # d4, and seeds agree there; 2e-2 won on seed 0 alone but spread seeds by 0.2 BPB
    # (docs/research-log.md, 2026-11-25)
    lr: float = setting(1e-2, "peak AdamW learning rate of matrices, gates, head and norms at "
                              "width 64, scaled by 64/width (default {default})")
    # token embedding; width-independent
    embedding_lr: float = setting(0.1, "token embedding (default {default})")
    # LaVE tables and MoVE bank (tuned on d4 MoVE x4, research log)
    memory_lr: float = setting(0.01, "LaVE tables and MoVE bank (default {default})")
    muon_lr: float = setting(0.02, "with --optimizer muon (default {default})")
    weight_decay: float = setting(0.1, "on matrices (default {default})")  # matrices only
    warmup_frac: float = setting(0.05, "default {default}")
    # cosine decay from the peak down to this fraction
    final_lr_frac: float = setting(0.1, "cosine floor (default {default})")
    grad_clip: float = setting(1.0, "default {default}")
    # full validation passes spread evenly over the run, the last at its end (on the default
    # corpus one pass costs about as much as training on 30k tokens)
    evals: int = setting(6, "validation passes over the run (default {default})")
    seed: int = setting(0, "init and batch order (default {default})")
    # Recipe fields added 2026-12-01 for the slot-axis study: left out of the hash at their
    # defaults, so the committed runs, which ran with exactly these values, keep their ids.
    memory_lr_scaling: str = recipe_field(
        "constant", "memory learning rate over M slots: x1 (constant, default), x1/sqrt(M) "
        "(inv_sqrt) or x1/M (inv)", choices=MEMORY_LR_SCALINGS)
    # MoVE routers; None: the lr rule's value
    router_lr: float | None = recipe_field(
        None, "move routers' learning rate (default: the --lr rule's, as gates and norms)")
    adam_beta1: float = recipe_field(0.9, "AdamW beta1 (default {default})")
    adam_beta2: float = recipe_field(0.95, "AdamW beta2 (default {default})")
    adam_eps: float = recipe_field(1e-10, "AdamW eps (default {default})")
    # lr applies at this width, x ref / width
    lr_reference_width: int = recipe_field(
        64, "--lr applies at this width, scaled by it / width (default {default})")
    # share of a text corpus's documents
    val_fraction: float = recipe_field(
        0.08, "share of a text corpus's documents held out (default {default})")
    # validation windows per forward; None: the data's own (16 text, 500 image)
    eval_batch: int | None = recipe_field(
        None, "validation windows per forward pass (default: 16 text, 500 image)")
    # what the validation passes score: "dev" (the validation split of every corpus: for every
    # choice) or "test" (corpora with a held-out test split, e.g. prose: for claims)
    eval_split: str = recipe_field(
        "dev", "what validation scores: dev (default; for every choice) or test (for claims; "
        "corpora with a test split: prose)", choices=EVAL_SPLITS)
    # how the memory (LaVE tables, MoVE bank) is updated: "dense", AdamW over every row each step
    # (moments of unseen rows decay and keep moving them); "lazy", a row-sparse gradient and
    # torch's SparseAdam on the rows the batch touched only (which also adds eps to sqrt(v)
    # before the bias correction, AdamW after it; research log 2026-12-01)
    memory_update: str = recipe_field(
        "dense", "dense (default): AdamW steps every memory row each step; lazy: row-sparse "
        "gradients and SparseAdam on the rows a batch touches (eager, one process)",
        choices=MEMORY_UPDATES)
    # Added 2026-12-02: bf16 autocast on the CPU (weights, optimizer state and the loss in fp32)
    # is a different computation from fp32, so it is a recipe field, in the hash when not auto
    precision: str = recipe_field(
        "auto", "auto (default): bf16 autocast on CUDA, fp32 on the CPU; bf16: bf16 autocast on "
        "either (fast on CPUs with AMX); fp32: fp32 on either", choices=PRECISIONS)

    def __post_init__(self):
        if not isinstance(self.corpus, str) or not self.corpus:
            raise ConfigError(f"--corpus must name a corpus (e.g. wiki or text:PATH), got "
                              f"{self.corpus!r}")
        horizons = [h for h in HORIZONS if getattr(self, h) is not None]
        if len(horizons) != 1:
            raise ConfigError("give exactly one horizon: --tokens N, --tokens-per-param R or "
                              "--flops C")
        self.check_choices()
        for name, rule in TRAIN_RANGES.items():
            if getattr(self, name) is not None:
                check_number(getattr(self, name), "--" + name.replace("_", "-"), **rule)

    def memory_lr_for(self, model: ModelConfig) -> float:
        """The memory's learning rate for this model's slot count (memory_lr_scaling)."""
        slots = model.slots or 1
        return self.memory_lr * {"constant": 1.0, "inv_sqrt": slots ** -0.5,
                                 "inv": 1.0 / slots}[self.memory_lr_scaling]

    def total_steps(self, model: ModelConfig) -> int:
        tokens_per_step = self.batch_size * model.seq_len
        if self.tokens is not None:
            tokens = self.tokens
        elif self.tokens_per_param is not None:
            tokens = self.tokens_per_param * analytic_costs(model).params_active
        else:
            tokens = self.flops / analytic_costs(model).flops_per_token_train
        return max(1, math.ceil(tokens / tokens_per_step))


@dataclass(frozen=True)
class ImageConfig(DictConfig):
    """What an image run needs besides TrainConfig: the tokenizer, label dropout, and how it is
    sampled and scored after training (movelab.images.layout documents the token layout)."""

    # tokenizer tiles: 28 / patch codes per side
    patch: int = setting(4, "tokenizer tile size (default {default}: 7x7 codes)")
    # K codes; the vocabulary is K + 11 (10 classes, null)
    codebook_size: int = setting(512, "tokenizer codes K; vocabulary K + 11 (default {default})")
    # share of training sequences whose class token is null
    label_dropout: float = setting(
        0.1, "share of training images with the null class (default {default})")
    # classifier-free guidance: logits = uncond + cfg_scale * (cond - uncond); 1 is no guidance.
    # 1.75 had the lowest FID of 1, 1.25, 1.5, 1.75, 2, 3 on a d4 model, two sampling seeds
    # (`movelab cfg-scale`, FID against training images; docs/research-log.md, 2026-11-26)
    cfg_scale: float = setting(1.75, "classifier-free guidance s: uncond + s (cond - uncond); "
                                     "1: none (default {default})")
    temperature: float = setting(1.0, "sampling temperature (default {default})")
    # sample from the k most likely codes only (None: all)
    top_k: int | None = setting(None, "sample from the k most likely codes (default: all)")
    # generated images scored against the 10k test images
    fid_samples: int = setting(
        10_000, "images generated for FID and class accuracy (default {default})")

    def __post_init__(self):
        if not isinstance(self.patch, int) or self.patch < 1 or IMAGE_SIZE % self.patch:
            divisors = [p for p in range(1, IMAGE_SIZE) if IMAGE_SIZE % p == 0]
            raise ConfigError(f"--patch must divide the image size {IMAGE_SIZE}: one of "
                              f"{divisors}, got {self.patch!r}")
        if not isinstance(self.codebook_size, int) or not 2 <= self.codebook_size <= 2**16:
            raise ConfigError(f"--codebook-size must be a whole number in 2..65536, got "
                              f"{self.codebook_size!r}")
        check_number(self.label_dropout, "--label-dropout", minimum=0, below=1)
        check_number(self.cfg_scale, "--cfg-scale", minimum=0)
        check_number(self.temperature, "--temperature", above=0)
        if self.top_k is not None:
            check_number(self.top_k, "--top-k", whole=True, minimum=1)
        if self.cfg_scale != 1 and self.label_dropout == 0:
            raise ConfigError("classifier-free guidance (--cfg-scale other than 1) needs an "
                              "unconditional model: give --label-dropout above 0")
        if not isinstance(self.fid_samples, int) or self.fid_samples < 2:
            raise ConfigError(f"--fid-samples must be a whole number of at least 2, got "
                              f"{self.fid_samples!r}")

    @property
    def layout(self) -> ImageLayout:
        return ImageLayout(codebook_size=self.codebook_size, grid=IMAGE_SIZE // self.patch)


@dataclass(frozen=True)
class RunConfig:
    """A run is a model and a way to train it; its hash names it. The corpus decides the task:
    `fashion-mnist[:PATH]` is the image task, which carries an ImageConfig (the default one when
    none is given); every other corpus is text and has none. `image` is serialised only when
    present, so the dicts, and hashes, of text runs are what they were before images existed."""

    model: ModelConfig
    train: TrainConfig
    image: ImageConfig | None = None

    def __post_init__(self):
        if is_image_corpus(self.train.corpus):
            if self.image is None:
                object.__setattr__(self, "image", ImageConfig())
            layout = self.image.layout
            for name, needed in (("vocab_size", layout.vocab_size), ("seq_len", layout.seq_len)):
                if getattr(self.model, name) != needed:
                    raise ConfigError(
                        f"the image task at patch {self.image.patch} and codebook "
                        f"{self.image.codebook_size} needs {name} {needed} (codes + 10 classes + "
                        f"null; class token + {layout.codes_per_image - 1} codes in), not "
                        f"{getattr(self.model, name)}; use --task image, which sets it, or "
                        f"--{name.replace('_', '-')} {needed}")
            if self.train.eval_split != "dev":
                raise ConfigError("the image task scores the Fashion-MNIST test images; "
                                  "--eval-split applies to text corpora")
        elif self.image is not None:
            given = [f"--{f.metadata.get('name', f.name).replace('_', '-')}"
                     for f in dataclasses.fields(self.image)
                     if getattr(self.image, f.name) != f.default]
            which = f" ({', '.join(given)})" if given else ""
            raise ConfigError(f"image settings{which} "
                              f"apply to the image task (--task image, corpus {IMAGE_CORPUS}), "
                              f"not to the text corpus {self.train.corpus!r}")

    @property
    def task(self) -> str:
        return "text" if self.image is None else "image"

    def to_dict(self) -> dict:
        d = {"model": self.model.to_dict(), "train": self.train.to_dict()}
        if self.image is not None:
            d["image"] = self.image.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        try:
            if not isinstance(d, dict):
                raise TypeError(f"a {type(d).__name__}, not a table")
            unknown = set(d) - {"model", "train", "image"}
            if unknown:
                raise unknown_keys("a run config", unknown, ("model", "train", "image"))
            image = (ImageConfig.from_dict(d["image"], "its 'image'")
                     if d.get("image") is not None else None)
            return cls(ModelConfig.from_dict(d["model"], "its 'model'"),
                       TrainConfig.from_dict(d["train"], "its 'train'"), image)
        except (KeyError, TypeError) as err:
            raise ConfigError(f"not a movelab run config ({err}); expected keys 'model' and "
                              "'train' (and 'image' for image runs) as written in result.json"
                              ) from None

    def hash(self) -> str:
        return config_hash(self.to_dict())
