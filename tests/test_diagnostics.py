"""Diagnostics of the memory paths (movelab.diagnostics): the participation ratio on banks whose
answer is known, the frequency split, and that a tiny MoVE run records all of them."""

import csv
import json
import math

import numpy as np
import pytest
import torch

from movelab import diagnostics, inspection
from movelab.cli import main
from movelab.config import build_config
from movelab.model import GPT
from movelab.training.config import RunConfig, TrainConfig
from movelab.training.loop import train


def test_participation_ratio_is_one_for_equal_slots_and_m_for_orthogonal_ones():
    torch.manual_seed(0)
    direction = torch.randn(10, 1, 16)
    equal = direction.expand(10, 4, 16) * torch.rand(10, 1, 1)  # every slot the same update
    assert torch.allclose(diagnostics.participation_ratio(equal), torch.ones(10, dtype=torch.double))
    orthogonal = torch.linalg.qr(torch.randn(10, 16, 8)).Q.transpose(-1, -2) * 3.0  # 8 slots
    assert torch.allclose(diagnostics.participation_ratio(orthogonal),
                          torch.full((10,), 8.0, dtype=torch.double))
    # two equal-sized orthogonal pairs, each pair moving as one: 2 effective slots of 4
    pair = torch.stack([orthogonal[:, 0], orthogonal[:, 0], orthogonal[:, 1], orthogonal[:, 1]], 1)
    assert torch.allclose(diagnostics.participation_ratio(pair), torch.full((10,), 2.0,
                                                                            dtype=torch.double))


def test_slot_effective_count_reads_the_updates_of_the_most_frequent_ids():
    initial = torch.randn(6, 3, 8)
    rows = initial.clone()
    rows[5] += torch.eye(3, 8)                 # id 5: independent slots (ratio 3)
    rows[2] += torch.ones(3, 8)                # id 2: slots in lockstep (ratio 1)
    counts = np.array([0, 1, 50, 0, 2, 90])
    assert diagnostics.top_ids(counts, 2).tolist() == [5, 2]
    assert diagnostics.slot_effective_count(rows, initial, np.array([5])) == pytest.approx(3.0)
    assert diagnostics.slot_effective_count(rows, initial, np.array([5, 2])) == pytest.approx(2.0)
    # ids whose rows never moved have no ratio and are left out, not counted as 0 or 1
    assert diagnostics.slot_effective_count(rows, initial, np.array([5, 1])) == pytest.approx(3.0)


def test_initial_memory_rows_are_the_seeded_init_of_the_run():
    run = RunConfig(build_config(depth=2, width=32, heads=1, vocab_size=64, seq_len=16,
                                 value_path="move", slots=3), TrainConfig(tokens=10, seed=7))
    torch.manual_seed(7)
    model = GPT(run.model)
    assert torch.equal(diagnostics.initial_memory_rows(run), diagnostics.memory_rows(model))
    assert diagnostics.memory_rows(model).shape == (64, 3, 32)


def test_val_bpb_by_frequency_splits_positions_by_the_input_tokens_count():
    x = torch.tensor([[0, 1, 2, 3]])
    nats = torch.tensor([[1.0, 2.0, 3.0, 4.0]]) * math.log(2)  # bits 1..4
    counts = np.array([40, 30, 20, 10])
    rows = diagnostics.val_bpb_by_frequency(nats, x, torch.ones(1, 4), counts, buckets=2)
    # rarest first: ids 3 and 2 (4 and 3 bits), then 1 and 0
    assert [r["val_bpb"] for r in rows] == pytest.approx([3.5, 1.5])
    assert rows[0]["occurrences_max"] == 20 and rows[1]["occurrences_min"] == 30


def test_bank_row_occurrences():
    occ = diagnostics.bank_row_occurrences(np.array([0, 5, 20, 30, 0, 1]))
    assert occ == {"median": 12.5, "share_below_10": 0.5, "ids_never_seen": 2}


