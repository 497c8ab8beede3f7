"""pyproject.toml and environment.yml list the same packages."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def names(requirements):
    return {re.split(r"[<>=!\[ ;]", r.strip(), maxsplit=1)[0].lower() for r in requirements}


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    wanted = names(project["dependencies"]) | names(extras["test"]) | names(extras["trackers"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    listed, pip_section = set(), []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip_section = dep["pip"]
        else:
            listed |= names([dep])
    assert "-e .[test,trackers]" in pip_section  # the environment installs the package itself
    listed |= names(p for p in pip_section if not p.startswith("-e"))
    assert listed - {"python", "pip"} == wanted
