"""The config flags of `movelab train` and `movelab plan` and the RunConfig they assemble."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from movelab.config import (BANK_INITS, PRESETS, RECIPE_FIELDS, VALUE_PATHS, ConfigError,
                            ModelConfig, build_config)


class UsageError(Exception):
    """Raised for input that cannot work; main() prints it as one line and exits 2."""


def add_model_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("model (a preset, or the depth dial, plus overrides)")
    g.add_argument("--preset", choices=list(PRESETS), metavar="NAME",
                   help=f"a ladder rung: {', '.join(PRESETS)}. Without it the CPU ladder's rule "
                        "derives everything from --depth (width 16 x depth, heads of 32)")
    g.add_argument("--depth", type=int, help="layers L (default: the preset's, or 4)")
    g.add_argument("--width", type=int, help="model width d (default: the ladder's aspect x depth)")
    g.add_argument("--heads", type=int, help="attention heads H (default: width / ladder head size)")
    g.add_argument("--vocab-size", type=int, help="vocabulary size V (default: the ladder's)")
    g.add_argument("--seq-len", type=int, help="context length T (default: the ladder's)")
    g.add_argument("--value-path", choices=VALUE_PATHS,
                   help="standard, lave (layer-wise value embeddings) or move (mixture of value "
                        "embeddings); default standard")
    g.add_argument("--density", type=float, metavar="K",
                   help="lave: 1 (every other layer) or 2 (every layer); move: xK, M = K*L/2 slots")
    g.add_argument("--slots", type=int, metavar="M", help="move: number of slots (overrides --density)")
    gate = g.add_mutually_exclusive_group()
    gate.add_argument("--gate-standard", dest="gate_standard", action="store_true", default=None,
                      help="lave ablation: also gate the standard value path")
    gate.add_argument("--no-gate-standard", dest="gate_standard", action="store_false",
                      help="move ablation: fix the standard path's gate g0 at 1")
    d = ModelConfig()
    g = parser.add_argument_group("initialisation (recipe; defaults are the paper's)")
    g.add_argument("--router-init-std", type=float,
                   help=f"move: std of the routers' normal init; 0 = zero, every gate 1 "
                        f"(default {d.router_init_std:g})")
    g.add_argument("--bank-init", choices=BANK_INITS,
                   help="move: bank std 1/sqrt(d) (width, default) or 1/sqrt(d M) (width_slots)")
    g.add_argument("--embed-init-std", type=float,
                   help=f"token embedding std (default {d.embed_init_std:g})")
    g.add_argument("--head-init-std", type=float,
                   help=f"output head std (default {d.head_init_std:g})")


def config_from_args(args: argparse.Namespace, *, vocab_size: int | None = None,
                     seq_len: int | None = None) -> ModelConfig:
    """The model of the flags; vocab_size and seq_len are defaults that the flags override."""
    density = args.density
    if density is not None and float(density).is_integer():
        density = int(density)
    recipe = {f: getattr(args, f) for f in RECIPE_FIELDS if getattr(args, f) is not None}
    return build_config(args.preset, depth=args.depth, width=args.width, heads=args.heads,
                        vocab_size=args.vocab_size if args.vocab_size is not None else vocab_size,
                        seq_len=args.seq_len if args.seq_len is not None else seq_len,
                        value_path=args.value_path or "standard", density=density, slots=args.slots,
                        gate_standard=args.gate_standard, **recipe)


MODEL_FLAGS = ("preset", "depth", "width", "heads", "vocab_size", "seq_len", "value_path",
               "density", "slots", "gate_standard", *sorted(RECIPE_FIELDS))
TRAIN_FLAGS = ("corpus", "tokens", "tokens_per_param", "flops", "batch_size", "optimizer", "lr",
               "embedding_lr", "memory_lr", "muon_lr", "weight_decay", "warmup_frac", "final_lr_frac",
               "grad_clip", "evals", "seed", "eval_split", "memory_lr_scaling", "router_lr",
               "adam_beta1", "adam_beta2", "adam_eps", "lr_reference_width", "val_fraction",
               "eval_batch", "memory_update")
IMAGE_FLAGS = ("patch", "codebook_size", "label_dropout", "cfg_scale", "temperature", "top_k",
               "fid_samples")
DEFAULT_TOKENS = 1_000_000


def add_train_args(parser: argparse.ArgumentParser) -> None:
    from movelab.training.config import (EVAL_SPLITS, MEMORY_LR_SCALINGS, MEMORY_UPDATES, OPTIMIZERS,
                                         ImageConfig, TrainConfig)

    d = TrainConfig(tokens=1)
    g = parser.add_argument_group("data and horizon")
    g.add_argument("--task", choices=("text", "image"),
                   help="text (default) or image: class-conditional generation of Fashion-MNIST "
                        "codes (sets --corpus fashion-mnist and the vocabulary and context of "
                        "the image tokens: 523 and 49 at the defaults)")
    g.add_argument("--corpus", help="text: wiki (default; offline, ships in gensim's wheel), "
                                    "pydocs (Debian's python3.11-doc, 3x wiki), pydocs:HTML_DIR, "
                                    "prose (Debian's dictionaries and documentation, with a test "
                                    "split; docs/corpora.md), "
                                    "text:PATH (a file or folder of .txt/.md), "
                                    "fineweb-edu[:PARQUET_DIR], recall:K=N (synthetic positive "
                                    "control of the slot axis, val_bpb is bits per token; "
                                    "movelab/data/recall.py); image: fashion-mnist (default) "
                                    "or fashion-mnist:IDX_DIR")
    h = g.add_mutually_exclusive_group()
    h.add_argument("--tokens", type=int, metavar="N",
                   help=f"train on N tokens (default {DEFAULT_TOKENS:,})")
    h.add_argument("--tokens-per-param", type=float, metavar="R", help="R tokens per active parameter")
    h.add_argument("--flops", type=float, metavar="C", help="a training-FLOP budget (6N + attention)")
    g = parser.add_argument_group("optimisation")
    g.add_argument("--batch-size", type=int, help=f"sequences per step, global (default {d.batch_size})")
    g.add_argument("--optimizer", choices=OPTIMIZERS,
                   help="adamw (default) or muon for the transformer matrices")
    g.add_argument("--lr", type=float, help=f"peak AdamW learning rate of matrices, gates, head "
                                            f"and norms at width 64, scaled by 64/width "
                                            f"(default {d.lr:g})")
    g.add_argument("--embedding-lr", type=float,
                   help=f"token embedding (default {d.embedding_lr:g})")
    g.add_argument("--memory-lr", type=float,
                   help=f"LaVE tables and MoVE bank (default {d.memory_lr:g})")
    g.add_argument("--memory-lr-scaling", choices=MEMORY_LR_SCALINGS,
                   help="memory learning rate over M slots: x1 (constant, default), x1/sqrt(M) "
                        "(inv_sqrt) or x1/M (inv)")
    g.add_argument("--memory-update", choices=MEMORY_UPDATES,
                   help="dense (default): AdamW steps every memory row each step; lazy: "
                        "row-sparse gradients and SparseAdam on the rows a batch touches "
                        "(eager, one process)")
    g.add_argument("--router-lr", type=float,
                   help="move routers' learning rate (default: the --lr rule's, as gates and norms)")
    g.add_argument("--muon-lr", type=float, help=f"with --optimizer muon (default {d.muon_lr:g})")
    g.add_argument("--weight-decay", type=float, help=f"on matrices (default {d.weight_decay:g})")
    g.add_argument("--warmup-frac", type=float, help=f"default {d.warmup_frac:g}")
    g.add_argument("--final-lr-frac", type=float, help=f"cosine floor (default {d.final_lr_frac:g})")
    g.add_argument("--grad-clip", type=float, help=f"default {d.grad_clip:g}")
    g.add_argument("--adam-beta1", type=float, help=f"AdamW beta1 (default {d.adam_beta1:g})")
    g.add_argument("--adam-beta2", type=float, help=f"AdamW beta2 (default {d.adam_beta2:g})")
    g.add_argument("--adam-eps", type=float, help=f"AdamW eps (default {d.adam_eps:g})")
    g.add_argument("--lr-reference-width", type=int,
                   help=f"--lr applies at this width, scaled by it / width "
                        f"(default {d.lr_reference_width})")
    g.add_argument("--val-fraction", type=float,
                   help=f"share of a text corpus's documents held out (default {d.val_fraction:g})")
    g.add_argument("--eval-batch", type=int,
                   help="validation windows per forward pass (default: 16 text, 500 image)")
    g.add_argument("--evals", type=int, help=f"validation passes over the run (default {d.evals})")
    g.add_argument("--seed", type=int, help="init and batch order (default 0)")
    g.add_argument("--eval-split", choices=EVAL_SPLITS,
                   help="what validation scores: dev (default; for every choice) or test (for "
                        "claims; corpora with a test split: prose)")
    i = ImageConfig()
    g = parser.add_argument_group("image task (--task image)")
    g.add_argument("--patch", type=int, help=f"tokenizer tile size (default {i.patch}: 7x7 codes)")
    g.add_argument("--codebook-size", type=int,
                   help=f"tokenizer codes K; vocabulary K + 11 (default {i.codebook_size})")
    g.add_argument("--label-dropout", type=float,
                   help=f"share of training images with the null class (default {i.label_dropout:g})")
    g.add_argument("--cfg-scale", type=float,
                   help=f"classifier-free guidance s: uncond + s (cond - uncond); 1: none "
                        f"(default {i.cfg_scale:g})")
    g.add_argument("--temperature", type=float, help=f"sampling temperature (default {i.temperature:g})")
    g.add_argument("--top-k", type=int, help="sample from the k most likely codes (default: all)")
    g.add_argument("--fid-samples", type=int,
                   help=f"images generated for FID and class accuracy (default {i.fid_samples})")


def read_record(path: Path) -> dict:
    """The result.json or run.json that --from names, as a dict with a 'config'."""
    try:
        recorded = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UsageError(f"cannot read --from {path}: {err}; give a result.json or run.json"
                         ) from None
    if not isinstance(recorded, dict) or "config" not in recorded:
        raise UsageError(f"--from {path} has no 'config'; give a result.json or run.json")
    return recorded


def run_config_from_args(args: argparse.Namespace):
    from movelab.training.config import (IMAGE_CORPUS, ImageConfig, RunConfig, TrainConfig,
                                         is_image_corpus)

    if args.from_record is not None:
        given = [f for f in MODEL_FLAGS + TRAIN_FLAGS + IMAGE_FLAGS + ("task",)
                 if getattr(args, f) is not None]
        if given:
            raise UsageError(f"--from reruns a recorded config as it is; drop "
                             f"{', '.join('--' + f.replace('_', '-') for f in given)}")
        try:
            return RunConfig.from_dict(read_record(args.from_record)["config"])
        except ConfigError as err:
            raise UsageError(f"--from {args.from_record}: {err}") from None
    chosen = {f: getattr(args, f) for f in TRAIN_FLAGS if getattr(args, f) is not None}
    if not {"tokens", "tokens_per_param", "flops"} & set(chosen):
        chosen["tokens"] = DEFAULT_TOKENS
    image_flags = {f: getattr(args, f) for f in IMAGE_FLAGS if getattr(args, f) is not None}
    task = args.task or ("image" if is_image_corpus(chosen.get("corpus", "")) else "text")
    if task == "text":
        if is_image_corpus(chosen.get("corpus", "")):
            raise UsageError(f"--corpus {chosen['corpus']} is image data; use --task image")
        if image_flags:
            raise UsageError(f"{', '.join('--' + f.replace('_', '-') for f in image_flags)} "
                             f"{'applies' if len(image_flags) == 1 else 'apply'} only to image "
                             "runs; add --task image or drop it")
        return RunConfig(config_from_args(args), TrainConfig(**chosen))
    chosen.setdefault("corpus", IMAGE_CORPUS)
    if not is_image_corpus(chosen["corpus"]):
        raise UsageError(f"--task image trains on {IMAGE_CORPUS} or {IMAGE_CORPUS}:IDX_DIR, not "
                         f"--corpus {chosen['corpus']}")
    image = ImageConfig(**image_flags)
    model = config_from_args(args, vocab_size=image.layout.vocab_size,
                             seq_len=image.layout.seq_len)
    return RunConfig(model, TrainConfig(**chosen), image)
