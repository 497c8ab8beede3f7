"""A variant: which value path a model takes and how (density, slots, the gate on the standard
path), or a table of model fields with a name of its own. One value object for every spelling:

    written (sweep.toml, --variant)   "standard", "lave x1", "move x4", "move M=8",
                                      "lave x1 +g0", "move x4 g0=1"
    display (tables, figures)         "standard", "LaVE x1", "MoVE x4", "MoVE x4 g0=1"

`Variant.parse` reads what a sweep or the CLI writes, strictly (a string in the grammar above, or
a table of model fields); `Variant.from_text` reads any name back (the `variant` column of
runs.csv, a path label), keeping a name outside the grammar as it is written. `text` is the
canonical written name, `display` the name as the paper spells the value paths, `sort_key` the
reading order (standard, LaVE, MoVE by density, then ablations, then other names) and
`color_key` what a figure colours by.
"""

from __future__ import annotations

import inspect
import json
import re
from dataclasses import dataclass

from movelab.config import RECIPE_FIELDS, VALUE_PATHS, ConfigError, build_config, unknown_keys

PATH_NAMES = {"standard": "standard", "lave": "LaVE", "move": "MoVE"}
# what a table variant (and a sweep group's `model` table) may set: build_config's arguments
MODEL_KEYS = (*(k for k in inspect.signature(build_config).parameters
                if k not in ("depth", "recipe")), *sorted(RECIPE_FIELDS))
_TABLE_KEYS = ("label", "n_heads", *MODEL_KEYS)
_RENAMED = {"n_heads": "heads"}  # runs record n_heads; build_config takes heads
# the grammar, in either spelling of the value path, then whatever a table variant's name adds
_NAME = re.compile(r"(?P<path>standard|lave|move)\b(?: x(?P<density>\d+(?:\.\d+)?))?"
                   r"(?: M=(?P<slots>\d+))?(?P<g0plus> \+g0)?(?P<g0one> g0=1)?(?P<rest>.*)",
                   re.IGNORECASE | re.DOTALL)
_EXAMPLES = "'standard', 'lave x2', 'move x4', 'move M=8', 'lave x1 +g0', 'move x4 g0=1'"


def _number(text: str) -> int | float:
    value = float(text)
    return int(value) if value.is_integer() else value


