"""gae_course.assign: student versions of the chapters (solutions replaced by stubs).

Unit tests of the transformation, then a student run: every chapter's student version is
executed in quick mode, and the only errors allowed are those of the stubs
(``NotImplementedError``, or the check's "is not implemented yet"); every other cell must
still run, since later cells use the package's functions, not the reader's.
"""

import os
import queue
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jupytext
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from gae_course import assign
from gae_course.assign import ANSWER_HERE, make_student_notebook, stub_solutions

REPO = Path(__file__).resolve().parent.parent
CHAPTERS = REPO / "chapters"
CHAPTER_PATHS = sorted(CHAPTERS.glob("[0-9][0-9]_*.py"))

EXERCISE = '''\
import numpy as np


def e_step(X, weights):
    """Docstring."""
    ### BEGIN SOLUTION
    top = X.max()
    return X - top
    ### END SOLUTION


checks.e_step(e_step)
'''


# --- stub_solutions ---------------------------------------------------------------------------


def test_stub_replaces_the_block_markers_included_at_the_same_indentation():
    out = stub_solutions(EXERCISE)
    assert "BEGIN SOLUTION" not in out and "END SOLUTION" not in out
    assert "top = X.max()" not in out
    stub = '    raise NotImplementedError("write e_step here, then run the check below")\n'
    assert stub in out
    block = "    ### BEGIN SOLUTION\n    top = X.max()\n    return X - top\n    ### END SOLUTION\n"
    assert out == EXERCISE.replace(block, stub)


def test_stub_keeps_deeper_indentation_and_names_the_innermost_function():
    source = (
        "class Model:\n"
        "    def forward(self, x):\n"
        "        if x:\n"
        "            ### BEGIN SOLUTION\n"
        "            return x\n"
        "            ### END SOLUTION\n"
        "        return 0\n"
    )
    out = stub_solutions(source)
    assert out.splitlines() == [
        "class Model:",
        "    def forward(self, x):",
        "        if x:",
        '            raise NotImplementedError("write forward here, then run the check below")',
        "        return 0",
    ]


def test_hint_names_the_enclosing_function_not_a_nested_or_later_one():
    source = (
        "def outer(a):\n"
        "    def helper(b):\n"
        "        return b\n"
        "    ### BEGIN SOLUTION\n"
        "    return helper(a)\n"
        "    ### END SOLUTION\n"
        "\n"
        "def later():\n"
        "    pass\n"
    )
    out = stub_solutions(source)
    assert 'NotImplementedError("write outer here, then run the check below")' in out
    assert "def helper(b):\n        return b\n" in out and "def later():\n    pass\n" in out


def test_block_outside_a_function_gets_a_generic_hint():
    out = stub_solutions("x = 1\n### BEGIN SOLUTION\ny = 2\n### END SOLUTION\n")
    assert out == 'x = 1\nraise NotImplementedError("write your solution here, then run the check below")\n'


def test_several_blocks_each_become_one_stub_and_the_rest_is_byte_identical():
    source = "def f():\r\n    ### BEGIN SOLUTION\r\n    return 1\r\n    ### END SOLUTION\r\n\r\n\tx = 'kept'  \r\n"
    source += "def g():\n    ### BEGIN SOLUTION\n    return 2\n    ### END SOLUTION"  # no final newline
    out = stub_solutions(source)
    assert out == (
        'def f():\r\n    raise NotImplementedError("write f here, then run the check below")\r\n'
        "\r\n\tx = 'kept'  \r\n"
        'def g():\n    raise NotImplementedError("write g here, then run the check below")'
    )


def test_source_without_markers_is_returned_unchanged():
    source = "def f(x):\n    # BEGIN SOLUTION is only said here, not a marker line\n    return x\n"
    assert stub_solutions(source) is source


@pytest.mark.parametrize(
    "source, line, what",
    [
        ("a = 1\n### BEGIN SOLUTION\nb = 2\n", 2, "without a matching"),
        ("a = 1\nb = 2\n### END SOLUTION\n", 3, "without a '### BEGIN SOLUTION' before it"),
        (
            "### BEGIN SOLUTION\na = 1\n### BEGIN SOLUTION\nb = 2\n### END SOLUTION\n### END SOLUTION\n",
            3,
            "cannot be nested",
        ),
    ],
    ids=["begin-without-end", "end-without-begin", "nested"],
)
def test_unmatched_or_nested_markers_are_refused_with_file_and_line(source, line, what):
    with pytest.raises(ValueError, match=rf"^chapters/99_x\.py, line {line}: .*{re.escape(what)}"):
        stub_solutions(source, origin="chapters/99_x.py")


