"""Write the student versions of the chapters (solutions out, clear stubs in), and their
nbgrader source versions (solutions kept, nbgrader cell metadata).

    python -m gae_course.assign chapters/ student/      # or: make student

For every ``chapters/NN_*.py`` (the reviewed py:percent source, read with Jupytext) this
writes ``student/NN_*.ipynb`` and ``student/NN_*.py``, a Jupytext pair without outputs, where

- each ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` block of a code cell, markers
  included, becomes one line at the marker's indentation::

      raise NotImplementedError("write e_step here, then run the check below")

  (the name is that of the enclosing ``def``), so the check cell after it says
  "e_step is not implemented yet" and the later cells, which use the package's functions,
  still run;
- each Markdown cell tagged ``solution`` becomes "*Your answer here.*";
- everything else is kept as it is.

The output is deterministic: the same chapters give byte-identical files (cell ids are
derived from the cell's position and source, not drawn at random). A ``BEGIN`` without its
``END``, an ``END`` without a ``BEGIN``, or a nested ``BEGIN`` is refused with a
:class:`ValueError` naming the file and the line.

Instructor (nbgrader source) versions
-------------------------------------

    python -m gae_course.assign chapters/ nbgrader-course/source/ --nbgrader   # make nbgrader-source

writes ``nbgrader-course/source/NN_*/NN_*.ipynb``: one nbgrader assignment per chapter, named
by its stem, inside the ``source/`` folder of an nbgrader course directory. The solutions are
kept (this is the instructor's version; ``nbgrader generate_assignment`` makes the student's),
and cells get nbgrader's cell metadata (schema version 3, as nbgrader's "Create Assignment"
toolbar writes it):

- a code cell with solution blocks is an *autograded answer* (``solution``, not graded), with
  ``grade_id`` ``<chapter>-<function>`` (``01_em_gmm-e_step``);
- the check calls that end such a cell (``checks.e_step(e_step)``, after the last ``END``
  marker) are split into a cell of their own, and that cell, like any code cell right after
  the exercise (or its split-off checks) that calls ``checks.<name>(...)``, is a locked
  *autograder test* worth
  :data:`CHECK_POINTS` point, ``grade_id`` ``<chapter>-<function>-check``: a check passes or
  raises, so nbgrader gives all or nothing;
- a Markdown cell tagged ``solution`` is a *manually graded answer* worth
  :data:`ANSWER_POINTS` point, ``grade_id`` ``<chapter>-answer-<k>`` (k-th in the chapter);
- every other cell is left as it is (not locked: readers may change the settings cells).

A repeated ``grade_id`` gets ``-2``, ``-3``, ... An exercise cell that calls a check anywhere
but at its end, or any cell where nbgrader would read a marker we do not (nbgrader takes any
line *containing* "BEGIN SOLUTION"), is refused with a :class:`ValueError` naming the cell.

Only ``.ipynb`` is written, with no Jupytext pairing: nbgrader reads notebooks only, and it
copies every other file of ``source/<assignment>/`` into the students' release, so a ``.py``
twin (or a pairing that makes Jupyter write one) would hand out the solutions. The output is
deterministic, as for the student versions.
"""

from __future__ import annotations

import argparse
import ast
import copy
import hashlib
import re
import sys
from pathlib import Path

BEGIN_MARKER = "### BEGIN SOLUTION"
END_MARKER = "### END SOLUTION"
ANSWER_HERE = "*Your answer here.*"
SOLUTION_TAG = "solution"
CHAPTER_GLOB = "[0-9][0-9]_*.py"
PAIRED_FORMATS = "ipynb,py:percent"
NBGRADER_SCHEMA_VERSION = 3
# A check cell passes or raises, so nbgrader can only give all or nothing: one point each,
# which a teacher can change in nbgrader's Create Assignment toolbar.
CHECK_POINTS = 1
ANSWER_POINTS = 1
CHECKS_MODULE = "checks"  # the check cells call checks.<name>(...) (gae_course.checks)

