"""Recipe knobs (the slot-axis study's): every setting that changes a run is a config field in its hash, the
fields added later leave the committed runs' ids as they were, and each knob does what it says."""

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from movelab.accounting import analytic_costs
from movelab.config import ConfigError, ModelConfig, build_config
from movelab.model import GPT
from movelab.training.config import RunConfig, TrainConfig
from movelab.training.optim import build_optimizers

RESULTS = Path(__file__).resolve().parents[1] / "results"
# a valid value other than the default for every recipe field (a new field must be added here)
CHANGED = {"router_init_std": 0.1, "bank_init": "width_slots", "embed_init_std": 0.5,
           "head_init_std": 0.01, "memory_lr_scaling": "inv_sqrt", "router_lr": 0.003,
           "adam_beta1": 0.8, "adam_beta2": 0.99, "adam_eps": 1e-8, "lr_reference_width": 128,
           "val_fraction": 0.1, "eval_batch": 8, "eval_split": "test", "memory_update": "lazy",
           "precision": "bf16"}


def recipe_fields(cls):
    return [f for f in dataclasses.fields(cls) if f.metadata.get("omit_default")]


def base_run() -> RunConfig:
    return RunConfig(build_config(depth=2, value_path="move", slots=4), TrainConfig(tokens=1000))


def test_every_recipe_knob_changes_the_config_hash():
    names = [f.name for cls in (ModelConfig, TrainConfig) for f in recipe_fields(cls)]
    assert sorted(names) == sorted(CHANGED)
    base = base_run()
    hashes = {base.hash()}
    for name, value in CHANGED.items():
        part = "model" if name in {f.name for f in recipe_fields(ModelConfig)} else "train"
        changed = dataclasses.replace(base, **{part: dataclasses.replace(getattr(base, part),
                                                                         **{name: value})})
        assert changed.to_dict()[part][name] == value
        assert RunConfig.from_dict(changed.to_dict()) == changed  # the record reruns it
        hashes.add(changed.hash())
    assert len(hashes) == len(CHANGED) + 1


def test_defaults_are_left_out_of_the_record():
    d = base_run().to_dict()
    assert not set(CHANGED) & (set(d["model"]) | set(d["train"]))


def test_the_standard_gate_control_is_its_own_run():
    plain, gated = build_config(depth=2), build_config(depth=2, gate_standard=True)
    assert plain.hash() != gated.hash() and gated.label == "d2 standard +g0"
    model = GPT(gated)
    assert model.costs() == analytic_costs(gated)
    assert model.costs().params["gates_routers"] == 2 * gated.width * gated.n_heads
    assert model.costs().params["move_bank"] == model.costs().params["lave_tables"] == 0


@pytest.mark.parametrize("path", sorted(RESULTS.glob("*/runs/*/result.json")),
                         ids=lambda p: f"{p.parts[-4]}/{p.parts[-2]}")
def test_committed_runs_keep_their_ids(path):
    record = json.loads(path.read_text())
    run = RunConfig.from_dict(record["config"])
    assert run.to_dict() == record["config"]
    assert run.hash() == record["run_id"] == path.parent.name


def test_router_init_std_breaks_the_gates_symmetry():
    torch.manual_seed(0)
    paper = GPT(build_config(depth=2, value_path="move", slots=4))
    assert all((b.attn.value_mix.router.weight == 0).all() for b in paper.blocks)
    torch.manual_seed(0)
    broken = GPT(build_config(depth=2, value_path="move", slots=4, router_init_std=0.1))
    weights = torch.cat([b.attn.value_mix.router.weight.flatten() for b in broken.blocks])
    assert weights.std().item() == pytest.approx(0.1, rel=0.05)
    # nothing else changed: the bank is the same draw
    assert torch.equal(paper.bank.weight, broken.bank.weight)


def test_bank_init_width_slots_divides_the_std_by_sqrt_m():
    stds = {}
    for init in ("width", "width_slots"):
        torch.manual_seed(0)
        stds[init] = GPT(build_config(depth=2, value_path="move", slots=16,
                                      bank_init=init)).bank.weight.std().item()
    assert stds["width"] == pytest.approx(1 / 32 ** 0.5, rel=0.02)
    assert stds["width_slots"] == pytest.approx(stds["width"] / 4, rel=0.02)


def test_init_stds_of_embedding_and_head():
    model = GPT(build_config(depth=2, embed_init_std=0.25, head_init_std=0.02))
    assert model.embed.weight.std().item() == pytest.approx(0.25, rel=0.05)
    assert model.head.weight.std().item() == pytest.approx(0.02, rel=0.05)


