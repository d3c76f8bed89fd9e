"""Every chapter is a Jupytext pair in step: chapters/NN_slug.py <-> chapters/NN_slug.ipynb.

The .py (py:percent) is the reviewed source; the .ipynb is what a reader opens, committed
without outputs. Cells are compared by type and source; outputs and metadata are ignored here
(outputs are checked separately: there must be none).
"""

from pathlib import Path

import jupytext
import nbformat
import pytest

CHAPTERS = Path(__file__).resolve().parent.parent / "chapters"
CHAPTER_GLOB = "[0-9][0-9]_*"


def chapter_stems(folder: Path = CHAPTERS) -> list[str]:
    """Stems of every chapter file, .py or .ipynb, so a missing half is still reported."""
    paths = list(folder.glob(f"{CHAPTER_GLOB}.py")) + list(folder.glob(f"{CHAPTER_GLOB}.ipynb"))
    return sorted({p.stem for p in paths})


def _show(path: Path) -> str:
    try:
        return str(path.relative_to(CHAPTERS.parent))
    except ValueError:
        return str(path)


def cells(path: Path) -> list[tuple[str, str]]:
    """(cell_type, source) of every cell, read with Jupytext; trailing whitespace ignored."""
    notebook = jupytext.read(path)
    return [(cell.cell_type, cell.source.rstrip()) for cell in notebook.cells]


def pair_problems(py_path: Path, ipynb_path: Path) -> list[str]:
    """What is wrong with one pair, as messages that say how to fix it; [] if nothing."""
    py, ipynb = _show(py_path), _show(ipynb_path)
    if not ipynb_path.exists():
        return [f"{ipynb} is missing: create it with `jupytext --sync {py}`"]
    if not py_path.exists():
        return [f"{py} is missing: create it with `jupytext --sync {ipynb}`"]

    problems = []
    sync = (
        f"run `jupytext --sync {py}` (the newer file wins; to make the .py the source, "
        f"`jupytext --to ipynb {py}` rewrites the notebook)"
    )
    py_cells, nb_cells = cells(py_path), cells(ipynb_path)
    if len(py_cells) != len(nb_cells):
        problems.append(
            f"{py} has {len(py_cells)} cells but {ipynb} has {len(nb_cells)}: {sync}"
        )
    for i, (a, b) in enumerate(zip(py_cells, nb_cells)):
        if a != b:
            problems.append(
                f"cell {i} differs between {py} ({a[0]}: {a[1][:60]!r}) and "
                f"{ipynb} ({b[0]}: {b[1][:60]!r}): {sync}"
            )
            break  # the first difference is enough; later cells usually shift with it

    notebook = nbformat.read(ipynb_path, as_version=4)
    dirty = [
        i
        for i, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count"))
    ]
    if dirty:
        problems.append(
            f"{ipynb} is committed with outputs or execution counts (cells {dirty[:5]}): "
            f"clear them with `jupyter nbconvert --clear-output --inplace {ipynb}`"
        )
    return problems


@pytest.mark.parametrize("stem", chapter_stems())
def test_chapter_pair_is_in_step(stem):
    problems = pair_problems(CHAPTERS / f"{stem}.py", CHAPTERS / f"{stem}.ipynb")
    assert not problems, "\n".join(problems)


# --- the comparator itself, on throwaway chapters in a temporary folder -----------------

SOURCE = """\
# %% [markdown]
# # Fit a mixture

# %%
x = 1

# %%
assert x == 1
"""


@pytest.fixture
def pair(tmp_path):
    py = tmp_path / "99_demo.py"
    py.write_text(SOURCE)
    ipynb = tmp_path / "99_demo.ipynb"
    jupytext.write(jupytext.read(py), ipynb)
    return py, ipynb


def test_a_fresh_pair_has_no_problems(pair):
    assert pair_problems(*pair) == []


def test_an_edited_cell_is_reported_with_the_fix(pair):
    py, ipynb = pair
    py.write_text(SOURCE.replace("x = 1", "x = 2"))
    (problem,) = pair_problems(py, ipynb)
    assert "cell 1 differs" in problem and "x = 2" in problem
    assert f"jupytext --sync {py}" in problem


def test_a_changed_cell_type_is_reported(pair):
    py, ipynb = pair
    py.write_text(SOURCE.replace("# %% [markdown]", "# %% [raw]"))
    (problem,) = pair_problems(py, ipynb)
    assert "cell 0 differs" in problem and "raw" in problem


def test_an_added_cell_is_reported(pair):
    py, ipynb = pair
    py.write_text(SOURCE + "\n# %%\ny = 2\n")
    assert any("has 4 cells but" in p for p in pair_problems(py, ipynb))


def test_a_missing_half_is_reported(pair):
    py, ipynb = pair
    ipynb.unlink()
    (problem,) = pair_problems(py, ipynb)
    assert "is missing" in problem and f"jupytext --sync {py}" in problem
    py.unlink()
    assert chapter_stems(py.parent) == []


def test_outputs_and_execution_counts_are_reported(pair):
    py, ipynb = pair
    notebook = nbformat.read(ipynb, as_version=4)
    notebook.cells[1].execution_count = 1
    notebook.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    nbformat.write(notebook, ipynb)
    (problem,) = pair_problems(py, ipynb)
    assert "outputs or execution counts (cells [1])" in problem
    assert "--clear-output" in problem


def test_chapter_stems_sees_both_halves(pair, tmp_path):
    (tmp_path / "05_only_notebook.ipynb").write_text(pair[1].read_text())
    (tmp_path / "notes.py").write_text("")
    assert chapter_stems(tmp_path) == ["05_only_notebook", "99_demo"]