# A marker is a comment line of its own: "### BEGIN SOLUTION" (any number of '#', any indent).
_BEGIN = re.compile(r"^([ \t]*)#+[ \t]*BEGIN SOLUTION[ \t]*$")
_END = re.compile(r"^([ \t]*)#+[ \t]*END SOLUTION[ \t]*$")
_DEF = re.compile(r"^([ \t]*)(?:async[ \t]+)?def[ \t]+([A-Za-z_][A-Za-z0-9_]*)")


def _indent_width(indent: str) -> int:
    return len(indent.expandtabs(8))


def _enclosing_def(lines: list[str], index: int, indent: str) -> str | None:
    """Name of the innermost ``def`` above ``lines[index]`` that is less indented, or None."""
    width = _indent_width(indent)
    for line in reversed(lines[:index]):
        match = _DEF.match(line)
        if match and _indent_width(match.group(1)) < width:
            return match.group(2)
    return None


def hint_for(name: str | None) -> str:
    """The one-line hint of a stub."""
    if name is None:
        return "write your solution here, then run the check below"
    return f"write {name} here, then run the check below"


def _line_ending(line: str) -> str:
    stripped = line.rstrip("\r\n")
    return line[len(stripped):]


def solution_blocks(source: str, origin: str = "<source>", first_line: int = 1) -> list[tuple[int, int]]:
    """(begin, end) line indices (0-based, inclusive) of every solution block in ``source``.

    Raises :class:`ValueError` naming ``origin`` and the line (numbered from ``first_line``)
    for a BEGIN without END, an END without BEGIN, or a BEGIN inside an open block.
    """
    blocks, open_at = [], None
    for i, line in enumerate(source.splitlines()):
        if _BEGIN.match(line):
            if open_at is not None:
                raise ValueError(
                    f"{origin}, line {first_line + i}: {BEGIN_MARKER!r} inside the solution block "
                    f"opened at line {first_line + open_at} (blocks cannot be nested; "
                    f"close the first with {END_MARKER!r})"
                )
            open_at = i
        elif _END.match(line):
            if open_at is None:
                raise ValueError(
                    f"{origin}, line {first_line + i}: {END_MARKER!r} without a {BEGIN_MARKER!r} before it"
                )
            blocks.append((open_at, i))
            open_at = None
    if open_at is not None:
        raise ValueError(
            f"{origin}, line {first_line + open_at}: {BEGIN_MARKER!r} without a matching {END_MARKER!r}"
        )
    return blocks


def stub_solutions(source: str, origin: str = "<source>", first_line: int = 1) -> str:
    """``source`` with each solution block (markers included) replaced by a one-line stub.

    The stub has the BEGIN marker's indentation, the END marker's line ending, and raises
    ``NotImplementedError`` with a hint naming the enclosing function. Every other line is
    kept as it is. Unmatched or nested markers raise :class:`ValueError` (see
    :func:`solution_blocks`).
    """
    blocks = solution_blocks(source, origin, first_line)
    if not blocks:
        return source
    lines = source.splitlines(keepends=True)
    out, position = [], 0
    for begin, end in blocks:
        out += lines[position:begin]
        indent = _BEGIN.match(lines[begin].rstrip("\r\n")).group(1)
        hint = hint_for(_enclosing_def(lines, begin, indent))
        out.append(f'{indent}raise NotImplementedError("{hint}")' + _line_ending(lines[end]))
        position = end + 1
    out += lines[position:]
    return "".join(out)


def _is_solution_markdown(cell) -> bool:
    return cell.cell_type == "markdown" and SOLUTION_TAG in (cell.get("metadata", {}).get("tags") or [])


def _cell_id(index: int, cell) -> str:
    digest = hashlib.sha1(f"{index}\n{cell.cell_type}\n{cell.source}".encode()).hexdigest()
    return digest[:8]


