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
