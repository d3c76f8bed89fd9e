"""environment.yml (conda) lists the same packages as pyproject.toml (runtime + dev extras).

The YAML file is simple on purpose (a name, channels, a list of specs and a nested pip list),
so a few lines read it here and PyYAML does not become a dependency.
"""

import re
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# conda name -> PyPI name, where they differ
CONDA_TO_PYPI = {"pytorch": "torch"}
# conda-only entries that are not Python dependencies of the package
NOT_DEPENDENCIES = {"python", "pip", "cpuonly"}
PROJECT_NAME = "gae-course"


def normalise(name: str) -> str:
    """PEP 503 form (lower case, runs of - _ . as one -), with conda names mapped to PyPI's."""
    name = re.sub(r"[-_.]+", "-", name.strip().lower())
    return CONDA_TO_PYPI.get(name, name)


def requirement_name(spec: str) -> str | None:
    """Package name of a pip or conda spec ('numpy>=1.24', 'pytorch=2.5=*cpu*'); None for options."""
    spec = spec.strip()
    if not spec or spec.startswith("-"):  # --extra-index-url, -e .
        return None
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", spec)
    if match is None:
        raise ValueError(f"cannot read a package name from {spec!r}")
    return match.group(0)


def pyproject_dependencies(text: str) -> set[str]:
    """Normalised names of the runtime dependencies and every optional extra."""
    project = tomllib.loads(text)["project"]
    specs = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        specs += extra
    names = {normalise(requirement_name(s)) for s in specs}
    return names - {PROJECT_NAME}  # an extra may require the package itself


def environment_yml_dependencies(text: str) -> set[str]:
    """Normalised names under ``dependencies:`` (conda specs and the nested ``pip:`` list)."""
    names: set[str] = set()
    in_dependencies = False
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line:
            continue
        if not line[0].isspace():  # a top-level key
            in_dependencies = line.startswith("dependencies:")
            continue
        if not in_dependencies:
            continue
        item = line.strip()
        if not item.startswith("- "):
            raise ValueError(f"environment.yml: cannot read the line {raw!r}")
        item = item[2:].strip()
        if item == "pip:":
            continue
        name = requirement_name(item)
        if name is not None and normalise(name) not in NOT_DEPENDENCIES:
            names.add(normalise(name))
    return names - {PROJECT_NAME}


def disagreements(pyproject: set[str], environment: set[str]) -> list[str]:
    """Messages naming every package that one file lists and the other does not."""
    problems = []
    if missing := sorted(pyproject - environment):
        problems.append(f"in pyproject.toml but not in environment.yml: {', '.join(missing)}")
    if extra := sorted(environment - pyproject):
        problems.append(f"in environment.yml but not in pyproject.toml: {', '.join(extra)}")
    return problems


def test_environment_yml_matches_pyproject():
    pyproject = pyproject_dependencies((REPO / "pyproject.toml").read_text())
    environment = environment_yml_dependencies((REPO / "environment.yml").read_text())
    assert "torch" in pyproject and "pytest" in pyproject  # the readers found something
    problems = disagreements(pyproject, environment)
    assert not problems, "\n".join(problems) + "\n(update both files together)"


def test_a_disagreement_is_reported_both_ways():
    pyproject = pyproject_dependencies((REPO / "pyproject.toml").read_text())
    environment = environment_yml_dependencies((REPO / "environment.yml").read_text())
    problems = disagreements(pyproject | {"pandas"}, environment - {"scipy"} | {"seaborn"})
    assert problems == [
        "in pyproject.toml but not in environment.yml: pandas, scipy",
        "in environment.yml but not in pyproject.toml: seaborn",
    ]


@pytest.mark.parametrize(
    "a, b",
    [("pytorch", "torch"), ("Scikit_Learn", "scikit-learn"), ("jupyter.client", "jupyter-client")],
)
def test_names_are_normalised(a, b):
    assert normalise(a) == normalise(b)


def test_the_yaml_reader_on_a_small_file():
    text = """\
name: demo  # a comment
channels:
  - pytorch
dependencies:
  # a comment line
  - python=3.11
  - pip
  - pytorch=2.5.1=*cpu*
  - cpuonly
  - Scikit_Learn>=1.3
  - pip:
      - --extra-index-url https://download.pytorch.org/whl/cpu
      - nbval>=0.11  # pip only
      - -e .
variables:
  - not_a_dependency
"""
    assert environment_yml_dependencies(text) == {"torch", "scikit-learn", "nbval"}
