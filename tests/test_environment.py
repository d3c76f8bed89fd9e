"""The install files agree: pyproject.toml, requirements/lock.txt, environment.yml, Makefile.

- environment.yml (conda) lists the same packages as pyproject.toml (runtime + every extra);
- the lock holds every one of them at a version inside pyproject.toml's range, with no CUDA
  package and no local version label, and the Makefile installs the lock's torch first;
- environment.yml pins each of its packages to the lock's version.

The YAML file is simple on purpose (a name, channels, a list of specs and a nested pip list),
so a few lines read it here and PyYAML does not become a dependency. Nothing here names a
package the course uses: a dependency added to pyproject.toml is checked as it is.
"""

import importlib.util
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parent.parent
LOCK = REPO / "requirements" / "lock.txt"
REGENERATE = "(regenerate both with `make lock`)"

_spec = importlib.util.spec_from_file_location("write_lock", REPO / "tools" / "write_lock.py")
write_lock = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(write_lock)

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


def pyproject_requirements(text: str) -> list[str]:
    """The specs of the runtime dependencies and every optional extra, the package itself left out."""
    project = tomllib.loads(text)["project"]
    specs = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        specs += extra
    return [s for s in specs if normalise(requirement_name(s)) != PROJECT_NAME]


def pyproject_dependencies(text: str) -> set[str]:
    """Normalised names of the runtime dependencies and every optional extra."""
    return {normalise(requirement_name(s)) for s in pyproject_requirements(text)}


def environment_yml_dependencies(text: str) -> set[str]:
    """Normalised names under ``dependencies:`` (conda specs and the nested ``pip:`` list)."""
    return set(environment_yml_specs(text))


def environment_yml_specs(text: str) -> dict[str, str]:
    """``{normalised name: version spec}`` under ``dependencies:`` ('==2.4.6', '>=1.24', '')."""
    specs: dict[str, str] = {}
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
        if name is not None and normalise(name) not in NOT_DEPENDENCIES | {PROJECT_NAME}:
            specs[normalise(name)] = item[len(name):].strip()
    return specs


def lock_versions(text: str) -> dict[str, str]:
    """``{normalised name: version}`` of the lock; every line must be ``name==version``."""
    versions = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.!]+)", line.strip())
        if match is None:
            raise ValueError(f"lock: {line!r} is not 'name==version' without a local label")
        versions[normalise(match.group(1))] = match.group(2)
    return versions


def lock_problems(requirements: list[str], locked: dict[str, str]) -> list[str]:
    """Messages naming each requirement the lock lacks or holds at a version outside its range."""
    problems = []
    for spec in requirements:
        requirement = Requirement(spec)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue  # not for this platform or Python
        name = normalise(requirement.name)
        if name not in locked:
            problems.append(f"pyproject.toml requires {spec!r}, which the lock does not hold")
        elif not requirement.specifier.contains(locked[name], prereleases=True):
            problems.append(f"pyproject.toml requires {spec!r}, the lock holds {locked[name]}")
    return problems


def pin_problems(environment: dict[str, str], locked: dict[str, str]) -> list[str]:
    """Messages naming each environment.yml entry not pinned (``==``) to the lock's version."""
    problems = []
    for name, spec in sorted(environment.items()):
        if name not in locked:
            problems.append(f"environment.yml lists {name}, which the lock does not hold")
        elif spec != f"=={locked[name]}":
            problems.append(f"environment.yml has {name}{spec}, the lock {name}=={locked[name]}")
    return problems


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


# --- the lock -------------------------------------------------------------------------------


def test_the_lock_holds_every_dependency_inside_its_range():
    requirements = pyproject_requirements((REPO / "pyproject.toml").read_text())
    locked = lock_versions(LOCK.read_text())
    assert len(locked) > len(requirements)  # transitive packages are locked too
    problems = lock_problems(requirements, locked)
    assert not problems, "\n".join(problems) + "\n" + REGENERATE


def test_environment_yml_pins_the_locked_versions():
    environment = environment_yml_specs((REPO / "environment.yml").read_text())
    locked = lock_versions(LOCK.read_text())
    assert environment  # the reader found something
    problems = pin_problems(environment, locked)
    assert not problems, "\n".join(problems) + "\n" + REGENERATE


def test_the_lock_has_no_cuda_package():
    cuda = [n for n in lock_versions(LOCK.read_text()) if n.startswith(write_lock.CUDA_PREFIXES)]
    assert not cuda, f"the lock holds CUDA packages {cuda}: a CUDA torch was resolved. " + REGENERATE


