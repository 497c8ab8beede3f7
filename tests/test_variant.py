"""One variant type for every spelling: what a sweep or the CLI writes parses into the model
fields it means, every name reads back (runs.csv's `variant`, a figure's label), and the
display name, reading order and colour key follow from the one object."""

import pytest

from movelab.config import ConfigError, build_config
from movelab.variant import Variant, display_name, variant_order


@pytest.mark.parametrize("text, args", [
    ("standard", {"value_path": "standard"}),
    ("move x4", {"value_path": "move", "density": 4}),
    ("move x1.5", {"value_path": "move", "density": 1.5}),
    ("move M=3 g0=1", {"value_path": "move", "slots": 3, "gate_standard": False}),
    ("lave x1 +g0", {"value_path": "lave", "density": 1, "gate_standard": True}),
    ("standard +g0", {"value_path": "standard", "gate_standard": True}),
])
def test_written_variants_parse_into_their_model_fields_and_back(text, args):
    variant = Variant.parse(f"  {text} ")
    assert variant.model_args == args
    assert variant.text == text and Variant.parse(variant.text) == variant
    assert Variant.from_text(variant.display) == variant  # the display spelling reads back


@pytest.mark.parametrize("bad", ["move times four", "MoVE x4", "move x4 +g0 g0=1", "moves",
                                 "move x1.2.3", 4, None])
def test_what_is_not_a_variant_is_refused_with_examples(bad):
    with pytest.raises(ConfigError, match="cannot read variant|a variant is a string"):
        Variant.parse(bad)


def test_a_table_variant_keeps_its_name_and_its_fields():
    variant = Variant.parse({"label": "dense, width 64", "value_path": "standard", "width": 64,
                             "n_heads": 2})
    assert variant.text == variant.display == "dense, width 64"
    assert variant.model_args == {"value_path": "standard", "width": 64, "heads": 2}
    unnamed = Variant.parse({"value_path": "move", "slots": 6})
    assert unnamed.text == '{"slots": 6, "value_path": "move"}'
    assert unnamed.model_args == {"value_path": "move", "slots": 6}
    with pytest.raises(ConfigError, match="'widht' \\(did you mean 'width'\\?\\)"):
        Variant.parse({"widht": 64})


@pytest.mark.parametrize("text, display", [
    ("standard", "standard"), ("lave x2", "LaVE x2"), ("lave x1 +g0", "LaVE x1 +g0"),
    ("move x4 g0=1", "MoVE x4 g0=1"), ("move M=3", "MoVE M=3"),
    ("standard w256 (params of move x4)", "standard w256 (params of move x4)"),
    ("move M=16 symbreak", "MoVE M=16 symbreak"), ("dense, width 64", "dense, width 64")])
def test_display_names_spell_the_value_path_as_the_paper(text, display):
    assert display_name(text) == display
    assert display_name(display) == display  # displaying twice changes nothing


def test_reading_order_is_standard_lave_move_by_density_then_the_rest():
    names = ["MoVE x16", "LaVE x1 +g0", "MoVE x2", "dense", "MoVE x4 all", "LaVE x2", "standard",
             "MoVE x4 g0=1", "LaVE x1", "MoVE x2", "standard w256", "MoVE M=8"]
    assert variant_order(names) == ["standard", "LaVE x1", "LaVE x2", "MoVE x2", "MoVE x16",
                                    "standard w256", "LaVE x1 +g0", "MoVE M=8", "MoVE x4 all",
                                    "MoVE x4 g0=1", "dense"]
    assert variant_order(["move x4", "standard"]) == ["standard", "move x4"]  # either spelling


def test_only_plain_whole_densities_share_a_colour_scale():
    keys = {name: Variant.from_text(name).color_key for name in
            ("standard", "LaVE x2", "MoVE x16", "MoVE x1.5", "MoVE x4 g0=1", "standard +g0",
             "MoVE M=8", "dense")}
    assert keys == {"standard": ("standard",), "LaVE x2": ("lave", 2), "MoVE x16": ("move", 16),
                    "MoVE x1.5": None, "MoVE x4 g0=1": None, "standard +g0": None,
                    "MoVE M=8": None, "dense": None}


@pytest.mark.parametrize("text, label", [
    ("standard", "d4 standard"), ("standard +g0", "d4 standard +g0"),
    ("lave x2", "d4 lave x2"), ("lave x1 +g0", "d4 lave x1 +g0"),
    ("move x2", "d4 move x2 (M=4)"), ("move M=2", "d4 move x1 (M=2)"),
    ("move x4 g0=1", "d4 move x4 (M=8) g0=1")])
def test_a_models_label_is_its_depth_and_variant_with_the_slots(text, label):
    cfg = build_config(depth=4, **Variant.parse(text).model_args)
    assert cfg.label == label
    assert Variant.of_model(cfg) == Variant.of_model(cfg.to_dict())
