"""The config flags of `movelab train` and `movelab plan` and the RunConfig they assemble.

Every field of ModelConfig, TrainConfig and ImageConfig is a flag, derived from the field: its
name (or the `name` its metadata gives), its type, and the help, metavar and choices of its
declaration (`setting` or `recipe_field` in movelab/config.py), so a new field needs only its
declaration. A flag not given is None, and the field keeps its default. What the values may
be is the configs' to check; here only what is about the flags themselves (--from with config
flags, --task against --corpus) is.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from pathlib import Path

from movelab.config import PRESETS, ConfigError, ModelConfig, build_config


class UsageError(Exception):
    """Raised for input that cannot work; main() prints it as one line and exits 2."""


def flag_of(field: dataclasses.Field) -> str:
    """The command-line flag of a config field, e.g. '--vocab-size', '--heads' (n_heads)."""
    return "--" + field.metadata.get("name", field.name).replace("_", "-")


def help_of(field: dataclasses.Field) -> str:
    """The flag's help: the field's, with {default} replaced by its default."""
    default = field.default
    shown = f"{default:g}" if isinstance(default, float) else str(default)
    return field.metadata["help"].replace("{default}", shown)


def value_type(cls: type, field: dataclasses.Field) -> type:
    """The type of a field's values: its annotation without None (`int | None` -> int)."""
    hint = typing.get_type_hints(cls)[field.name]
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        kinds = [k for k in typing.get_args(hint) if k is not type(None)]
        if len(kinds) != 1:
            raise TypeError(f"{cls.__name__}.{field.name}: a flag takes one type, not {hint}")
        hint = kinds[0]
    return hint


def add_field_flags(cls: type, groups: dict[str, argparse._ArgumentGroup],
                    exclusive: tuple[str, ...] = ()) -> None:
    """A flag for every field of the dataclass `cls`, in field order, into argument groups:
    `groups` maps the field that opens a group to it (the fields after it, up to the next
    group's, join it). The fields in `exclusive` take one mutually exclusive group."""
    group = together = None
    for field in dataclasses.fields(cls):
        if field.name in groups:
            group = groups[field.name]
        if group is None:
            raise TypeError(f"{cls.__name__}.{field.name} comes before every group's first field")
        target = group
        if field.name in exclusive:
            together = together or group.add_mutually_exclusive_group()
            target = together
        kind, flag = value_type(cls, field), flag_of(field)
        if kind is bool:  # --name and --no-name, one of them at most
            pair = target.add_mutually_exclusive_group()
            pair.add_argument(flag, dest=field.name, action="store_true", default=None,
                              help=help_of(field))
            pair.add_argument("--no-" + flag[2:], dest=field.name, action="store_false",
                              help=field.metadata["off"])
            continue
        metavar = field.metadata.get("metavar")
        if metavar is None and "name" in field.metadata and "choices" not in field.metadata:
            metavar = flag[2:].replace("-", "_").upper()  # named by the flag, not the field
        target.add_argument(flag, dest=field.name, type=None if kind is str else kind,
                            choices=field.metadata.get("choices"), metavar=metavar,
                            help=help_of(field))


def given(args: argparse.Namespace, cls: type) -> dict:
    """The fields of `cls` whose flags were given, with their values."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
            if getattr(args, f.name) is not None}


def add_model_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("model (a preset, or the depth dial, plus overrides)")
    g.add_argument("--preset", choices=list(PRESETS), metavar="NAME",
                   help=f"a ladder rung: {', '.join(PRESETS)}. Without it the CPU ladder's rule "
                        "derives everything from --depth (width 16 x depth, heads of 32)")
    init = parser.add_argument_group("initialisation (recipe; defaults are the paper's)")
    add_field_flags(ModelConfig, {"depth": g, "embed_init_std": init})


def config_from_args(args: argparse.Namespace, *, vocab_size: int | None = None,
                     seq_len: int | None = None) -> ModelConfig:
    """The model of the flags; vocab_size and seq_len are defaults that the flags override."""
    settings = {"vocab_size": vocab_size, "seq_len": seq_len, **given(args, ModelConfig)}
    settings["heads"] = settings.pop("n_heads", None)  # the depth dial's name for it
    return build_config(args.preset, **settings)


def add_train_args(parser: argparse.ArgumentParser) -> None:
    from movelab.training.config import HORIZONS, ImageConfig, TrainConfig

    data = parser.add_argument_group("data and horizon")
    data.add_argument("--task", choices=("text", "image"),
                      help="text (default) or image: class-conditional generation of "
                           "Fashion-MNIST codes (sets --corpus fashion-mnist and the vocabulary "
                           "and context of the image tokens: 523 and 49 at the defaults)")
    optimisation = parser.add_argument_group("optimisation")
    add_field_flags(TrainConfig, {"corpus": data, "batch_size": optimisation}, exclusive=HORIZONS)
    add_field_flags(ImageConfig, {"patch": parser.add_argument_group("image task (--task image)")})


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
    from movelab.training.config import (DEFAULT_TOKENS, HORIZONS, IMAGE_CORPUS, ImageConfig,
                                         RunConfig, TrainConfig, is_image_corpus)

    if args.from_record is not None:
        flags = [flag_of(f) for cls in (ModelConfig, TrainConfig, ImageConfig)
                 for f in dataclasses.fields(cls) if getattr(args, f.name) is not None]
        flags = [f"--{name}" for name in ("preset", "task") if getattr(args, name) is not None
                 ] + flags
        if flags:
            raise UsageError(f"--from reruns a recorded config as it is; drop {', '.join(flags)}")
        try:
            return RunConfig.from_dict(read_record(args.from_record)["config"])
        except ConfigError as err:
            raise UsageError(f"--from {args.from_record}: {err}") from None
    train, image = given(args, TrainConfig), given(args, ImageConfig)
    if not set(HORIZONS) & set(train):
        train["tokens"] = DEFAULT_TOKENS
    corpus = train.get("corpus", "")
    task = args.task or ("image" if is_image_corpus(corpus) else "text")
    if task == "text":
        if is_image_corpus(corpus):
            raise UsageError(f"--corpus {corpus} is image data; use --task image")
        # image settings on a text corpus: RunConfig names them
        return RunConfig(config_from_args(args), TrainConfig(**train),
                         ImageConfig(**image) if image else None)
    train.setdefault("corpus", IMAGE_CORPUS)
    image = ImageConfig(**image)
    model = config_from_args(args, vocab_size=image.layout.vocab_size,
                             seq_len=image.layout.seq_len)
    return RunConfig(model, TrainConfig(**train), image)
