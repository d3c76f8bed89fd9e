"""The wheel ships every package of the tree (a release once shipped without gae_course.checks).

The wheel is built offline from a copy of the sources, by calling setuptools' PEP 517 backend
directly (no build isolation, so nothing is downloaded), in a temporary folder (the backend
writes build/ and *.egg-info/, and build/ holds the course's outputs). A probe subpackage
added to the copy must ship too: the configuration finds packages, it does not list them.
"""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROBE = "gae_course/_probe_subpackage"


def packages_in_tree(root: Path) -> set[str]:
    """Dotted names of the folders under root/gae_course that hold an __init__.py."""
    return {".".join(init.parent.relative_to(root).parts) for init in (root / "gae_course").rglob("__init__.py")}


def packages_in_wheel(wheel: Path) -> set[str]:
    """Dotted names of the folders that hold an __init__.py in the wheel."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    return {".".join(Path(name).parent.parts) for name in names if Path(name).name == "__init__.py"}


def test_the_wheel_ships_every_package_of_the_tree(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "gae_course", source / "gae_course",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (source / PROBE).mkdir()
    (source / PROBE / "__init__.py").write_text('"""A package that no list names."""\n')
    (source / "gae_course" / "__pycache__").mkdir()  # not a package: must not ship
    (source / "gae_course" / "__pycache__" / "stray.py").write_text("")
    out = tmp_path / "dist"
    build = ("import sys; from setuptools import build_meta; "
             "print(build_meta.build_wheel(sys.argv[1]))")
    result = subprocess.run([sys.executable, "-c", build, str(out)], cwd=source,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    wheel = out / result.stdout.strip().splitlines()[-1]

    expected = packages_in_tree(source)
    assert {"gae_course", "gae_course.checks", PROBE.replace("/", ".")} <= expected
    shipped = packages_in_wheel(wheel)
    assert shipped == expected, f"missing: {sorted(expected - shipped)}, extra: {sorted(shipped - expected)}"
    with zipfile.ZipFile(wheel) as archive:
        top_level = {name.split("/")[0] for name in archive.namelist()}
        modules = {name for name in archive.namelist() if name.endswith(".py")}
    assert {name for name in top_level if not name.endswith(".dist-info")} == {"gae_course"}
    assert not any("__pycache__" in name for name in modules)
    assert {f"gae_course/{p.relative_to(source / 'gae_course').as_posix()}"
            for p in (source / "gae_course").rglob("*.py") if "__pycache__" not in p.parts} == modules
