"""The flags of `movelab train` / `plan` / `flops` come from the config dataclasses' fields: a
field declared with `setting` or `recipe_field` is a flag with its help, and the flag sets it."""

import argparse
import dataclasses
import json
from pathlib import Path

import pytest

from movelab.cli import build_parser, main
from movelab.config import ConfigError, ModelConfig, build_config, recipe_field, setting
from movelab.flags import (UsageError, add_field_flags, flag_of, run_config_from_args,
                           value_type)
from movelab.training.config import DEFAULT_TOKENS, ImageConfig, RunConfig, TrainConfig

CONFIGS = (ModelConfig, TrainConfig, ImageConfig)
FIELDS = [(cls, f) for cls in CONFIGS for f in dataclasses.fields(cls)]
FIELD_IDS = [f"{cls.__name__}.{f.name}" for cls, f in FIELDS]


def subparser(name: str) -> argparse.ArgumentParser:
    return build_parser()._subparsers._group_actions[0].choices[name]


def actions(name: str) -> dict[str, argparse.Action]:
    return {option: a for a in subparser(name)._actions for option in a.option_strings}


@pytest.mark.parametrize("command", ["train", "plan", "flops"])
def test_every_config_field_is_a_flag_with_the_help_of_its_declaration(command):
    found = actions(command)
    for cls, field in FIELDS:
        if command == "flops" and cls is not ModelConfig:
            continue
        action = found.get(flag_of(field))
        assert action is not None, f"{cls.__name__}.{field.name} has no flag on {command}"
        assert action.dest == field.name and action.default is None  # not given: the default
        written = field.metadata["help"]
        assert action.help == written.replace("{default}", f"{field.default:g}" if isinstance(
            field.default, float) else str(field.default))
        if "{default}" in written:
            assert str(field.default) in action.help or f"{field.default:g}" in action.help
        assert action.choices == field.metadata.get("choices")
        if value_type(cls, field) is bool:
            assert found["--no-" + flag_of(field)[2:]].dest == field.name


def test_no_flag_given_leaves_every_field_at_its_default():
    run = run_config_from_args(build_parser().parse_args(["train"]))
    assert run == RunConfig(build_config(), TrainConfig(tokens=DEFAULT_TOKENS))
    image = run_config_from_args(build_parser().parse_args(["train", "--task", "image"]))
    assert image.image == ImageConfig()
    assert dataclasses.replace(image.train, corpus="wiki") == run.train


# the flags each config's fields are tried under: MoVE has every model field, image the image's
CONTEXT = {ModelConfig: ["--value-path", "move"], TrainConfig: [], ImageConfig: ["--task", "image"]}


def candidates(kind, default):
    """Values unlike the default to try, the first that the config accepts is used."""
    if kind is bool:
        return [True, False]
    if kind is str:
        return [f"{default}-other"]
    base = [default * 2, default / 2] if isinstance(default, (int, float)) and default else []
    values = [*base, 0.5, 2, 1, 3, 0.25, 8]
    return [kind(v) for v in values if kind is float or float(v).is_integer()]


@pytest.mark.parametrize("cls,field", FIELDS, ids=FIELD_IDS)
def test_each_flag_sets_its_field(cls, field):
    part = {ModelConfig: "model", TrainConfig: "train", ImageConfig: "image"}[cls]
    context = ["train", *CONTEXT[cls]]
    baseline = getattr(getattr(run_config_from_args(build_parser().parse_args(context)), part),
                       field.name)
    kind = value_type(cls, field)
    values = list(field.metadata.get("choices", ())) or candidates(kind, field.default)
    tried = []
    for value in values:
        if value == baseline:
            continue
        flags = ([flag_of(field)] if value is True else ["--no-" + flag_of(field)[2:]]
                 if value is False else [flag_of(field), str(value)])
        try:
            run = run_config_from_args(build_parser().parse_args([*context, *flags]))
        except (UsageError, ValueError) as err:  # ConfigError is a ValueError
            tried.append(f"{value!r}: {err}")
            continue
        assert getattr(getattr(run, part), field.name) == value, flags
        return
    pytest.fail(f"no value for {flag_of(field)} that the config accepts: {tried}")