def make_student_notebook(nb, origin: str = "<notebook>"):
    """A student copy of notebook ``nb`` (``nb`` itself is not changed).

    Code cells get their solution blocks stubbed (:func:`stub_solutions`), Markdown cells
    tagged ``solution`` read "*Your answer here.*", outputs and execution counts are
    cleared, and cell ids are made deterministic. Other cells keep their source and metadata.
    """
    student = copy.deepcopy(nb)
    for i, cell in enumerate(student.cells):
        if cell.cell_type == "code":
            cell.source = stub_solutions(cell.source, origin=f"{origin}, cell {i}")
            cell.outputs = []
            cell.execution_count = None
        elif _is_solution_markdown(cell):
            cell.source = ANSWER_HERE
        if "id" in cell or student.get("nbformat_minor", 0) >= 5:
            cell.id = _cell_id(i, cell)
    return student


def _check_file_markers(path: Path) -> None:
    """Refuse unmatched markers with the line of the .py file itself (clearer than a cell's)."""
    solution_blocks(path.read_text(encoding="utf-8"), origin=str(path))


def write_student_version(py_path: Path, out_dir: Path) -> tuple[Path, Path]:
    """Write ``out_dir/<stem>.ipynb`` and ``out_dir/<stem>.py`` for one chapter; both paths."""
    import jupytext
    import nbformat

    py_path, out_dir = Path(py_path), Path(out_dir)
    _check_file_markers(py_path)
    nb = jupytext.read(py_path)
    student = make_student_notebook(nb, origin=str(py_path))
    student.metadata.setdefault("jupytext", {})["formats"] = PAIRED_FORMATS
    out_dir.mkdir(parents=True, exist_ok=True)
    ipynb_path, student_py = out_dir / f"{py_path.stem}.ipynb", out_dir / f"{py_path.stem}.py"
    nbformat.validate(student)
    jupytext.write(student, ipynb_path, fmt="ipynb")
    jupytext.write(student, student_py, fmt="py:percent")
    return ipynb_path, student_py


# --- nbgrader source versions ------------------------------------------------------------------


def nbgrader_metadata(kind: str, grade_id: str, points: int | None = None) -> dict:
    """nbgrader's cell metadata (schema version 3) for one kind of cell.

    ``kind`` is one of nbgrader's cell types: ``"autograded answer"`` (solution, not graded),
    ``"autograder tests"`` (graded, locked: nbgrader puts the source back before grading),
    ``"manually graded answer"`` (solution and graded) or ``"read-only"`` (locked).
    ``points`` is required for the graded kinds and refused for the others.
    """
    flags = {
        "autograded answer": dict(grade=False, solution=True, locked=False),
        "autograder tests": dict(grade=True, solution=False, locked=True),
        "manually graded answer": dict(grade=True, solution=True, locked=False),
        "read-only": dict(grade=False, solution=False, locked=True),
    }
    if kind not in flags:
        raise ValueError(f"unknown nbgrader cell kind {kind!r}; expected one of {sorted(flags)}")
    if not re.fullmatch(r"[A-Za-z0-9_\-]+", grade_id):
        raise ValueError(f"grade_id {grade_id!r} must be letters, digits, '_' and '-' only (nbgrader's rule)")
    meta = dict(flags[kind], grade_id=grade_id, schema_version=NBGRADER_SCHEMA_VERSION, task=False)
    if meta["grade"]:
        if not isinstance(points, int) or isinstance(points, bool) or points < 0:
            raise ValueError(f"a graded cell needs points, a whole number >= 0 (got {points!r})")
        meta["points"] = points
    elif points is not None:
        raise ValueError(f"a {kind!r} cell is not graded: it takes no points")
    return {"nbgrader": meta}


def _check_name(statement: ast.stmt) -> str | None:
    """``name`` if ``statement`` is the call ``checks.name(...)``, else None."""
    if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call):
        func = statement.value.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == CHECKS_MODULE:
            return func.attr
    return None


def _parse(source: str, origin: str) -> ast.Module:
    # IPython magics and shell lines are blanked (not removed), so line numbers still match.
    python = re.sub(r"(?m)^[ \t]*[%!].*$", "", source)
    try:
        return ast.parse(python)
    except SyntaxError as error:
        raise ValueError(f"{origin}: cannot parse the cell to find its check calls: {error}") from None


