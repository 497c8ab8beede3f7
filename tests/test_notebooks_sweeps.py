"""The analysis notebooks follow the sweep named at their top: pointed at another committed sweep
they run unchanged, read that sweep's rows, and their check cells pass on it. (`make test` runs
every notebook as committed with nbmake; this runs them on a sweep they were not written for.)"""

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from movelab.scaling.load import load_runs, runs_csv_path

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
RESULTS = NOTEBOOKS.parent / "results"
SWEEP_LINE = re.compile(r'^SWEEP = "([^"]+)"', re.MULTILINE)

# (notebook, the committed sweep it is pointed at instead of its own)
CASES = [("03_text_scaling", "decouple-prose"), ("04_memory_decoupling", "decouple-prose"),
         ("05_ablations", "decouple-prose"), ("08_decoupling_verdict", "decouple-prose"),
         ("09_decoupling_secondary", "decouple-image")]


def pointed_at(name: str, sweep: str):
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    cells = [c for c in notebook.cells if c.cell_type == "code" and SWEEP_LINE.search(c.source)]
    assert len(cells) == 1, f"{name}: one cell must set SWEEP = \"...\""
    assert SWEEP_LINE.search(cells[0].source).group(1) != sweep, "pointed at its own sweep"
    cells[0].source = SWEEP_LINE.sub(f'SWEEP = "{sweep}"', cells[0].source)
    return notebook


def printed(notebook) -> str:
    return "".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                   for output in cell.get("outputs", []) if output.get("output_type") == "stream")


@pytest.mark.parametrize("name,sweep", CASES)
def test_notebook_runs_on_another_sweep(name, sweep):
    if not runs_csv_path(sweep, RESULTS).exists():
        pytest.skip(f"results/{sweep}/runs.csv is not committed")
    notebook = pointed_at(name, sweep)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    text = printed(notebook)
    rows = len(load_runs(sweep, RESULTS))
    assert f"{rows} finished runs in ../results/{sweep}/runs.csv" in text
    assert "checked:" in text  # the check cell ran to its end on this sweep's rows


def test_the_vocabulary_notebook_reads_a_vocabulary_sweep(tmp_path):
    """Notebook 10 on a stand-in for vocab-prose built from committed decouple-prose d4 rows
    (standard, MoVE x1, x4, x16, seeds 0-1), each copied under three vocabulary sizes with its
    run folder: every cell runs on real records and its check cell recomputes the gains."""
    import csv
    import shutil

    source = RESULTS / "decouple-prose"
    if not (source / "runs.csv").exists():
        pytest.skip("results/decouple-prose/runs.csv is not committed")
    with open(source / "runs.csv") as file:
        rows = [r for r in csv.DictReader(file) if r["depth"] == "4" and r["seed"] in ("0", "1")
                and r["variant"] in ("standard", "move x1", "move x4", "move x16")]
    if len({(r["variant"], r["seed"]) for r in rows}) < 8:
        pytest.skip("decouple-prose lacks the d4 cells this stand-in copies")
    target = tmp_path / "results" / "vocab-prose"
    copies = []
    for k, vocab in enumerate((1024, 4096, 16384)):
        for row in rows:
            run_id = f"{k}{row['run_id'][1:]}"
            shutil.copytree(source / "runs" / row["run_id"], target / "runs" / run_id)
            copies.append({**row, "run_id": run_id, "vocab_size": str(vocab), "groups": f"v{vocab}"})
    with open(target / "runs.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(copies)
    (tmp_path / "notebooks").mkdir()
    notebook = nbformat.read(NOTEBOOKS / "10_vocabulary.ipynb", as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path / "notebooks")}}).execute()
    text = printed(notebook)
    assert f"{len(copies)} finished runs in ../results/vocab-prose/runs.csv" in text
    assert "checked: 24 rows, 9 cells' gains recomputed from runs.csv" in text
    assert "H2: unresolved" in text  # the same rows at every V: no trend with occurrences