def test_a_new_field_needs_only_its_declaration():
    @dataclasses.dataclass(frozen=True)
    class Knobs:
        rate: float = setting(0.5, "a rate (default {default})")
        steps: int | None = recipe_field(None, "steps (default: all)", metavar="N")
        mode: str = recipe_field("a", "a or b", choices=("a", "b"))
        flip: bool | None = setting(None, "flip it", off="do not flip it")
        count: int = setting(3, "how many (default {default})", name="n")

    parser = argparse.ArgumentParser()
    first, second = parser.add_argument_group("one"), parser.add_argument_group("two")
    add_field_flags(Knobs, {"rate": first, "mode": second}, exclusive=("rate", "steps"))
    text = parser.format_help()
    assert "--rate RATE" in text and "a rate (default 0.5)" in text and "--steps N" in text
    assert "--n N" in text and "how many (default 3)" in text and "--no-flip" in text
    assert [a.dest for a in first._group_actions] == ["rate", "steps"]
    assert {a.dest for a in second._group_actions} == {"mode", "flip", "count"}
    given = parser.parse_args(["--rate", "2", "--mode", "b", "--no-flip", "--n", "4"])
    assert Knobs(**{k: v for k, v in vars(given).items() if v is not None}) == \
        Knobs(rate=2.0, mode="b", flip=False, count=4)
    with pytest.raises(SystemExit):  # rate and steps exclude each other
        parser.parse_args(["--rate", "2", "--steps", "5"])


def test_from_names_every_config_flag_given_beside_it(tmp_path, capsys):
    record = tmp_path / "result.json"
    record.write_text('{"config": {}}')
    assert main(["train", "--from", str(record), "--heads", "2", "--cfg-scale", "2",
                 "--no-gate-standard", "--preset", "cpu-d2"]) == 2
    err = capsys.readouterr().err
    assert "drop --preset, --heads, --gate-standard, --cfg-scale" in err and err.count("\n") == 1


def as_flags(config: dict) -> list[str]:
    """The flags that give a recorded run config, field by field."""
    fields = {f.name: f for cls in CONFIGS for f in dataclasses.fields(cls)}
    flags = []
    for part in config.values():
        for name, value in part.items():
            flag = flag_of(fields[name])
            if isinstance(value, bool):
                flags.append(flag if value else "--no-" + flag[2:])
            elif value is not None:
                flags += [flag, str(value)]
    return flags


def test_the_flags_of_committed_runs_give_their_run_ids():
    records = sorted(Path(__file__).resolve().parents[1].glob("results/*/runs/*/result.json"))
    assert records, "no committed runs found"
    parser = build_parser()
    for path in records:
        config = json.loads(path.read_text())["config"]
        run = run_config_from_args(parser.parse_args(["train", *as_flags(config)]))
        assert run.hash() == path.parent.name, path


CHOICE_FIELDS = [(cls, f) for cls, f in FIELDS if "choices" in f.metadata]


@pytest.mark.parametrize("cls, field", CHOICE_FIELDS,
                         ids=[f"{cls.__name__}.{f.name}" for cls, f in CHOICE_FIELDS])
def test_a_field_with_choices_rejects_another_value_naming_its_flag(cls, field):
    """Declared choices are the check (DictConfig.check_choices), on the command line too."""
    choices = ", ".join(field.metadata["choices"])
    with pytest.raises(ConfigError, match=f"^unknown {flag_of(field)} 'nope'; choose one of "
                                          f"{choices}$"):
        if cls is ModelConfig:
            build_config(depth=2, **{field.name: "nope"})
        else:
            cls(**({"tokens": 1} if cls is TrainConfig else {}), **{field.name: "nope"})
    assert len(CHOICE_FIELDS) >= 7  # value_path, bank_init, optimizer, eval_split, ...