def calls_checks(source: str, origin: str = "<source>") -> bool:
    """Whether ``source`` calls ``checks.<name>(...)`` at the top level."""
    return any(_check_name(s) is not None for s in _parse(source, origin).body)


def split_checks(source: str, origin: str = "<source>") -> tuple[str, str | None]:
    """``(exercise, checks)``: the cell ``source`` with its trailing check calls split off.

    The checks are the top-level ``checks.<name>(...)`` statements after the last ``END``
    marker that end the cell, with the comments just above them; ``source`` is ``exercise``,
    some blank lines, then ``checks``. ``checks`` is None when the cell ends otherwise.
    """
    blocks = solution_blocks(source, origin)
    last_end = blocks[-1][1] if blocks else -1
    body = _parse(source, origin).body
    first = len(body)
    while first > 0 and _check_name(body[first - 1]) is not None and body[first - 1].lineno - 1 > last_end:
        first -= 1
    if first == len(body):
        return source, None
    lines = source.splitlines(keepends=True)
    # the exercise ends with its last statement, or with the END marker (a comment, not in the AST)
    end = max([last_end] + [s.end_lineno - 1 for s in body[:first]])
    if end < 0:
        return source, None  # nothing but checks: no exercise to split them from
    rest = lines[end + 1:]
    while rest and not rest[0].strip():  # the blank lines between the two go
        rest.pop(0)
    return "".join(lines[: end + 1]).rstrip("\r\n"), "".join(rest)


def _safe_id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_\-]+", "_", text).strip("_") or "x"


def _unique(grade_id: str, taken: set[str]) -> str:
    candidate, n = grade_id, 2
    while candidate in taken:
        candidate, n = f"{grade_id}-{n}", n + 1
    taken.add(candidate)
    return candidate


def _exercise_name(source: str, origin: str) -> str | None:
    begin = solution_blocks(source, origin)[0][0]
    lines = source.splitlines()
    return _enclosing_def(lines, begin, _BEGIN.match(lines[begin]).group(1))


def _refuse_stray_markers(cell, origin: str) -> None:
    """nbgrader takes any line *containing* "BEGIN SOLUTION" for a marker; we only take marker
    lines. Refuse a cell where the two would disagree, rather than let nbgrader cut it."""
    for i, line in enumerate(cell.source.splitlines()):
        if ("BEGIN SOLUTION" in line and not _BEGIN.match(line)) or ("END SOLUTION" in line and not _END.match(line)):
            raise ValueError(
                f"{origin}, line {i + 1} of the cell: {line.strip()!r} mentions a solution marker "
                "without being one; nbgrader would take it for one. Reword it."
            )
        if cell.cell_type != "code" and (_BEGIN.match(line) or _END.match(line)):
            raise ValueError(f"{origin}: solution markers in a {cell.cell_type} cell; only code cells have them")


