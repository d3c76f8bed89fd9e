"""List the numbers and comparisons in each chapter's Markdown cells, to audit the prose.

The course's rule: a number, ranking or "we see that" in a Markdown cell is printed by the
code cell just above it and asserted in full mode, or the sentence says what to look for
without a number. This script does not judge; it lists every Markdown line that holds a
number or a comparison word (maths between ``$...$`` and ``$$...$$``, inline code,
headings and references such as "section 8" or a year left out), each with the cell number and the first line of the code cell above, so a
reviewer can go through them one by one:

    python tools/prose_numbers.py chapters/01_em_gmm.py
    python tools/prose_numbers.py chapters/0[1-3]_*.py --numbers-only
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import jupytext

NUMBER = re.compile(r"(?<![\w.])[-+−]?\d[\d,]*(\.\d+)?(?:[eE][-+]?\d+)?%?(?![\w])")
COMPARISON = re.compile(
    r"\b(more|less|fewer|higher|lower|larger|smaller|better|worse|best|worst|most|least|"
    r"faster|slower|above|below|grows?|rises?|falls?|drops?|we see)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Claim:
    """One Markdown line that states a number or a comparison."""

    cell: int  # index of the Markdown cell in the notebook
    line: str  # the line as written
    numbers: tuple  # the numbers found in it (outside maths and code)
    comparison: bool  # a comparison word appears in it
    code_above: str  # first line of the nearest code cell above ('' if none)


# Numbers that are references, not claims: "section 8", "chapter 4 and 5", "Exercise 2",
# "(Arthur and Vassilvitskii, 2007)", a numbered list item "1. ".
REFERENCE = re.compile(
    r"\b(?:sections?|chapters?|exercises?|answers?|eqs?\.|equations?)\s+\d+(?:\.\d+)*"
    r"(?:\s*(?:,|and|to|-)\s*\d+)*|\b(?:19|20)\d\d\b|^\s*\d+\.\s",
    re.IGNORECASE,
)


def _without_maths(source):
    """The Markdown with $$...$$ and $...$ blanked out (their line breaks kept)."""
    def blank(match):
        return "\n" * match.group(0).count("\n")

    source = re.sub(r"\$\$.*?\$\$", blank, source, flags=re.DOTALL)
    return re.sub(r"\$[^$]*\$", lambda m: " " + blank(m), source, flags=re.DOTALL)


def claims(cells):
    """Claims in a list of (cell_type, source) pairs, in order.

    Parameters
    ----------
    cells : list of (str, str)
        ``("markdown" | "code", source)`` for each cell.

    Returns
    -------
    list of Claim
    """
    found, code_above = [], ""
    for index, (kind, source) in enumerate(cells):
        if kind == "code":
            code_above = next((s for s in source.splitlines() if s.strip()), "")
            continue
        if kind != "markdown":
            continue
        original = source.splitlines()
        for number, line in enumerate(_without_maths(source).splitlines()):
            if line.lstrip().startswith("#"):
                continue  # a heading
            text = REFERENCE.sub(" ", re.sub(r"`[^`]*`", " ", line))
            numbers = tuple(m.group(0) for m in NUMBER.finditer(text))
            comparison = bool(COMPARISON.search(text))
            if numbers or comparison:
                found.append(Claim(index, original[number], numbers, comparison, code_above))
    return found


def notebook_cells(path):
    """(cell_type, source) of every cell of a paired .py or .ipynb chapter."""
    notebook = jupytext.read(path)
    return [(cell.cell_type, cell.source) for cell in notebook.cells]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chapters", nargs="+", type=Path)
    parser.add_argument("--numbers-only", action="store_true",
                        help="leave out lines whose only claim is a comparison word")
    args = parser.parse_args(argv)
    for path in args.chapters:
        listed = [c for c in claims(notebook_cells(path))
                  if c.numbers or not args.numbers_only]
        print(f"== {path}: {len(listed)} lines to check")
        last_cell = None
        for claim in listed:
            if claim.cell != last_cell:
                print(f"-- markdown cell {claim.cell}, below code: {claim.code_above[:70]!r}")
                last_cell = claim.cell
            marks = ", ".join(claim.numbers) + (" [comparison]" if claim.comparison else "")
            print(f"   {claim.line.strip()}\n      -> {marks}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
