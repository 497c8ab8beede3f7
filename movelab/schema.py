"""The results schema: every column of results/<sweep>/runs.csv and of a run's curve.csv, with
its type and meaning, in one table. The sweep writes runs.csv in this order
(`movelab.sweep.consolidate`), `movelab.scaling.load` reads each column as its type, and
results/README.md's column table is `markdown_table()` (tests/test_schema.py holds them equal:
after changing a row here, `python -m movelab.schema` prints the table to paste there).

Types: text (read as text even when it looks like a number: a hash of digits), int, float
(empty cells read as NaN: a column that only some runs have), bool (True/False), time (UTC).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from movelab.accounting import PARAM_GROUPS

TYPES = ("text", "int", "float", "bool", "time")


@dataclass(frozen=True)
class Row:
    """One row of the table: columns that share a meaning, with a type each (one for all, or
    one per column), and how the table names them (`title`; by default each in backticks)."""

    names: tuple[str, ...]
    types: str | tuple[str, ...]
    meaning: str
    title: str | None = None

    def __post_init__(self):
        types = (self.types,) * len(self.names) if isinstance(self.types, str) else self.types
        if len(types) != len(self.names) or set(types) - set(TYPES):
            raise ValueError(f"{self.names}: one type of {TYPES} per column, got {self.types}")
        object.__setattr__(self, "types", tuple(types))

    def markdown(self) -> str:
        title = f"`{self.title}`" if self.title else ", ".join(f"`{n}`" for n in self.names)
        kinds = ", ".join(dict.fromkeys(self.types))
        return f"| {title} | {kinds} | {self.meaning} |"


RUNS_TABLE = (
    Row(("run_id",), "text",
        "config hash of the run (model + training config + seed)"),
    Row(("task",), "text",
        "`text` or `image`"),
    Row(("groups",), "text",
        "the sweep groups that list this run, `;`-separated (e.g. `grid;seeds`)"),
    Row(("role",), "text",
        "what the analysis uses the run for: `main` (the main grid, one seed per cell, what the"
        " laws are fitted to), `seed` (a main cell repeated at another seed), `control` "
        "(controls and ablations, used only where named) or `other`; the `role` of the run's "
        "sweep groups (by default from the group's name: `grid`, `seeds`, `controls`), the "
        "first of main, seed, control for a run in several. Rows written before the column get "
        "it from `groups` the same way when read"),
    Row(("variant",), "text",
        "the variant as sweep.toml writes it, in its canonical spelling (`standard`, `lave x1`,"
        " `move x4`, `move M=8`, `move x4 g0=1`, ...; `movelab.variant`), or the `label` of a "
        "variant written as a table"),
    Row(("label",), "text",
        "the model's own short name, e.g. `d6 move x4 (M=12)`"),
    Row(("value_path",), "text",
        "`standard`, `lave` or `move`"),
    Row(("depth", "width", "n_heads", "vocab_size", "seq_len"), "int",
        "model shape (L, d, H, V, T)"),
    Row(("slots",), "int",
        "MoVE slots M (0 for other paths)"),
    Row(("density",), "float",
        "LaVE density (1, 2) or MoVE xk (M = k L / 2); empty for standard"),
    Row(("gate_standard",), "bool",
        "whether the standard value path is gated (LaVE ablation on, MoVE default on)"),
    Row(("seed",), "int",
        "init and batch-order seed"),
    Row(("params_total",), "int",
        "every parameter"),
    Row(("params_active",), "int",
        "matmul parameters: transformer matrices + gates/routers + output head"),
    Row(tuple(f"params_{g}" for g in PARAM_GROUPS), "int",
        "`token_embedding`, `output_head`, `transformer_matrices`, `gates_routers`, "
        "`lave_tables`, `move_bank`, `norms_scalars`; they sum to `params_total`",
        title="params_<group>"),
    Row(("params_memory",), "int",
        "`params_lave_tables + params_move_bank` (lookups, zero FLOPs)"),
    Row(("flops_per_token_train",), "int",
        "the project's convention (docs/design.md): 6 x active + 12 L d_kv T"),
    Row(("flops_per_token_forward",), "int",
        "a third of the above"),
    Row(("flops_per_token_train_matmul",), "int",
        "6 x active only (Kaplan's 6N)"),
    Row(("flops_per_token_train_attention",), "int",
        "12 L d_kv T only"),
    Row(("flops_per_token_value_mix_forward",), "int",
        "MoVE's slot contraction, 2 M d_kv per layer, forward; in neither convention above"),
    Row(("bytes_gathered_per_token",), "int",
        "value-embedding bytes read per token at fp32 (M d_kv once for MoVE; d_kv per LaVE "
        "layer)"),
    Row(("tokens_seen",), "int",
        "training tokens (steps x batch x T)"),
    Row(("train_flops",), "int",
        "`tokens_seen x flops_per_token_train`"),
    Row(("train_flops_matmul",), "int",
        "`tokens_seen x flops_per_token_train_matmul`"),
    Row(("epochs",), "float",
        "`tokens_seen` / training-split tokens (images: 60k training images x 49 inputs)"),
    Row(("steps",), "int",
        "optimizer steps"),
    Row(("val_bpb",), "float",
        "final validation bits per byte: nats over the fixed validation windows / (ln 2 x UTF-8"
        " bytes of the targets), document separators excluded; **empty for image runs** (an "
        "image token decodes to no bytes; their metric is `bits_per_token`)"),
    Row(("val_bpb_best",), "float",
        "best validation BPB over the run's evaluations; empty for image runs"),
    Row(("val_loss",), "float",
        "final validation nats per token (all targets)"),
    Row(("train_loss",), "float",
        "mean training loss since the previous evaluation"),
    Row(("wall_seconds", "tokens_per_second"), "float",
        "training wall clock (evaluations included) and throughput"),
    Row(("threads",), "int",
        "torch CPU threads of the run"),
    Row(("device", "precision"), "text",
        "where it trained (`cpu`, `cuda`) and in what arithmetic (`fp32`, or `bf16` autocast: "
        "by default fp32 on the CPU and bf16 on CUDA; the config's train.precision asks for one"
        "). The same config trained on a GPU lands within seed noise of its CPU"
        " row, not on it (research log 2026-11-26, session 3): compare rows of one device"),
    Row(("git_commit", "git_dirty", "torch_version"), ("text", "bool", "text"),
        "the code and environment the run started under"),
    Row(("corpus", "corpus_hash"), "text",
        "corpus name and content hash of its cleaned text (images: `fashion-mnist[:PATH]` and "
        "the hash of the four arrays)"),
    Row(("started_at", "ended_at"), "time",
        "UTC timestamps (for image runs, `ended_at` is after sampling and FID)"),
    Row(("slot_effective_count",), "float",
        "LaVE and MoVE text runs (since 2026-12-01; empty otherwise): participation ratio of "
        "each token's slot updates (bank minus its initial value), mean over the 256 most "
        "frequent ids: 1 = slots in lockstep, M = independent (`movelab.diagnostics`; full "
        "diagnostics in result.json, `movelab inspect RUN_DIR`)"),
    Row(("g0_mean", "gate_std_across_slots", "gate_std_across_tokens"), "float",
        "the same runs: mean of the standard path's gate, and the memory gates' std across "
        "slots and across tokens, each averaged over layers, on 64 validation windows"),
    Row(("recipe",), "text",
        "recipe fields the run sets away from their defaults "
        "(`router_init_std=0.1;memory_lr_scaling=inv_sqrt`, ...); empty for the default recipe"),
    Row(("bits_per_token",), "float",
        "image runs: bits per image token on the 10k test images, each conditional on its true "
        "class: mean nats over the 49 code targets / ln 2 (vocabulary 523, a uniform guess is "
        "log2 512 = 9 bits); empty for text"),
    Row(("fid",), "float",
        "image runs: FID of `fid_samples` class-conditional samples (classes in turn) against "
        "the 10k test images, in the penultimate-layer features (128) of a CNN classifier "
        "trained on Fashion-MNIST (91.3% test accuracy; not Inception FID, so not comparable "
        "with published numbers). The tokenizer's floor (test reconstructions vs test) is 24.2 "
        "and is in each result.json as `fid_tokenizer_floor`; empty for text"),
    Row(("class_accuracy",), "float",
        "image runs: that classifier's accuracy on the samples against the class each was asked"
        " for (on the test set's tokenizer reconstructions: 0.877); empty for text"),
    Row(("fid_samples", "cfg_scale"), "float",
        "image runs: how many samples were scored, and the classifier-free guidance scale s "
        "they were drawn with (logits = uncond + s (cond - uncond)); empty for text"),
)
RUNS_COLUMNS = tuple(name for row in RUNS_TABLE for name in row.names)
COLUMN_TYPES = {name: kind for row in RUNS_TABLE for name, kind in zip(row.names, row.types)}


# what the analysis uses a run for (the `role` column), in the order that decides for a run that
# several groups list; a sweep group declares its role, or gets it from its name
ROLES = ("main", "seed", "control", "other")
ROLE_OF_GROUP_NAME = {"grid": "main", "seeds": "seed", "controls": "control"}


def group_role(name: str, declared: str | None = None) -> str:
    """The role of a sweep group: the one it declares, else the one its name implies."""
    return declared if declared is not None else ROLE_OF_GROUP_NAME.get(name, "other")


def run_role(roles) -> str:
    """The role of a run listed by groups of these roles: the first of ROLES among them."""
    return min(roles, key=ROLES.index, default="other")


def role_from_groups(groups: str) -> str:
    """The role of a row written before the `role` column, from its `groups` ("grid;seeds")."""
    return run_role(group_role(name) for name in groups.split(";") if name)


# a run folder's record files that the analysis reads (movelab.training.record writes them):
# result.json, and diagnostics.json, computed after the run from its model.pt by
# `movelab inspect --recompute --save` for runs whose loop recorded none (standard models)
RESULT, SAVED_DIAGNOSTICS = "result.json", "diagnostics.json"

# val BPB by token frequency (movelab.diagnostics): this many equal shares of the positions
FREQUENCY_BUCKETS = 5
# what a curve.csv row of a memory run carries besides the loss (empty where not defined)
DIAGNOSTIC_CURVE_COLUMNS = ("slot_effective_count", "g0_mean", "gate_mean",
                            "gate_std_across_slots", "gate_std_across_tokens",
                            *(f"val_bpb_q{i + 1}" for i in range(FREQUENCY_BUCKETS)))

# curve.csv, one row per evaluation (a memory run's rows also carry DIAGNOSTIC_CURVE_COLUMNS);
# the last is the task's validation metric
CURVE_TABLE = (
    Row(("step",), "int", "optimizer steps so far"),
    Row(("tokens",), "int", "training tokens so far"),
    Row(("flops",), "int", "training FLOPs so far (`tokens x flops_per_token_train`)"),
    Row(("lr_scale",), "float",
        "the schedule's multiplier of every peak learning rate at that step"),
    Row(("train_loss",), "float", "mean training loss since the previous evaluation"),
    Row(("val_loss",), "float", "validation nats per token"),
    Row(("val_bpb",), "float", "validation bits per byte (text); image runs have "
        "`bits_per_token` in its place"),
)
CURVE_COLUMNS = tuple(name for row in CURVE_TABLE for name in row.names)


def curve_columns(metric: str = "val_bpb") -> tuple[str, ...]:
    """curve.csv's columns for a task whose validation metric is `metric`."""
    return (*CURVE_COLUMNS[:-1], metric)


def columns_of(kind: str) -> tuple[str, ...]:
    """The runs.csv columns of one type, in table order."""
    return tuple(name for name in RUNS_COLUMNS if COLUMN_TYPES[name] == kind)


def markdown_table(table: tuple[Row, ...] = RUNS_TABLE) -> str:
    """results/README.md's table of the runs.csv columns (or of curve.csv's: CURVE_TABLE)."""
    return "\n".join(["| column | type | meaning |", "|---|---|---|",
                      *(row.markdown() for row in table)])


if __name__ == "__main__":
    sys.stdout.write(markdown_table() + "\n\n" + markdown_table(CURVE_TABLE) + "\n")
