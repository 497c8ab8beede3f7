"""Layers import downward only: every `movelab` module sits in a layer (docs/architecture.md),
and each of its imports of another movelab module, at the top or inside a function, names a
module of its own layer or a lower one. A new module must be given a layer here."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "movelab"

# lowest first; docs/architecture.md says what each layer is for
LAYERS = {
    "foundation": ["movelab", "movelab.hashing", "movelab.config", "movelab.variant",
                   "movelab.schema", "movelab.accounting", "movelab.memory",
                   "movelab.data.cache", "movelab.data.errors", "movelab.images.layout"],
    "model and data": ["movelab.model", "movelab.counters", "movelab.data", "movelab.data.corpus",
                       "movelab.data.tokenizer", "movelab.data.shards", "movelab.data.prose",
                       "movelab.data.recall", "movelab.images",
                       "movelab.images.data", "movelab.images.tokenizer",
                       "movelab.images.classifier", "movelab.images.fid",
                       "movelab.images.sampling"],
    "training parts": ["movelab.training", "movelab.training.config", "movelab.training.device",
                       "movelab.training.distributed", "movelab.training.optim",
                       "movelab.training.record", "movelab.training.claim",
                       "movelab.training.trackers", "movelab.training.task",
                       "movelab.diagnostics"],
    "tasks": ["movelab.data.task", "movelab.images.task", "movelab.training.tasks"],
    "loop": ["movelab.training.loop"],
    "runs of runs": ["movelab.sweep", "movelab.images.guidance", "movelab.bench", "movelab.plan",
                     "movelab.inspection"],
    "analysis": ["movelab.scaling", "movelab.scaling.fit", "movelab.scaling.joint",
                 "movelab.scaling.load", "movelab.scaling.analysis", "movelab.scaling.plot",
                 "movelab.scaling.verdict", "movelab.scaling.secondary", "movelab.scaling.vocabulary",
                 "movelab.scaling.figures"],
    "entry points": ["movelab.demo", "movelab.flags", "movelab.cli", "movelab.__main__"],
}
LAYER_OF = {module: rank for rank, modules in enumerate(LAYERS.values()) for module in modules}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def movelab_imports(path: Path) -> set[str]:
    """The movelab modules `path` imports (for `from movelab.x import y`, y when it is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "movelab"}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.split(".")[0] == "movelab":
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names
                      if f"{node.module}.{a.name}" in LAYER_OF}
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer_and_every_layer_entry_a_module():
    names = {module_name(p) for p in MODULES}
    missing = sorted(names - set(LAYER_OF))
    assert not missing, f"give these modules a layer in {__file__}: {missing}"
    assert not sorted(set(LAYER_OF) - names), "the layer map lists modules that do not exist"


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_imports_go_downward(path):
    me = module_name(path)
    upward = sorted(m for m in movelab_imports(path)
                    if m in LAYER_OF and LAYER_OF[m] > LAYER_OF.get(me, -1))
    assert not upward, f"{me} ({list(LAYERS)[LAYER_OF[me]]}) imports from above: {upward}"


def test_the_analysis_layer_reads_rows_without_torch():
    """Loading, analysing and plotting committed rows needs no torch (notebooks and figures
    start fast, and the analysis never reaches into the model or the training loop)."""
    import subprocess
    import sys

    code = ("import sys, movelab.scaling.figures, movelab.scaling.secondary, movelab.scaling.verdict; "
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('movelab.training')"
            " or m in ('movelab.model', 'movelab.diagnostics')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=PACKAGE.parent).stdout.strip()
    assert loaded == "[]", f"the analysis layer imports {loaded}"