def test_a_tiny_move_run_records_the_diagnostics(tmp_path, capsys):
    run = RunConfig(build_config(depth=2, width=32, heads=1, vocab_size=64, seq_len=24,
                                 value_path="move", slots=4),
                    TrainConfig(corpus="recall:K=2,tokens=30000", tokens=24 * 8 * 20,
                                batch_size=8, evals=2))
    result = train(run, tmp_path, progress=False)
    found = result["diagnostics"]
    assert found["memory_slots"] == 4
    assert 1.0 <= found["slot_effective_count"] <= 4.0
    assert [row["layer"] for row in found["gates"]] == [0, 1]
    assert all(0 <= row["gate_mean"] <= 2 and row["g0_mean"] is not None for row in found["gates"])
    assert len(found["val_bpb_by_frequency"]) == diagnostics.FREQUENCY_BUCKETS
    assert found["bank_row_occurrences"]["ids_never_seen"] == 0
    assert json.loads((tmp_path / "result.json").read_text())["diagnostics"] == found
    with open(tmp_path / "curve.csv") as file:
        curve = list(csv.DictReader(file))
    assert len(curve) == 2 and set(diagnostics.CURVE_COLUMNS) <= set(curve[0])
    assert float(curve[-1]["slot_effective_count"]) == pytest.approx(found["slot_effective_count"])
    # the weights are kept, and `inspect` recomputes the same numbers from them
    assert inspection.inspect_run(tmp_path)["slot_effective_count"] == pytest.approx(
        found["slot_effective_count"])
    # `movelab inspect` prints them; a folder without a run is one line and exit status 2
    assert main(["inspect", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert f"slot_effective_count  {found['slot_effective_count']:.3f} of 4 slots" in printed
    assert printed.count("\n") >= 5 + 2 + diagnostics.FREQUENCY_BUCKETS
    assert main(["inspect", str(tmp_path / "nothing")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "cannot read" in error


def test_a_standard_run_keeps_its_curve_columns(tmp_path):
    run = RunConfig(build_config(depth=2, width=32, heads=1, vocab_size=64, seq_len=24),
                    TrainConfig(corpus="recall:K=2,tokens=30000", tokens=24 * 8 * 4,
                                batch_size=8, evals=1))
    result = train(run, tmp_path, progress=False)
    assert "diagnostics" not in result
    header = (tmp_path / "curve.csv").read_text().splitlines()[0]
    assert header == "step,tokens,flops,lr_scale,train_loss,val_loss,val_bpb"


def test_slot_axis_table_fits_the_slope_per_doubling_of_m_paired_by_seed():
    import pandas as pd

    rows = []
    for seed, offset in ((0, 0.0), (1, 0.1)):
        for m, bpb in ((1, 3.0), (4, 2.8), (16, 2.6)):  # -0.1 per doubling on seed 0
            rows.append(dict(corpus="recall:K=4", value_path="move", gate_standard=True,
                             recipe="", slots=m, seed=seed, val_bpb=bpb + offset * m / 16,
                             slot_effective_count=1.0 + m / 16))
        rows.append(dict(corpus="recall:K=4", value_path="standard", gate_standard=False,
                         recipe="", slots=0, seed=seed, val_bpb=3.1, slot_effective_count=None))
    table = diagnostics.slot_axis_table(pd.DataFrame(rows))
    move = table[table["path"] == "move"].set_index("slots")
    slope_seed1 = np.polyfit([0, 2, 4], [3.0 + 0.1 / 16, 2.8 + 0.1 / 4, 2.6 + 0.1], 1)[0]
    assert move["slot_slope"].iloc[0] == pytest.approx((-0.1 + slope_seed1) / 2)
    assert move.loc[16, "val_bpb"] == pytest.approx(2.65) and move.loc[16, "seeds"] == 2
    assert move["recipe"].eq("paper").all()
    assert table[table["path"] == "standard"]["val_bpb"].item() == pytest.approx(3.1)


class _Bytes:
    """The one thing memory_diagnostics asks of a data object besides the windows."""

    @staticmethod
    def target_bytes(targets):
        return torch.ones_like(targets)


@pytest.mark.parametrize("fields, layers, slots", [
    ({"value_path": "lave", "gate_standard": True}, [1], 1),   # x1 at depth 2: the last layer
    ({"value_path": "lave", "density": 2}, [0, 1], 2),
    ({"value_path": "standard", "gate_standard": True}, [0, 1], 0)])
def test_gate_statistics_of_lave_and_the_standard_gate(fields, layers, slots):
    torch.manual_seed(0)
    model = GPT(build_config(depth=2, width=32, heads=1, vocab_size=64, seq_len=8, **fields))
    with torch.no_grad():  # gates away from exactly 1, so their statistics are not trivial
        for block in model.blocks:
            if block.attn.value_mix is not None:
                block.attn.value_mix.gate.weight.normal_(std=0.3)
    x = torch.randint(0, 64, (4, 8))
    found = diagnostics.memory_diagnostics(model, diagnostics.memory_rows(model), _Bytes(),
                                           np.arange(64) + 1, x, x)
    assert [row["layer"] for row in found["gates"]] == layers and found["memory_slots"] == slots
    for row in found["gates"]:
        assert (row["g0_mean"] is not None) == bool(fields.get("gate_standard"))
        if fields["value_path"] == "lave":
            assert row["std_across_slots"] == 0.0 and row["std_across_tokens"] > 0
        else:
            assert "gate_mean" not in row
    # nothing has moved yet: no slot has an update, so there is no effective count
    assert found["slot_effective_count"] is None