@pytest.mark.parametrize("scaling, factor", [("constant", 1.0), ("inv_sqrt", 0.25), ("inv", 1 / 16)])
def test_memory_lr_scaling_with_m(scaling, factor):
    model = GPT(build_config(depth=2, value_path="move", slots=16))
    cfg = TrainConfig(tokens=1, memory_lr=0.02, memory_lr_scaling=scaling)
    (adamw,) = build_optimizers(model, cfg)
    bank_group = next(g for g in adamw.param_groups if any(p is model.bank.weight for p in g["params"]))
    assert bank_group["lr"] == pytest.approx(0.02 * factor)


def test_router_lr_betas_eps_and_reference_width_reach_the_optimizer():
    model = GPT(build_config(depth=2, value_path="move", slots=2))  # width 32
    (adamw,) = build_optimizers(model, TrainConfig(tokens=1, lr=0.01, router_lr=0.003,
                                                   adam_beta1=0.8, adam_beta2=0.9, adam_eps=1e-6,
                                                   lr_reference_width=128))
    routers = [b.attn.value_mix.router.weight for b in model.blocks]
    group = next(g for g in adamw.param_groups if any(p is routers[0] for p in g["params"]))
    assert group["lr"] == 0.003 and len(group["params"]) == 2
    matrices = next(g for g in adamw.param_groups if g["weight_decay"] > 0)
    assert matrices["lr"] == pytest.approx(0.01 * 128 / 32)
    assert adamw.defaults["betas"] == (0.8, 0.9) and adamw.defaults["eps"] == 1e-6
    # without router_lr the routers stay in the gates-and-norms group (old checkpoints resume)
    (plain,) = build_optimizers(model, TrainConfig(tokens=1))
    assert len(plain.param_groups) == len(adamw.param_groups) - 1


@pytest.mark.parametrize("fields", [{"router_init_std": -1.0}, {"bank_init": "zero"},
                                    {"value_path": "lave", "router_init_std": 0.1}])
def test_bad_model_knobs_are_config_errors(fields):
    with pytest.raises(ConfigError):
        build_config(depth=2, **{"value_path": "move", **fields})


@pytest.mark.parametrize("fields", [{"memory_lr_scaling": "sqrt"}, {"router_lr": 0.0},
                                    {"adam_beta2": 1.0}, {"val_fraction": 0.0}, {"eval_batch": 0}])
def test_bad_train_knobs_are_config_errors(fields):
    with pytest.raises(ConfigError):
        TrainConfig(tokens=1, **fields)


def test_a_sweep_group_sets_train_recipe_fields_and_runs_csv_names_them(tmp_path):
    from movelab.sweep import csv_row, load_sweep

    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "sweep.toml").write_text(
        '[train]\ncorpus = "recall:K=4"\nbatch_size = 4\n[budget]\ntokens = 4096\n'
        '[[group]]\nname = "paper"\ndepths = [2]\nvariants = ["move M=4"]\n'
        '[[group]]\nname = "lr"\ndepths = [2]\ntrain = {memory_lr_scaling = "inv"}\n'
        'variants = ["move M=4", {label = "sb", value_path = "move", slots = 4, '
        'router_init_std = 0.1}]\n')
    sweep = load_sweep("s", tmp_path)
    runs = {(p.groups[0], p.variant): p for p in sweep.runs}
    assert runs[("paper", "move M=4")].run.train.memory_lr_scaling == "constant"
    assert runs[("lr", "move M=4")].run.train.memory_lr_scaling == "inv"
    assert runs[("lr", "sb")].run.model.router_init_std == 0.1
    assert len({p.run_id for p in sweep.runs}) == 3
    planned = runs[("lr", "sb")]
    result = {"config": planned.run.to_dict(), "params": dict.fromkeys(
        ("lave_tables", "move_bank", "token_embedding", "output_head", "transformer_matrices",
         "gates_routers", "norms_scalars"), 0), "tokens_seen": 0,
        "flops_per_token_train_matmul": 0, "data": {"corpus": "c", "content_hash": "h"},
        "diagnostics": {"slot_effective_count": 1.5, "gates": [], "val_bpb_by_frequency": []}}
    row = csv_row(result, planned)
    assert row["recipe"] == "router_init_std=0.1;memory_lr_scaling=inv"
    assert row["slot_effective_count"] == 1.5
