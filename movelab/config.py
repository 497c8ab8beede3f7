"""Model configuration: one dataclass, the depth dial and the named presets of both ladders.

A config is validated and *resolved* when it is built: LaVE and MoVE densities get their
defaults, MoVE's slot count M is derived from the density (M = k * L / 2, docs/design.md) or the density
from an explicit M, so two configs that describe the same model compare (and hash) equal.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
from dataclasses import dataclass, field

from movelab.hashing import content_hash

VALUE_PATHS = ("standard", "lave", "move")
# MoVE bank init: uniform with std 1/sqrt(d) ("width", the paper's), or that divided by sqrt(M)
# ("width_slots"), so the M summed slots add noise of std 1/sqrt(d) whatever M
BANK_INITS = ("width", "width_slots")


class ConfigError(ValueError):
    """A configuration that cannot work. The message names the problem and the fix."""


def unknown_keys(where: str, unknown, allowed) -> ConfigError:
    """The error for keys that `where` does not have: names each, the closest allowed key, and
    every allowed one (misspellings such as `seed` for `seeds` must not pass silently)."""
    allowed = sorted(allowed)
    hints = []
    for key in sorted(map(str, unknown)):
        close = difflib.get_close_matches(key, allowed, n=1) or [
            a for a in allowed if a.startswith(key) or key.startswith(a)][:1]
        hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return ConfigError(f"{where}: unknown key{'s' if len(hints) > 1 else ''} {', '.join(hints)}; "
                       f"allowed: {', '.join(allowed)}")


def check_number(value, what: str, *, whole: bool = False, minimum: float | None = None,
                 above: float | None = None, below: float | None = None,
                 maximum: float | None = None) -> None:
    """ConfigError unless `value` is a finite real number (a whole one if `whole`; booleans and
    strings are not numbers) within the given bounds. Nothing is converted, so checked configs
    hash as they did before the check existed."""
    kinds = (int,) if whole else (int, float)
    bounds = [f"at least {minimum:g}" if minimum is not None else None,
              f"above {above:g}" if above is not None else None,
              f"below {below:g}" if below is not None else None,
              f"at most {maximum:g}" if maximum is not None else None]
    wanted = ("a whole number" if whole else "a finite number") + "".join(
        f" {b}" if i == 0 else f" and {b}" for i, b in enumerate(b for b in bounds if b))
    if (isinstance(value, bool) or not isinstance(value, kinds) or not math.isfinite(value)
            or (minimum is not None and value < minimum) or (above is not None and value <= above)
            or (below is not None and value >= below)
            or (maximum is not None and value > maximum)):
        raise ConfigError(f"{what} must be {wanted}, got {value!r}")


@dataclass(frozen=True)
class Ladder:
    """A family of models indexed by depth: width = aspect * depth, heads of a fixed size."""

    name: str
    head_dim: int
    aspect: int
    depths: tuple[int, ...]
    vocab_size: int
    seq_len: int

    def preset_name(self, depth: int) -> str:
        return f"{self.name}-d{depth}"


# CPU ladder: head size 32 and width 16 * depth, so depth is the one dial (heads = depth / 2).
# Depths are even so that MoVE x1 (M = L / 2) is a whole number of slots at every rung. Sized
# so a whole sweep fits in a few sessions of 2 cores (docs/research-log.md, 2026-11-25): d2
# trains at tens of thousands of tokens/s, d12 at about two thousand.
CPU_LADDER = Ladder("cpu", head_dim=32, aspect=16, depths=(2, 4, 6, 8, 10, 12),
                    vocab_size=4096, seq_len=256)
# GPU ladder mirroring the paper (nanochat): width 64 * depth, head size 128.
GPU_LADDER = Ladder("gpu", head_dim=128, aspect=64, depths=(12, 20, 32),
                    vocab_size=65536, seq_len=2048)
LADDERS = {ladder.name: ladder for ladder in (CPU_LADDER, GPU_LADDER)}
PRESETS = {ladder.preset_name(d): (ladder, d) for ladder in LADDERS.values() for d in ladder.depths}


def setting(default, help: str, **flag):
    """A config field and its command-line flag (movelab.flags derives the flag from it): `help`
    is the flag's help, with {default} standing for the field's default; `flag` may give
    `name` (the flag's, when not the field's), `metavar`, `choices`, and for a true/false field
    `off`, the help of its --no- flag."""
    return field(default=default, metadata={"help": help, **flag})


def recipe_field(default, help: str, **flag):
    """A recipe setting added after runs were committed (a `setting` otherwise): it is left out
    of `to_dict` (so of the config hash and result.json) while it has its default value, so
    every committed run keeps its id, and a run that changes it gets a new one."""
    return field(default=default, metadata={"help": help, **flag, "omit_default": True})


class DictConfig:
    """to_dict / from_dict for the config dataclasses (what result.json records)."""

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if not (f.metadata.get("omit_default") and getattr(self, f.name) == f.default)}

    @classmethod
    def from_dict(cls, d: dict, where: str | None = None):
        where = where or f"a {cls.__name__}"
        if not isinstance(d, dict):
            raise ConfigError(f"{where} must be a table of settings, got {d!r}")
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise unknown_keys(where, unknown, (f.name for f in dataclasses.fields(cls)))
        return cls(**d)

    def check_choices(self) -> None:
        """Every field declared with `choices` holds one of them (else a one-line ConfigError
        naming its flag)."""
        for f in dataclasses.fields(self):
            choices = f.metadata.get("choices")
            if choices is not None and getattr(self, f.name) not in choices:
                flag = "--" + f.metadata.get("name", f.name).replace("_", "-")
                raise ConfigError(f"unknown {flag} {getattr(self, f.name)!r}; choose one of "
                                  f"{', '.join(choices)}")


@dataclass(frozen=True)
class ModelConfig(DictConfig):
    # the shape: build_config's depth dial derives width and heads from the depth
    depth: int = setting(4, "layers L (default: the preset's, or 4)")
    width: int = setting(128, "model width d (default: the ladder's aspect x depth)")
    n_heads: int = setting(4, "attention heads H (default: width / ladder head size)",
                           name="heads")
    vocab_size: int = setting(4096, "vocabulary size V (default: the ladder's)")
    seq_len: int = setting(256, "context length T (default: the ladder's)")
    value_path: str = setting("standard", "standard, lave (layer-wise value embeddings) or move "
                              "(mixture of value embeddings); default standard",
                              choices=VALUE_PATHS)
    # LaVE: 1 (every other layer, always the last) or 2 (every layer).
    # MoVE: k in "MoVE xk", M = k * L / 2. Ignored by neither: it must be unset for `standard`.
    density: float | None = setting(None, "lave: 1 (every other layer) or 2 (every layer); "
                                    "move: xK, M = K*L/2 slots", metavar="K")
    # MoVE only: the number of slots M; given explicitly it overrides the density.
    slots: int | None = setting(None, "move: number of slots (overrides --density)", metavar="M")
    # Gate on the standard value path: off by default for LaVE (an ablation turns it on),
    # on by default for MoVE (the ablation fixes g0 = 1).
    gate_standard: bool | None = setting(None, "lave ablation: also gate the standard value path",
                                         off="move ablation: fix the standard path's gate g0 at 1")
    # initialisation (recipe fields; research log 2026-12-01): std of the token embedding and of
    # the output head, std of the MoVE routers (0: zero, every gate exactly 1, the paper's), and
    # the MoVE bank's scale (BANK_INITS)
    embed_init_std: float = recipe_field(1.0, "token embedding std (default {default})")
    head_init_std: float = recipe_field(0.001, "output head std (default {default})")
    router_init_std: float = recipe_field(0.0, "move: std of the routers' normal init; 0 = zero, "
                                               "every gate 1 (default {default})")
    bank_init: str = recipe_field("width", "move: bank std 1/sqrt(d) (width, default) or "
                                           "1/sqrt(d M) (width_slots)", choices=BANK_INITS)

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen dataclass)
        for name in ("depth", "width", "n_heads", "vocab_size", "seq_len"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.density is not None:
            check_number(self.density, "--density", above=0)
        if self.gate_standard is not None and not isinstance(self.gate_standard, bool):
            raise ConfigError(f"gate_standard must be true, false or unset, got "
                              f"{self.gate_standard!r}")
        if self.width % self.n_heads:
            options = [h for h in range(1, self.width + 1) if self.width % h == 0][:8]
            raise ConfigError(f"heads ({self.n_heads}) must divide width ({self.width}); "
                              f"pick --heads from {options}... or change --width")
        if self.head_dim % 2:
            raise ConfigError(f"head size width/heads = {self.head_dim} must be even for rotary "
                              "embeddings; change --width or --heads")
        self.check_choices()
        for name in ("embed_init_std", "head_init_std", "router_init_std"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be a number >= 0, got {value!r}")
        if self.value_path != "move" and (self.router_init_std or self.bank_init != "width"):
            raise ConfigError("--router-init-std and --bank-init apply to --value-path move")
        if self.value_path == "standard":
            if self.density is not None or self.slots is not None:
                raise ConfigError("--density and --slots apply to --value-path lave or move, "
                                  "not standard; drop them or pick a memory value path")
            # with the gate: g0 = 2 sigmoid(h W_g,l) on every layer's values and no memory, the
            # control that separates MoVE's gating from its memory
            set_("gate_standard", bool(self.gate_standard))
        elif self.value_path == "lave":
            if self.slots is not None:
                raise ConfigError("--slots applies to --value-path move; LaVE takes --density 1 or 2")
            density = 1 if self.density is None else self.density
            if density not in (1, 2):
                raise ConfigError(f"LaVE density must be 1 (every other layer) or 2 (every layer), "
                                  f"got {density:g}")
            set_("density", int(density))
            set_("gate_standard", bool(self.gate_standard))
        else:
            if self.slots is not None:
                if not isinstance(self.slots, int) or isinstance(self.slots, bool) or self.slots < 1:
                    raise ConfigError(f"--slots must be a positive whole number, got {self.slots!r}")
                implied = 2 * self.slots / self.depth
                if self.density is not None and self.density != implied:
                    raise ConfigError(f"--slots {self.slots} means density {implied:g} at depth "
                                      f"{self.depth}, not {self.density:g}; give only one of them")
                set_("density", _tidy(implied))
            else:
                density = 1 if self.density is None else self.density
                if not density > 0:
                    raise ConfigError(f"MoVE density must be positive, got {density}")
                slots = density * self.depth / 2
                if slots != int(slots):
                    raise ConfigError(
                        f"MoVE x{density:g} at depth {self.depth} gives M = {density:g} * "
                        f"{self.depth} / 2 = {slots:g} slots, not a whole number; use an even "
                        f"depth, another density, or --slots M")
                set_("density", _tidy(density))
                set_("slots", int(slots))
            set_("gate_standard", True if self.gate_standard is None else bool(self.gate_standard))

    @property
    def head_dim(self) -> int:
        return self.width // self.n_heads

    @property
    def d_kv(self) -> int:
        return self.n_heads * self.head_dim

    @property
    def lave_layers(self) -> tuple[int, ...]:
        """Layers that carry a LaVE table: x1 every other one ending at the last, x2 all."""
        if self.value_path != "lave":
            return ()
        if self.density == 2:
            return tuple(range(self.depth))
        return tuple(l for l in range(self.depth) if l % 2 == (self.depth - 1) % 2)

    @property
    def label(self) -> str:
        """Short human name, e.g. 'd4 move x2 (M=4)': the depth and the variant, with M."""
        from movelab.variant import Variant  # same layer; variant reads this module's names

        slots = self.slots if self.value_path == "move" else None
        return f"d{self.depth} {Variant.of_model(self).spelled(slots=slots)}"

    def hash(self) -> str:
        return config_hash(self.to_dict())


RECIPE_FIELDS = frozenset(f.name for f in dataclasses.fields(ModelConfig)
                          if f.metadata.get("omit_default"))


def config_hash(d: dict) -> str:
    """Stable 12-hex-digit hash of a JSON-able dict (key order does not matter)."""
    return content_hash([json.dumps(d, sort_keys=True, separators=(",", ":"))])


def _tidy(x: float) -> float | int:
    return int(x) if float(x).is_integer() else float(x)


def build_config(preset: str | None = None, *, ladder: str = "cpu", depth: int | None = None,
                 width: int | None = None, heads: int | None = None,
                 vocab_size: int | None = None, seq_len: int | None = None,
                 value_path: str = "standard", density: float | None = None,
                 slots: int | None = None, gate_standard: bool | None = None,
                 **recipe) -> ModelConfig:
    """The depth dial: a preset (or a ladder and a depth) fixes every shape; explicit
    arguments override single fields. Width and heads follow the ladder's rule from the
    depth unless given; `recipe` holds ModelConfig's initialisation fields."""
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
        rung, preset_depth = PRESETS[preset]
        depth = preset_depth if depth is None else depth
    else:
        if ladder not in LADDERS:
            raise ConfigError(f"unknown ladder {ladder!r}; choose one of {', '.join(LADDERS)}")
        rung = LADDERS[ladder]
        depth = CPU_LADDER.depths[1] if depth is None else depth
    if not isinstance(depth, int) or depth < 1:
        raise ConfigError(f"depth must be a positive integer, got {depth!r}")
    unknown = set(recipe) - RECIPE_FIELDS
    if unknown:
        raise ConfigError(f"unknown model settings {sorted(unknown)}; the recipe fields are "
                          f"{', '.join(sorted(RECIPE_FIELDS))}")
    width = rung.aspect * depth if width is None else width
    if heads is None:
        if width % rung.head_dim:
            raise ConfigError(f"width {width} is not a multiple of the {rung.name} ladder's head "
                              f"size {rung.head_dim}; give --heads explicitly")
        heads = width // rung.head_dim
    return ModelConfig(depth=depth, width=width, n_heads=heads,
                       vocab_size=rung.vocab_size if vocab_size is None else vocab_size,
                       seq_len=rung.seq_len if seq_len is None else seq_len,
                       value_path=value_path, density=density, slots=slots,
                       gate_standard=gate_standard, **recipe)
