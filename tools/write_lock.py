"""Write requirements/lock.txt from `pip freeze` of a clean venv, and pin environment.yml to it.

The body of `make lock` (see the Makefile, which builds the venv: torch first, then the
package with all its extras, newest within pyproject.toml's ranges)::

    python -m pip freeze --all --exclude-editable | python tools/write_lock.py

What it changes in the frozen list, and why:

- the installers themselves (pip, uv) are left out: the Makefile installs them, they are not
  the course's dependencies;
- local version labels are dropped (``torch==2.13.0+cpu`` -> ``torch==2.13.0``): PyPI has no
  ``+cpu`` release, while ``==2.13.0`` is still met by the CPU build (PEP 440 ignores a
  candidate's local label when the specifier has none);
- a CUDA package (``nvidia-*``, ``triton``) is an error: it means a CUDA build of torch was
  resolved, and the lock would pull GBs onto every reader's machine.

environment.yml keeps its own list of packages (conda names, one per line, kept in step with
pyproject.toml by tests/test_environment.py); this script only rewrites the version of each
entry to the locked one (``- numpy==2.3.5``), so conda readers get the tested versions too.
"""

import argparse
import re
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LOCK = REPO / "requirements" / "lock.txt"
ENVIRONMENT = REPO / "environment.yml"

# installers: present in every venv the Makefile builds, not dependencies of the course
INSTALLERS = {"pip", "uv"}
# names that only a CUDA build of torch brings in
CUDA_PREFIXES = ("nvidia-", "triton")
# conda name -> PyPI name, where they differ (as tests/test_environment.py)
CONDA_TO_PYPI = {"pytorch": "torch"}

HEADER = """\
# The exact versions the course is tested with: every package `make test` and `make course`
# install, transitive ones included (pip freeze of a clean venv, Linux x86-64, CPython {python}).
# Do not edit by hand. After changing pyproject.toml's dependencies, regenerate it with
#
#     make lock
#
# which builds a temporary venv (torch==2.13.0, the CPU wheel, first; then the package with
# all its extras, newest within pyproject.toml's ranges), writes this file from its
# `pip freeze` and pins environment.yml to the same versions (tools/write_lock.py).
# `make test-latest` runs the tests without this file, on the newest versions.
"""


def normalise(name: str) -> str:
    """PEP 503 form of a package name (lower case, runs of - _ . as one -)."""
    return re.sub(r"[-_.]+", "-", name.strip().lower())


def parse_freeze(text: str) -> dict[str, str]:
    """``{normalised name: version}`` from ``pip freeze`` lines (``Name==1.2.3``), local labels dropped.

    Raises
    ------
    ValueError
        For a line that is not ``name==version`` (a URL or VCS requirement cannot be locked
        for another machine), or for a CUDA package.
    """
    versions: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;+]+)(\+\S+)?", line)
        if match is None:
            raise ValueError(
                f"cannot lock {line!r}: expected 'name==version' (install the package from "
                "the registry, not from a path or URL)"
            )
        name, version = normalise(match.group(1)), match.group(2)
        if name.startswith(CUDA_PREFIXES):
            raise ValueError(
                f"{line!r} is a CUDA package: a CUDA build of torch was resolved. Install "
                "torch==2.13.0 (the CPU wheel) first, as `make lock` does, and try again."
            )
        if name not in INSTALLERS:
            versions[name] = version
    if not versions:
        raise ValueError("pip freeze gave no packages: was it run in the lock venv?")
    return dict(sorted(versions.items()))


def extras(pyproject: str) -> list[str]:
    """Names of pyproject.toml's optional extras (all of them go into the lock)."""
    return list(tomllib.loads(pyproject)["project"].get("optional-dependencies", {}))


def lock_text(versions: dict[str, str], python: str) -> str:
    """The lock file: the header, then one ``name==version`` a line, sorted by name."""
    lines = [f"{name}=={version}" for name, version in versions.items()]
    return HEADER.format(python=python) + "\n".join(lines) + "\n"


def pin_environment(text: str, versions: dict[str, str]) -> str:
    """environment.yml with each listed package's version set to the locked one.

    Only the ``dependencies:`` list (and its nested ``pip:`` list) changes; the ``python``
    line, options (``--extra-index-url``, ``-e .``), comments and layout are kept.

    Raises
    ------
    ValueError
        When environment.yml lists a package that the lock does not hold.
    """
    out, in_dependencies, missing = [], False, []
    for raw in text.splitlines(keepends=True):
        if raw.strip() and not raw[0].isspace():
            in_dependencies = raw.startswith("dependencies:")
        item = re.match(r"(\s*- )([A-Za-z0-9][A-Za-z0-9._-]*)(\s*[=<>!~][^#\n]*?)?(\s*#.*)?(\n?)$", raw)
        if in_dependencies and item is not None:
            prefix, name, _, comment, newline = item.groups()
            pypi = CONDA_TO_PYPI.get(normalise(name), normalise(name))
            if pypi in versions:
                raw = f"{prefix}{name}=={versions[pypi]}{comment or ''}{newline}"
            elif name not in ("python", "pip"):
                missing.append(name)
        out.append(raw)
    if missing:
        raise ValueError(
            f"environment.yml lists {', '.join(missing)}, which the lock does not hold: "
            "add it to pyproject.toml (tests/test_environment.py keeps the two in step)"
        )
    return "".join(out)


def differences(locked: dict[str, str], installed: dict[str, str]) -> list[str]:
    """One line per package whose version differs, or that only one side holds, sorted by name."""
    lines = []
    for name in sorted(locked.keys() | installed.keys()):
        old, new = locked.get(name, "-"), installed.get(name, "-")
        if old != new:
            lines.append(f"{name}: {old} (lock) -> {new}")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=".".join(map(str, sys.version_info[:2])),
                        help="the Python version the freeze came from (for the header)")
    parser.add_argument("--compare", action="store_true",
                        help="write nothing; print how the frozen versions differ from the lock")
    parser.add_argument("--extras", action="store_true",
                        help="read no freeze; print pyproject.toml's extras, comma-separated")
    args = parser.parse_args(argv)
    if args.extras:
        print(",".join(extras((REPO / "pyproject.toml").read_text())))
        return
    versions = parse_freeze(sys.stdin.read())
    if args.compare:
        print("\n".join(differences(parse_freeze(LOCK.read_text()), versions)) or "(none)")
        return
    environment = pin_environment(ENVIRONMENT.read_text(), versions)  # may refuse: check first
    LOCK.parent.mkdir(exist_ok=True)
    LOCK.write_text(lock_text(versions, args.python))
    ENVIRONMENT.write_text(environment)
    print(f"wrote {LOCK.relative_to(REPO)} ({len(versions)} packages) and pinned "
          f"{ENVIRONMENT.relative_to(REPO)}")


if __name__ == "__main__":
    main()
