"""Write the student versions of the chapters: solutions out, clear stubs in.

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

The markers are nbgrader's, so the chapters can also be fed to nbgrader.
"""

from __future__ import annotations

import argparse
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gae_course.assign",
        description="Write student versions (solutions replaced by stubs) of every chapter.",
    )
    parser.add_argument("chapters_dir", type=Path, help="folder of the chapters NN_*.py")
    parser.add_argument("student_dir", type=Path, help="folder to write NN_*.ipynb and NN_*.py into")
    args = parser.parse_args(argv)

    chapters = sorted(args.chapters_dir.glob(CHAPTER_GLOB))
    if not chapters:
        print(f"no chapters ({CHAPTER_GLOB}) in {args.chapters_dir}", file=sys.stderr)
        return 1
    # Check every chapter before writing any, so a bad marker leaves no half-written folder.
    for path in chapters:
        _check_file_markers(path)
    for path in chapters:
        ipynb_path, py_path = write_student_version(path, args.student_dir)
        print(f"wrote {ipynb_path} and {py_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