def make_nbgrader_notebook(nb, chapter: str, origin: str = "<notebook>"):
    """The nbgrader source (instructor) version of notebook ``nb``; ``nb`` is not changed.

    ``chapter`` (the file's stem, e.g. ``"01_em_gmm"``) prefixes every ``grade_id``. Solutions
    are kept; see the module docstring for the metadata each cell gets. Outputs and execution
    counts are cleared, the Jupytext metadata is dropped (no pairing) and cell ids are
    deterministic. Raises :class:`ValueError` for unmatched markers or marker-like text.
    """
    from nbformat import from_dict

    source_nb = copy.deepcopy(nb)
    prefix = _safe_id(chapter)
    cells, taken, answers = [], set(), 0
    exercise_id = None  # grade_id of the exercise whose check cells may follow
    for i, cell in enumerate(source_nb.cells):
        where = f"{origin}, cell {i}"
        _refuse_stray_markers(cell, where)
        metadata = {k: v for k, v in cell.get("metadata", {}).items() if k != "nbgrader"}
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        if cell.cell_type == "code" and solution_blocks(cell.source, where):
            name = _exercise_name(cell.source, where)
            exercise_id = _unique(f"{prefix}-{_safe_id(name) if name else 'exercise'}", taken)
            exercise, checks_source = split_checks(cell.source, where)
            if checks_source is None and calls_checks(exercise, where):
                raise ValueError(
                    f"{where}: the exercise {name or ''} calls checks, but not at the end of its cell; "
                    "end the cell with the check calls, so that they can become a locked test cell"
                )
            cell.source, cell.metadata = exercise, {**metadata, **nbgrader_metadata("autograded answer", exercise_id)}
            cells.append(cell)
            if checks_source is not None:
                test = copy.deepcopy(cell)
                test.source = checks_source
                test.metadata = nbgrader_metadata(
                    "autograder tests", _unique(f"{exercise_id}-check", taken), CHECK_POINTS
                )
                cells.append(test)
            continue
        if exercise_id is not None and cell.cell_type == "code" and calls_checks(cell.source, where):
            grading = nbgrader_metadata("autograder tests", _unique(f"{exercise_id}-check", taken), CHECK_POINTS)
            cell.metadata = {**metadata, **grading}
        elif _is_solution_markdown(cell):
            answers += 1
            grading = nbgrader_metadata(
                "manually graded answer", _unique(f"{prefix}-answer-{answers}", taken), ANSWER_POINTS
            )
            cell.metadata = {**metadata, **grading}
            exercise_id = None
        else:
            cell.metadata = metadata
            exercise_id = None
        cells.append(cell)
    source_nb.cells = cells
    for i, cell in enumerate(source_nb.cells):
        if "id" in cell or source_nb.get("nbformat_minor", 0) >= 5:
            cell.id = _cell_id(i, cell)
    source_nb.metadata.pop("jupytext", None)
    return from_dict(source_nb)  # NotebookNode all the way down: nbgrader reads cell.metadata.nbgrader


def write_nbgrader_source(py_path: Path, source_dir: Path) -> Path:
    """Write ``source_dir/<stem>/<stem>.ipynb`` (an nbgrader assignment) for one chapter."""
    import jupytext
    import nbformat

    py_path = Path(py_path)
    _check_file_markers(py_path)
    nb = make_nbgrader_notebook(jupytext.read(py_path), chapter=py_path.stem, origin=str(py_path))
    nbformat.validate(nb)
    out_dir = Path(source_dir) / py_path.stem
    out_dir.mkdir(parents=True, exist_ok=True)
    ipynb_path = out_dir / f"{py_path.stem}.ipynb"
    jupytext.write(nb, ipynb_path, fmt="ipynb")
    return ipynb_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gae_course.assign",
        description=(
            "Write student versions (solutions replaced by stubs) of every chapter, or with "
            "--nbgrader the nbgrader source versions (solutions kept, nbgrader cell metadata)."
        ),
    )
    parser.add_argument("chapters_dir", type=Path, help="folder of the chapters NN_*.py")
    parser.add_argument(
        "out_dir",
        type=Path,
        help="folder to write NN_*.ipynb and NN_*.py into; with --nbgrader, the source/ folder "
        "of an nbgrader course (gets NN_*/NN_*.ipynb)",
    )
    parser.add_argument(
        "--nbgrader",
        action="store_true",
        help="write nbgrader source notebooks (the instructor version, one assignment per chapter)",
    )
    args = parser.parse_args(argv)

    chapters = sorted(args.chapters_dir.glob(CHAPTER_GLOB))
    if not chapters:
        print(f"no chapters ({CHAPTER_GLOB}) in {args.chapters_dir}", file=sys.stderr)
        return 1
    # Check every chapter before writing any, so a bad marker leaves no half-written folder.
    import jupytext

    for path in chapters:
        _check_file_markers(path)
        if args.nbgrader:
            make_nbgrader_notebook(jupytext.read(path), chapter=path.stem, origin=str(path))
    for path in chapters:
        if args.nbgrader:
            print(f"wrote {write_nbgrader_source(path, args.out_dir)}")
        else:
            ipynb_path, py_path = write_student_version(path, args.out_dir)
            print(f"wrote {ipynb_path} and {py_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