def test_the_makefile_installs_the_locked_torch_first():
    makefile = (REPO / "Makefile").read_text()
    torch = re.search(r"^TORCH := torch==(\S+)$", makefile, re.MULTILINE)
    assert torch is not None, "the Makefile no longer sets TORCH := torch==<version>"
    assert lock_versions(LOCK.read_text())["torch"] == torch.group(1)
    assert re.search(r"^lock:", makefile, re.MULTILINE)  # the command the lock's header names
    assert "make lock" in LOCK.read_text().split("\n\n")[0]


def test_a_stale_lock_is_reported():
    locked = {"numpy": "2.4.6", "torch": "2.13.0"}
    requirements = ["numpy>=2.5", "torch>=2.1,<3", "pooch>=1.8", "pywin32; sys_platform == 'nt'"]
    assert lock_problems(requirements, locked) == [
        "pyproject.toml requires 'numpy>=2.5', the lock holds 2.4.6",
        "pyproject.toml requires 'pooch>=1.8', which the lock does not hold",
    ]


def test_an_unpinned_or_stale_environment_entry_is_reported():
    locked = {"numpy": "2.4.6", "torch": "2.13.0", "scipy": "1.17.1"}
    environment = {"numpy": ">=1.24", "torch": "==2.13.0", "scipy": "==1.16.0", "seaborn": "==0.13"}
    assert pin_problems(environment, locked) == [
        "environment.yml has numpy>=1.24, the lock numpy==2.4.6",
        "environment.yml has scipy==1.16.0, the lock scipy==1.17.1",
        "environment.yml lists seaborn, which the lock does not hold",
    ]


@pytest.mark.parametrize("line", ["torch==2.13.0+cpu", "numpy>=2", "-e file:///repo", "numpy"])
def test_the_lock_reader_refuses_anything_but_an_exact_public_version(line):
    with pytest.raises(ValueError, match="not 'name==version'"):
        lock_versions(f"# header\n{line}\n")


# --- tools/write_lock.py (the body of `make lock`) --------------------------------------------

FREEZE = """\
Jinja2==3.1.6
numpy==2.4.6
pip==25.3
torch==2.13.0+cpu
typing_extensions==4.16.0
uv==0.13.9
"""


def test_the_writer_drops_installers_and_local_labels():
    versions = write_lock.parse_freeze(FREEZE)
    assert versions == {"jinja2": "3.1.6", "numpy": "2.4.6", "torch": "2.13.0",
                        "typing-extensions": "4.16.0"}
    text = write_lock.lock_text(versions, "3.11")
    assert lock_versions(text) == versions  # what it writes, the tests read back
    assert "make lock" in text


@pytest.mark.parametrize(
    "line, message",
    [("nvidia-cublas-cu12==12.8.4.1", "CUDA package"), ("triton==3.5.0", "CUDA package"),
     ("gae_course @ file:///repo", "expected 'name==version'")],
)
def test_the_writer_refuses_cuda_packages_and_urls(line, message):
    with pytest.raises(ValueError, match=message):
        write_lock.parse_freeze(FREEZE + line + "\n")


def test_the_writer_pins_environment_yml_and_keeps_the_rest():
    text = """\
name: demo  # a comment
dependencies:
  - python=3.11
  - pip
  - numpy>=1.24
  - Jinja2  # templates
  - pip:
      - --extra-index-url https://download.pytorch.org/whl/cpu
      - torch==2.1.0
      - -e .
"""
    pinned = write_lock.pin_environment(text, write_lock.parse_freeze(FREEZE))
    assert pinned == text.replace("numpy>=1.24", "numpy==2.4.6").replace(
        "Jinja2  #", "Jinja2==3.1.6  #").replace("torch==2.1.0", "torch==2.13.0")
    assert pin_problems(environment_yml_specs(pinned), write_lock.parse_freeze(FREEZE)) == []
    with pytest.raises(ValueError, match="seaborn"):
        write_lock.pin_environment(text + "  - seaborn\n", write_lock.parse_freeze(FREEZE))


def test_the_writer_compares_a_freeze_with_the_lock():
    locked = {"numpy": "2.4.6", "scipy": "1.17.1", "six": "1.17.0"}
    installed = {"numpy": "2.5.0", "scipy": "1.17.1", "pooch": "1.8.2"}
    assert write_lock.differences(locked, installed) == [
        "numpy: 2.4.6 (lock) -> 2.5.0", "pooch: - (lock) -> 1.8.2", "six: 1.17.0 (lock) -> -",
    ]
