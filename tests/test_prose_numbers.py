"""tools/prose_numbers.py: the audit list of numbers and comparisons in Markdown cells."""

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _tool():
    spec = importlib.util.spec_from_file_location("prose_numbers", REPO / "tools" / "prose_numbers.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["prose_numbers"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_numbers_outside_maths_code_and_references_are_listed_with_the_code_above():
    tool = _tool()
    cells = [
        ("code", "\nprint(gain)\n"),
        ("markdown", "## 8. Heading 3\n"
                     "The gain is about 25 nats, see section 8 (Bishop, 2006).\n"
                     "Maths $x = 10^5$ and `K = 15` and\n"
                     "$$\ny = 42\n$$\n"
                     "a formula $a +\nb = 7$ over two lines; this one is better.\n"
                     "1. a list item with nothing else\n"),
    ]
    found = tool.claims(cells)
    # the heading, maths, inline code, "section 8", the year and the list number are left out
    assert [(c.numbers, c.comparison) for c in found] == [(("25",), False), ((), True)]
    assert found[0].code_above == "print(gain)" and found[0].cell == 1
    assert found[1].line == "b = 7$ over two lines; this one is better."  # as written


def test_every_chapter_can_be_listed(capsys):
    tool = _tool()
    chapters = sorted((REPO / "chapters").glob("[0-9][0-9]_*.py"))
    assert tool.main([str(p) for p in chapters[:1]] + ["--numbers-only"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"== {chapters[0]}: ") and "lines to check" in out
