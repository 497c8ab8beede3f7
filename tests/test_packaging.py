"""What the project declares is what it installs and tests: pyproject.toml, environment.yml and
the Makefile list the same packages, extras and Python and torch versions."""

import re
import sys
import tomllib
from pathlib import Path

import yaml
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
ENV = yaml.safe_load((ROOT / "environment.yml").read_text())
MAKEFILE = (ROOT / "Makefile").read_text()


def names(requirements):
    return {re.split(r"[<>=!\[ ;]", r.strip(), maxsplit=1)[0].lower() for r in requirements}


def environment_sections() -> tuple[set[str], list[str]]:
    listed, pip_section = set(), []
    for dep in ENV["dependencies"]:
        if isinstance(dep, dict):
            pip_section = dep["pip"]
        else:
            listed.add(dep)
    return listed, pip_section


def installed_extras(text: str) -> set[str]:
    """The extras of the editable install of the package itself in `text`."""
    match = re.search(r"-e \"?\.\[([a-z,]+)\]", text)
    assert match, "no editable install of the package"
    return set(match.group(1).split(","))


def test_make_and_environment_install_the_same_extras():
    _, pip_section = environment_sections()
    make_extras = installed_extras(MAKEFILE)
    assert make_extras == installed_extras("\n".join(pip_section))
    assert {"test", "notebooks"} <= make_extras  # the user named jupyterlab and fvcore
    assert make_extras <= set(PROJECT["optional-dependencies"])


def test_environment_yml_matches_pyproject():
    listed, pip_section = environment_sections()
    extras = installed_extras(MAKEFILE)
    wanted = names(PROJECT["dependencies"])
    for extra in extras:
        wanted |= names(PROJECT["optional-dependencies"][extra])
    listed = names(listed) | names(p for p in pip_section if not p.startswith("-e"))
    assert listed - {"python", "pip"} == wanted


def test_declared_python_is_the_tested_one():
    """tomllib is 3.11+; CI and environment.yml run 3.11, the lowest version declared."""
    assert PROJECT["requires-python"] == ">=3.11"
    assert "python=3.11" in environment_sections()[0]
    assert sys.version_info >= (3, 11)


def test_pinned_torch_satisfies_the_declared_range():
    torch_range = next(r for r in PROJECT["dependencies"] if names([r]) == {"torch"})
    make_pin = re.search(r"TORCH \?= torch==([\d.]+)", MAKEFILE).group(1)
    env_pin = next(p for p in environment_sections()[1] if p.startswith("torch==")).split("==")[1]
    assert make_pin == env_pin
    assert make_pin in SpecifierSet(torch_range.removeprefix("torch"))
