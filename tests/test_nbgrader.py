"""gae_course.assign --nbgrader: nbgrader source (instructor) versions of the chapters.

Unit tests of the metadata and of the split of the check calls, then nbgrader itself on the
real chapters: its own preprocessors (ClearSolutions and the rest of ``generate_assignment``'s
list) must accept the metadata and turn each source notebook into our student version, and the
``nbgrader generate_assignment`` command must build every chapter and record valid grade cells
in its gradebook. Nothing is executed: no kernel is started.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from gae_course import assign
from gae_course.assign import (
    ANSWER_HERE,
    CHECK_POINTS,
    make_nbgrader_notebook,
    make_student_notebook,
    nbgrader_metadata,
    split_checks,
)

# nbgrader is a dev dependency: if it is missing the tests must fail, not skip.
from nbgrader import nbgraderformat, preprocessors  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
CHAPTERS = REPO / "chapters"
CHAPTER_PATHS = sorted(CHAPTERS.glob("[0-9][0-9]_*.py"))

EXERCISE = '''\
def e_step(X, weights):
    """Docstring."""
    ### BEGIN SOLUTION
    top = X.max()
    return X - top
    ### END SOLUTION


checks.e_step(e_step)'''
EXERCISE_CODE, EXERCISE_CHECK = EXERCISE.split("\n\n\n")


def validate_cell(cell):
    nbgraderformat.MetadataValidator().validate_cell(cell)


# --- nbgrader_metadata ------------------------------------------------------------------------


def test_metadata_of_each_kind_is_what_nbgraders_toolbar_writes():
    common = {"schema_version": 3, "task": False}
    assert nbgrader_metadata("autograded answer", "ch-f") == {
        "nbgrader": {"grade": False, "solution": True, "locked": False, "grade_id": "ch-f", **common}
    }
    assert nbgrader_metadata("autograder tests", "ch-f-check", 2) == {
        "nbgrader": {"grade": True, "solution": False, "locked": True, "grade_id": "ch-f-check", "points": 2, **common}
    }
    assert nbgrader_metadata("manually graded answer", "ch-answer-1", 1) == {
        "nbgrader": {"grade": True, "solution": True, "locked": False, "grade_id": "ch-answer-1", "points": 1, **common}
    }
    assert nbgrader_metadata("read-only", "ch-setup") == {
        "nbgrader": {"grade": False, "solution": False, "locked": True, "grade_id": "ch-setup", **common}
    }


@pytest.mark.parametrize(
    "kind, cell_type, points",
    [
        ("autograded answer", "code", None),
        ("autograder tests", "code", 1),
        ("manually graded answer", "markdown", 3),
        ("read-only", "markdown", None),
        ("read-only", "code", None),
    ],
)
def test_nbgraders_validator_accepts_the_metadata(kind, cell_type, points):
    make = new_code_cell if cell_type == "code" else new_markdown_cell
    validate_cell(make("x = 1", metadata=nbgrader_metadata(kind, "ch-x", points)))


@pytest.mark.parametrize(
    "args, message",
    [
        (("autograded", "ch-f"), "unknown nbgrader cell kind"),
        (("autograded answer", "ch f"), "letters, digits"),
        (("autograded answer", ""), "letters, digits"),
        (("autograder tests", "ch-f"), "needs points"),
        (("autograder tests", "ch-f", -1), "needs points"),
        (("autograder tests", "ch-f", 1.5), "needs points"),
        (("autograded answer", "ch-f", 1), "takes no points"),
    ],
)
def test_bad_metadata_is_refused(args, message):
    with pytest.raises(ValueError, match=message):
        nbgrader_metadata(*args)


# --- split_checks -----------------------------------------------------------------------------


def test_split_takes_the_trailing_check_calls_and_drops_the_blank_lines_between():
    assert split_checks(EXERCISE) == (EXERCISE_CODE, "checks.e_step(e_step)")
    assert EXERCISE_CODE.endswith("    ### END SOLUTION")


def test_split_keeps_comments_above_the_checks_and_multi_line_calls():
    source = EXERCISE_CODE + "\n\n# run the check\nchecks.e_step(\n    e_step,\n)\nchecks.other(e_step)\n"
    assert split_checks(source) == (EXERCISE_CODE, "# run the check\nchecks.e_step(\n    e_step,\n)\nchecks.other(e_step)\n")


@pytest.mark.parametrize(
    "source",
    [
        EXERCISE_CODE,  # no check
        EXERCISE + "\nprint('done')",  # the check does not end the cell
        "def f():\n    ### BEGIN SOLUTION\n    checks.e_step(f)\n    ### END SOLUTION",  # inside the solution
        EXERCISE.replace("checks.e_step(e_step)", "mychecks.e_step(e_step)"),  # not the checks module
    ],
    ids=["no-check", "check-not-last", "inside-solution", "other-module"],
)
def test_no_split_when_the_cell_does_not_end_with_check_calls(source):
    assert split_checks(source) == (source, None)


def test_split_ignores_ipython_magics_and_keeps_them():
    source = "%matplotlib inline\n" + EXERCISE
    assert split_checks(source) == ("%matplotlib inline\n" + EXERCISE_CODE, "checks.e_step(e_step)")


# --- make_nbgrader_notebook -------------------------------------------------------------------


def _notebook():
    nb = new_notebook(
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "jupytext": {"formats": "ipynb,py:percent"},
        }
    )
    nb.cells = [
        new_markdown_cell("# Title"),
        new_code_cell("from gae_course import checks"),
        new_code_cell(EXERCISE, metadata={"tags": ["exercise"]}),
        new_code_cell("checks.e_step_again(e_step)"),  # a separate check cell, right after
        new_markdown_cell("Why?"),
        new_markdown_cell("Because the variance is **positive**.", metadata={"tags": ["solution"]}),
        new_code_cell("checks.e_step(e_step)"),  # not right after an exercise: left alone
        new_code_cell("print(1)", execution_count=3, outputs=[nbformat.v4.new_output("stream", text="1\n")]),
        new_code_cell(EXERCISE),  # the same function again: the ids stay unique
        new_markdown_cell("And why not?", metadata={"tags": ["solution"]}),
    ]
    return nb


def _kinds(nb):
    out = []
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader")
        out.append(None if meta is None else (meta["grade_id"], meta["grade"], meta["solution"], meta["locked"], meta.get("points")))
    return out


def test_nbgrader_notebook_marks_answers_and_tests_and_keeps_the_solutions():
    nb = _notebook()
    before = nbformat.writes(nb)
    source = make_nbgrader_notebook(nb, chapter="07_demo")
    assert nbformat.writes(nb) == before, "the input notebook is not modified"
    assert _kinds(source) == [
        None,
        None,
        ("07_demo-e_step", False, True, False, None),
        ("07_demo-e_step-check", True, False, True, CHECK_POINTS),  # split off the exercise cell
        ("07_demo-e_step-check-2", True, False, True, CHECK_POINTS),  # the separate check cell
        None,
        ("07_demo-answer-1", True, True, False, 1),
        None,
        None,
        ("07_demo-e_step-2", False, True, False, None),
        ("07_demo-e_step-2-check", True, False, True, CHECK_POINTS),
        ("07_demo-answer-2", True, True, False, 1),
    ]
    sources = [c.source for c in source.cells]
    assert sources[2] == sources[9] == EXERCISE_CODE, "solutions are kept"
    assert sources[3] == sources[10] == "checks.e_step(e_step)"
    assert sources[6] == "Because the variance is **positive**."
    assert source.cells[2].metadata["tags"] == ["exercise"], "other metadata is kept"
    assert "tags" not in source.cells[3].metadata
    assert source.cells[8].outputs == [] and source.cells[8].execution_count is None
    assert "jupytext" not in source.metadata, "no pairing: Jupyter must not write a .py with the solutions"
    assert source.metadata.kernelspec.language == "python"
    nbformat.validate(source)
    nbgraderformat.MetadataValidator().validate_nb(source)  # also: no duplicate grade_id


def test_nbgrader_notebook_is_deterministic():
    a, b = (make_nbgrader_notebook(_notebook(), chapter="07_demo") for _ in range(2))
    assert nbformat.writes(a) == nbformat.writes(b)
    assert len({c.id for c in a.cells}) == len(a.cells)


def test_existing_nbgrader_metadata_is_replaced_not_merged():
    nb = _notebook()
    nb.cells[0].metadata["nbgrader"] = {"grade": True, "points": 5}
    nb.cells[2].metadata["nbgrader"] = {"grade": True, "points": 5}
    source = make_nbgrader_notebook(nb, chapter="07_demo")
    assert "nbgrader" not in source.cells[0].metadata
    assert source.cells[2].metadata["nbgrader"] == nbgrader_metadata("autograded answer", "07_demo-e_step")["nbgrader"]


@pytest.mark.parametrize(
    "cell, message",
    [
        (new_markdown_cell("Mark your code with ### BEGIN SOLUTION."), "mentions a solution marker"),
        (new_code_cell("x = 1  # END SOLUTION"), "mentions a solution marker"),
        (new_markdown_cell("### BEGIN SOLUTION\nsecret\n### END SOLUTION"), "only code cells"),
        (new_code_cell(EXERCISE + "\nprint(e_step)"), "not at the end of its cell"),
        (new_code_cell("def f():\n    ### BEGIN SOLUTION\n    return 1\n"), "without a matching"),
    ],
    ids=["markdown-mention", "code-mention", "markdown-markers", "check-not-last", "unmatched"],
)
def test_what_nbgrader_would_misread_is_refused_naming_the_cell(cell, message):
    nb = _notebook()
    nb.cells.insert(1, cell)
    with pytest.raises(ValueError, match=rf"^chapters/07_demo\.py, cell 1.*{message}"):
        make_nbgrader_notebook(nb, chapter="07_demo", origin="chapters/07_demo.py")


def test_the_command_refuses_a_bad_chapter_before_writing_any(tmp_path):
    chapters, source = tmp_path / "chapters", tmp_path / "source"
    chapters.mkdir()
    (chapters / "01_ok.py").write_text("# %%\ndef f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\n")
    (chapters / "02_bad.py").write_text("# %% [markdown]\n# Put your code after BEGIN SOLUTION.\n")
    with pytest.raises(ValueError, match=r"02_bad\.py, cell 0.*mentions a solution marker"):
        assign.main([str(chapters), str(source), "--nbgrader"])
    assert not source.exists(), "nothing is written when one chapter is refused"


# --- nbgrader on the real chapters ------------------------------------------------------------


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """An nbgrader course folder whose source/ the command filled, and our student versions."""
    root = tmp_path_factory.mktemp("course")
    assert assign.main([str(CHAPTERS), str(root / "source"), "--nbgrader"]) == 0
    student = tmp_path_factory.mktemp("student")
    assert assign.main([str(CHAPTERS), str(student)]) == 0
    return root, student


def test_every_chapter_becomes_one_assignment_with_its_notebook_only(course):
    root, _ = course
    assert CHAPTER_PATHS, "no chapters found"
    assert sorted(p.name for p in (root / "source").iterdir()) == [p.stem for p in CHAPTER_PATHS]
    for chapter in CHAPTER_PATHS:
        folder = root / "source" / chapter.stem
        # any other file here would be copied into the students' release by nbgrader
        assert [p.name for p in folder.iterdir()] == [f"{chapter.stem}.ipynb"]


def test_the_source_notebooks_keep_the_chapters_and_their_solutions(course):
    root, _ = course
    for chapter in CHAPTER_PATHS:
        nb = nbformat.read(root / "source" / chapter.stem / f"{chapter.stem}.ipynb", as_version=4)
        assert "jupytext" not in nb.metadata
        # joining each check cell back to its exercise gives the chapter's code, solutions included
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        original = "\n".join(c.source for c in jupytext.read(chapter).cells if c.cell_type == "code")
        assert re.sub(r"\s+", " ", code) == re.sub(r"\s+", " ", original), chapter.name
        answers = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")]
        assert answers and all("### BEGIN SOLUTION" in c.source for c in answers if c.cell_type == "code")


def test_the_command_is_deterministic(course, tmp_path):
    root, _ = course
    assert assign.main([str(CHAPTERS), str(tmp_path), "--nbgrader"]) == 0
    for chapter in CHAPTER_PATHS:
        name = Path(chapter.stem) / f"{chapter.stem}.ipynb"
        assert (tmp_path / name).read_bytes() == (root / "source" / name).read_bytes(), chapter.name


STUB = "<<stub>>"
# nbgrader's own student-version preprocessors, in generate_assignment's order (without the
# database ones, SaveCells, and the header/footer and autotest ones, which have nothing to do).
GENERATE = [
    preprocessors.LockCells,
    lambda: preprocessors.ClearSolutions(code_stub={"python": STUB}, text_stub=ANSWER_HERE),
    preprocessors.ClearOutput,
    preprocessors.CheckCellMetadata,
    preprocessors.ComputeChecksums,
    preprocessors.ClearHiddenTests,
    preprocessors.ClearMarkScheme,
    preprocessors.ComputeChecksums,
    preprocessors.CheckCellMetadata,
]
OUR_STUB = re.compile(r'^([ \t]*)raise NotImplementedError\("write [^"\n]*"\)$', re.MULTILINE)


def nbgrader_student_version(nb):
    resources = {}
    for make in GENERATE:
        nb, resources = make().preprocess(nb, resources)
    return nb


def merge_into(ours, cells):
    """Our student cells matched with nbgrader's: [(our cell, its source with nbgrader's stub,
    [nbgrader's cells])]. Where we have one exercise cell that ends with its check, nbgrader has
    two (the exercise, then the test cell split off it)."""
    pairs, j = [], 0
    for mine in ours:
        text = OUR_STUB.sub(lambda m: m.group(1) + STUB, mine.source)
        group = cells[j: j + 1]
        if group and group[0].source != text and j + 1 < len(cells):
            first, second = cells[j], cells[j + 1]
            gap = text[len(first.source): len(text) - len(second.source)]
            if text.startswith(first.source) and text.endswith(second.source) and re.fullmatch(r"\s*\n\s*", gap):
                group = [first, second]
        assert group, "nbgrader's version has fewer cells than ours"
        j += len(group)
        pairs.append((mine, text, group))
    assert j == len(cells), "nbgrader's version has cells ours does not"
    return pairs


def test_nbgraders_preprocessors_make_our_student_versions(course):
    root, student = course
    for chapter in CHAPTER_PATHS:
        source = nbformat.read(root / "source" / chapter.stem / f"{chapter.stem}.ipynb", as_version=4)
        nbgraderformat.MetadataValidator().validate_nb(source)  # unique ids, points, schema v3
        theirs = nbgrader_student_version(source)  # raises on a solution region outside a solution cell
        ours = nbformat.read(student / f"{chapter.stem}.ipynb", as_version=4)
        stubbed = 0
        for mine, text, group in merge_into(ours.cells, theirs.cells):
            assert mine.cell_type == group[0].cell_type, (chapter.name, text[:60])
            if len(group) == 1:
                assert group[0].source == text, (chapter.name, text[:60])
            else:  # an exercise and the test cell split off it
                test = group[1]
                assert test.metadata.nbgrader.grade and test.metadata.nbgrader.locked, (chapter.name, text[:60])
                assert re.fullmatch(r"checks\.\w+\(\w+\)", test.source), test.source
            # nbgrader stubbed exactly where we did, and only in solution cells
            assert (STUB in text) == (STUB in group[0].source) == bool(OUR_STUB.search(mine.source))
            if STUB in text:
                stubbed += 1
                assert group[0].metadata.nbgrader.solution
            assert "BEGIN SOLUTION" not in group[0].source
        assert stubbed == sum("### BEGIN SOLUTION" in c.source for c in jupytext.read(chapter).cells), chapter.name
        # every exercise is followed by a locked, graded test cell; the ids are unique
        graded = [c.metadata.nbgrader for c in theirs.cells if "nbgrader" in c.metadata]
        ids = [m.grade_id for m in graded]
        assert len(ids) == len(set(ids))
        assert sum(m.grade for m in graded) >= stubbed
        assert all(m.locked and not m.solution and m.points == CHECK_POINTS for m in graded if m.grade)


def test_nbgrader_generate_assignment_builds_every_chapter(course):
    """The real command, with its gradebook: what a teacher runs (see docs/teaching.md)."""
    root, _ = course
    env = dict(os.environ)
    # nbgrader runs the `alembic` command installed beside it to set up its database
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    done = subprocess.run(
        [sys.executable, "-m", "nbgrader", "generate_assignment", "*", "--force"],
        cwd=root, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ERROR" not in done.stderr, done.stderr[-3000:]
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gradebook:
        for chapter in CHAPTER_PATHS:
            released = root / "release" / chapter.stem / f"{chapter.stem}.ipynb"
            text = released.read_text()
            assert "BEGIN SOLUTION" not in text and "raise NotImplementedError()" in text
            source = nbformat.read(root / "source" / chapter.stem / f"{chapter.stem}.ipynb", as_version=4)
            expected = {
                c.metadata.nbgrader.grade_id: c.metadata.nbgrader.points
                for c in source.cells
                if c.metadata.get("nbgrader", {}).get("grade")
            }
            notebook = gradebook.find_notebook(chapter.stem, chapter.stem)
            assert {c.name: c.max_score for c in notebook.grade_cells} == expected
            assert {c.name for c in notebook.solution_cells} == {
                c.metadata.nbgrader.grade_id for c in source.cells if c.metadata.get("nbgrader", {}).get("solution")
            }