@dataclass(frozen=True)
class Variant:
    value_path: str | None  # None: a name that names no value path ("dense, width 64")
    density: int | float | None = None  # LaVE density, MoVE xk; None: the path's default
    slots: int | None = None  # MoVE M, when written instead of a density
    gate_standard: bool | None = None  # None: the path's default (LaVE off, MoVE on)
    fields: tuple[tuple[str, object], ...] = ()  # further model fields of a table variant
    name: str | None = None  # a table variant's name, or a name read outside the grammar

    @classmethod
    def parse(cls, spec) -> Variant:
        """A variant as a sweep or the CLI writes it: a string of the grammar, or a table of
        model fields (`label` its name; without one, the table itself as JSON)."""
        if isinstance(spec, dict):
            fields = dict(spec)
            unknown = set(fields) - set(_TABLE_KEYS)
            if unknown:
                raise unknown_keys("a variant table", unknown, _TABLE_KEYS)
            name = fields.pop("label", None) or json.dumps(fields, sort_keys=True)
            own = {k: fields.pop(k) for k in ("density", "slots", "gate_standard")
                   if k in fields}
            return cls(fields.pop("value_path", "standard"), **own,
                       fields=tuple(sorted(fields.items())), name=name)
        if not isinstance(spec, str):
            raise ConfigError(f"a variant is a string such as 'move x4' or a table of model "
                              f"fields, not {spec!r}")
        variant = cls.from_text(spec.strip())
        if variant.name is not None or not spec.strip().startswith(variant.value_path):
            raise ConfigError(f"cannot read variant {spec!r}; write e.g. {_EXAMPLES}")
        return variant

    @classmethod
    def from_text(cls, text: str) -> Variant:
        """Any variant name, written or displayed, read back: the grammar when it is one, else
        the name kept as it is (with the value path and density it starts with, if any)."""
        match = _NAME.fullmatch(text)
        if match is None:
            return cls(None, name=text)
        path = match["path"].lower()
        density = _number(match["density"]) if match["density"] else None
        if match["rest"] or (match["g0plus"] and match["g0one"]) or match["path"] not in (
                path, PATH_NAMES[path]):
            return cls(path, density, name=text)
        gate = bool(match["g0plus"]) if match["g0plus"] or match["g0one"] else None
        return cls(path, density, int(match["slots"]) if match["slots"] else None, gate)

    @classmethod
    def of_model(cls, model) -> Variant:
        """The variant of a (resolved) ModelConfig, or of its dict: value path, density, and
        the gate where it differs from the path's default."""
        get = model.get if isinstance(model, dict) else lambda k: getattr(model, k)
        path, gate = get("value_path"), get("gate_standard")
        default_gate = path == "move"
        return cls(path, get("density"),
                   gate_standard=None if gate is None or bool(gate) == default_gate else bool(gate))

    def spelled(self, slots: int | None = None, path_names: dict | None = None) -> str:
        """The grammar's name; `slots` adds "(M=slots)" after the density (a model's label)."""
        if self.name is not None:
            return self.name
        parts = [(path_names or {}).get(self.value_path, self.value_path)]
        if self.density is not None:
            parts.append(f"x{self.density:g}")
        if self.slots is not None:
            parts.append(f"M={self.slots}")
        if slots is not None:
            parts.append(f"(M={slots})")
        if self.gate_standard is not None:
            parts.append("+g0" if self.gate_standard else "g0=1")
        return " ".join(parts)

    @property
    def text(self) -> str:
        """The canonical written name ('move x4 g0=1'); a table variant's own name."""
        return self.spelled()

    @property
    def display(self) -> str:
        """The name with the value path spelled as in the paper ('MoVE x4 g0=1'); a name that
        starts with a value path gets that spelling, any other is kept."""
        if self.name is None:
            return self.spelled(path_names=PATH_NAMES)
        match = re.match(r"(standard|lave|move)\b", self.name)
        return PATH_NAMES[match[1]] + self.name[match.end():] if match else self.name

    @property
    def plain(self) -> bool:
        """A value path and at most its density: no slots, gate or name of its own."""
        return self.name is None and self.slots is None and self.gate_standard is None

    @property
    def sort_key(self) -> tuple:
        """Reading order: standard, LaVE by density, MoVE by density; then the same for the
        variants with anything more (ablations, controls); then names of no value path."""
        if self.value_path is None:
            return (True, len(VALUE_PATHS), 0.0, self.display)
        return (not self.plain, VALUE_PATHS.index(self.value_path), float(self.density or 0),
                self.display)

    @property
    def color_key(self) -> tuple | None:
        """What a figure colours by: ("standard",), ("lave", k) or ("move", k) for a plain
        variant of whole density k; None for every other (a colour of its own)."""
        if not self.plain or (self.density is not None and not float(self.density).is_integer()):
            return None
        if self.value_path == "standard":
            return ("standard",) if self.density is None else None
        return None if self.density is None else (self.value_path, int(self.density))

    @property
    def model_args(self) -> dict:
        """build_config's arguments for this variant (without depth or the group's fields)."""
        own = {"value_path": self.value_path, "density": self.density, "slots": self.slots,
               "gate_standard": self.gate_standard}
        return {**{k: v for k, v in own.items() if v is not None},
                **{_RENAMED.get(k, k): v for k, v in self.fields}}


def display_name(text: str) -> str:
    """`Variant.from_text(text).display`: 'move x4 g0=1' -> 'MoVE x4 g0=1'."""
    return Variant.from_text(text).display


def variant_order(names) -> list[str]:
    """The distinct names of `names` (written or displayed) in reading order (`sort_key`)."""
    return sorted(set(names), key=lambda name: Variant.from_text(name).sort_key)