def test_main_refuses_a_chapter_with_unmatched_markers_naming_the_file_line(tmp_path):
    chapters, student = tmp_path / "chapters", tmp_path / "student"
    chapters.mkdir()
    (chapters / "01_ok.py").write_text("# %%\ndef f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\n")
    bad = chapters / "02_bad.py"
    bad.write_text("# %% [markdown]\n# Title\n\n# %%\ndef f():\n    ### BEGIN SOLUTION\n    return 1\n")
    with pytest.raises(ValueError, match=rf"{re.escape(str(bad))}, line 6: "):
        assign.main([str(chapters), str(student)])
    assert not student.exists(), "nothing is written when one chapter is refused"


# --- make_student_notebook --------------------------------------------------------------------


def _notebook():
    nb = new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nb.cells = [
        new_markdown_cell("# Title\n\nSome *text*."),
        new_code_cell(EXERCISE, metadata={"tags": ["exercise"]}),
        new_markdown_cell("Because the variance is **positive**.", metadata={"tags": ["solution"]}),
        new_markdown_cell("Untagged: kept.", metadata={"tags": ["other"]}),
        new_code_cell("print(1)", execution_count=3, outputs=[nbformat.v4.new_output("stream", text="1\n")]),
    ]
    return nb


def test_student_notebook_stubs_code_and_replaces_tagged_markdown():
    nb = _notebook()
    student = make_student_notebook(nb)
    assert [c.cell_type for c in student.cells] == [c.cell_type for c in nb.cells]
    assert student.cells[1].source == stub_solutions(EXERCISE)
    assert student.cells[2].source == ANSWER_HERE == "*Your answer here.*"
    assert student.cells[2].metadata == {"tags": ["solution"]}


def test_untouched_cells_are_identical_and_outputs_cleared():
    nb = _notebook()
    before = nbformat.writes(nb)
    student = make_student_notebook(nb)
    assert nbformat.writes(nb) == before, "the input notebook is not modified"
    for i in (0, 3):
        assert student.cells[i].source == nb.cells[i].source
        assert student.cells[i].metadata == nb.cells[i].metadata
    assert student.cells[1].metadata == {"tags": ["exercise"]}
    assert student.cells[4].source == "print(1)"
    assert student.cells[4].outputs == [] and student.cells[4].execution_count is None
    assert student.metadata == nb.metadata
    nbformat.validate(student)


def test_student_notebook_is_deterministic():
    a, b = make_student_notebook(_notebook()), make_student_notebook(_notebook())
    assert nbformat.writes(a) == nbformat.writes(b)
    assert len({c.id for c in a.cells}) == len(a.cells)


# --- the command on the real chapters ---------------------------------------------------------


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("student")
    assert assign.main([str(CHAPTERS), str(out)]) == 0
    return out


def test_every_chapter_gets_a_paired_student_version_without_solutions(student_dir):
    assert CHAPTER_PATHS, "no chapters found"
    for chapter in CHAPTER_PATHS:
        ipynb, py = student_dir / f"{chapter.stem}.ipynb", student_dir / f"{chapter.stem}.py"
        assert ipynb.exists() and py.exists()
        nb = nbformat.read(ipynb, as_version=4)
        assert nb.metadata["jupytext"]["formats"] == "ipynb,py:percent"
        for text in (ipynb.read_text(), py.read_text()):
            assert "BEGIN SOLUTION" not in text and "END SOLUTION" not in text
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
        # the pair is in step, and is the chapter with only its solution blocks changed
        from_py, source = jupytext.read(py), jupytext.read(chapter)
        assert [(c.cell_type, c.source) for c in from_py.cells] == [(c.cell_type, c.source) for c in nb.cells]
        assert len(nb.cells) == len(source.cells)
        for mine, theirs in zip(nb.cells, source.cells):
            if "BEGIN SOLUTION" not in theirs.source:
                assert mine.source == theirs.source
            else:
                assert mine.source == stub_solutions(theirs.source)


def test_student_version_py_differs_from_the_chapter_only_in_the_solution_blocks(student_dir):
    for chapter in CHAPTER_PATHS:
        expected = stub_solutions(chapter.read_text())
        got = (student_dir / chapter.name).read_text()
        # Jupytext adds the pairing line to the header; nothing else may differ.
        assert got.replace("#     formats: ipynb,py:percent\n", "", 1) == expected, chapter.name


def test_the_command_is_deterministic(student_dir, tmp_path):
    assert assign.main([str(CHAPTERS), str(tmp_path)]) == 0
    for path in sorted(student_dir.iterdir()):
        assert (tmp_path / path.name).read_bytes() == path.read_bytes(), path.name


# --- the student run --------------------------------------------------------------------------


def _stub_cells(nb) -> set[int]:
    return {i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "raise NotImplementedError(\"write " in c.source}


# Executes one notebook in a kernel of this Python (as tools/run_course.py does), errors
# allowed, and writes the executed copy. It runs in a subprocess of its own, so that two
# chapters can run at once, each pinned to one core.
_RUNNER = """
import sys
import nbformat
from jupyter_client.manager import KernelManager
from nbconvert.preprocessors import ExecutePreprocessor

class CurrentPythonKernel(KernelManager):
    def format_kernel_cmd(self, extra_arguments=None):
        return [sys.executable, "-m", "ipykernel_launcher", "-f", self.connection_file]

source, target, folder = sys.argv[1:4]
nb = nbformat.read(source, as_version=4)
executor = ExecutePreprocessor(
    timeout=300, kernel_name="python3", allow_errors=True, kernel_manager_class=CurrentPythonKernel
)
executor.preprocess(nb, {"metadata": {"path": folder}})
nbformat.write(nb, target)
"""


def _cores() -> list[int]:
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    return cores if len(cores) >= 2 and shutil.which("taskset") else []


def _execute(notebook_path: Path, target: Path, core: int | None) -> float:
    """Run one notebook into ``target``; the seconds it took. The kernel inherits this process's
    environment: quick mode, data and cache folders are set by the root conftest.py."""
    pin = ["taskset", "-c", str(core)] if core is not None else []
    start = time.perf_counter()
    done = subprocess.run(
        pin + [sys.executable, "-c", _RUNNER, str(notebook_path), str(target), str(notebook_path.parent)],
        capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, f"running {notebook_path.name} failed:\n{done.stderr[-3000:]}"
    return time.perf_counter() - start


@pytest.fixture(scope="module")
def student_runs(student_dir, tmp_path_factory):
    """Every student notebook executed, two at a time (one per core) when there are two cores:
    {stem: (executed notebook, seconds)}. Later chapters first: they are the longest."""
    out_dir = tmp_path_factory.mktemp("executed")
    cores = _cores()
    free = queue.Queue()
    for core in cores[:2] or [None]:
        free.put(core)

    def run(stem):
        core = free.get()
        try:
            target = out_dir / f"{stem}.ipynb"
            return stem, (target, _execute(student_dir / f"{stem}.ipynb", target, core))
        finally:
            free.put(core)

    stems = sorted((p.stem for p in CHAPTER_PATHS), reverse=True)
    with ThreadPoolExecutor(max_workers=free.qsize()) as pool:
        results = dict(pool.map(run, stems))
    return {stem: (nbformat.read(target, as_version=4), seconds) for stem, (target, seconds) in results.items()}


def _strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def _errors(nb) -> dict[int, tuple[str, str]]:
    """{cell index: (error name, message)} of the cells that raised."""
    errors = {}
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.output_type == "error":
                errors[i] = (out.ename, _strip_ansi(out.evalue))
    return errors


def unexpected_errors(nb) -> list[str]:
    """The errors of an executed student notebook that do not come from a stub, described."""
    stubs, unexpected = _stub_cells(nb), []
    for i, (ename, evalue) in sorted(_errors(nb).items()):
        from_stub = i in stubs and (
            (ename == "NotImplementedError" and evalue.startswith("write "))
            or (ename == "CheckFailed" and "is not implemented yet" in evalue)
        )
        if not from_stub:
            first = nb.cells[i].source.strip().splitlines()[0][:80]
            unexpected.append(f"cell {i} ({first!r}): {ename}: {evalue[:300]}")
    return unexpected


def test_unexpected_errors_tells_stub_failures_from_others():
    stub = stub_solutions(EXERCISE)
    nb = new_notebook(cells=[new_code_cell(stub), new_code_cell(stub), new_code_cell("1 / 0"), new_code_cell(stub)])
    error = nbformat.v4.new_output
    nb.cells[0].outputs = [error("error", ename="CheckFailed", evalue="e_step is not implemented yet: replace", traceback=[])]
    nb.cells[1].outputs = [error("error", ename="NotImplementedError", evalue="write e_step here, then run the check below", traceback=[])]
    nb.cells[2].outputs = [error("error", ename="ZeroDivisionError", evalue="division by zero", traceback=[])]
    nb.cells[3].outputs = [error("error", ename="CheckFailed", evalue="e_step returned shape (3, 1)", traceback=[])]
    found = unexpected_errors(nb)
    assert [line.split(" (")[0] for line in found] == ["cell 2", "cell 3"]
    assert "ZeroDivisionError: division by zero" in found[0]


@pytest.mark.parametrize("chapter", [p.stem for p in CHAPTER_PATHS])
def test_student_version_runs_with_only_the_stubs_failing(student_runs, chapter):
    nb, elapsed = student_runs[chapter]
    stubs = _stub_cells(nb)
    assert stubs, f"{chapter} has no exercise"
    unexpected = unexpected_errors(nb)
    assert not unexpected, f"{chapter}: cells failing for another reason than a stub:\n" + "\n".join(unexpected)
    # each exercise cell ends with its check, which reports the stub
    errors = _errors(nb)
    assert set(errors) == stubs, f"{chapter}: stub cells without an error: {sorted(stubs - set(errors))}"
    print(f"{chapter}: {elapsed:.1f} s, {len(stubs)} stubs, all reported")
    assert elapsed < 300, f"{chapter} took {elapsed:.0f} s in quick mode"  # chapters 1-3 grew (issue 13); a budget, not a benchmark
