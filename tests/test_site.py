"""tools/build_site.py: the website made from the executed notebooks (no browser here).

The browser checks (maths typeset, no request leaves the machine, screenshots) are in
browser_tests/, run by `make test-browser`.
"""

import importlib.util
import json
import re
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest

REPO = Path(__file__).resolve().parent.parent


def _load(name):
    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


build_site = _load("build_site")

README = """\
# A course

Intro with [chapter one](chapters/01_a.py) and [the guide](docs/guide.md).

```bash
make test
```

## Chapters

| # | chapter | what you learn | full run (2 CPU cores) | quick run |
|---|---|---|---|---|
| 1 | [`01_a`](chapters/01_a.py) | sums, $\\pi_k$ | 49 s | ~20 s |

Each chapter opens with goals.

## Results

| x | y |
|---|---|
| a | **0.98** |

### A subsection

## Data

Files in `data/`.
"""


def test_readme_sections_and_links():
    title, intro, sections = build_site.readme_sections(README)
    assert title == "A course" and intro.startswith("Intro with")
    assert list(sections) == ["Chapters", "Results", "Data"]
    linked = build_site.rewrite_links(intro, ["01_a"])
    assert "[chapter one](01_a.ipynb)" in linked
    assert "the guide (`docs/guide.md` in the repository)" in linked  # no dead link
    assert build_site.rewrite_links("[x](https://example.org)", []) == "[x](https://example.org)"


def test_chapters_table_adds_this_build():
    _, _, sections = build_site.readme_sections(README)
    results = {"01_a": {"runtime_s": 12.3, "mode": "quick"}}
    table = build_site.chapters_table(sections["Chapters"], [("01_a", "Sums"), ("02_b", "B")], results)
    rows = table.splitlines()
    assert rows[2] == "| 1 | [Sums](01_a.ipynb) | sums, $\\pi_k$ | 49 s | 12 s, quick mode |"
    assert rows[3] == "| 2 | [B](02_b.ipynb) |  |  | not run |"


def test_first_sentence_is_plain_text():
    assert build_site.first_sentence("## Title\n\nThe curve of $x$ rises. Then more.") == "Title The curve of x rises."


def _notebook_with_outputs():
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Chapter A\n\nIntro."),
        nbformat.v4.new_code_cell("plot()", outputs=[
            nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"},
                                   metadata={"course": {"alt": "Loss against epochs"}}),
        ]),
        nbformat.v4.new_code_cell("plot2()", outputs=[
            nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo="}),
        ]),
        nbformat.v4.new_markdown_cell("The second figure shows noise. More text."),
        nbformat.v4.new_code_cell("for i in tqdm(...)", outputs=[
            nbformat.v4.new_output("display_data", data={
                "application/vnd.jupyter.widget-view+json": {"model_id": "box", "version_major": 2, "version_minor": 0},
                "text/plain": "HBox(children=(...))"}),
        ]),
    ]
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {
        "box": {"state": {"children": ["IPY_MODEL_left", "IPY_MODEL_bar", "IPY_MODEL_right"]}},
        "left": {"state": {"value": "epochs: 100%"}},
        "bar": {"state": {"value": 5, "max": 10}},
        "right": {"state": {"value": " 5/10 [00:01&lt;00:00]"}},
    }}}
    return nb


def test_prepare_notebook_alt_text_widgets_downloads():
    nb = json.loads(nbformat.writes(_notebook_with_outputs()))
    page, counts = build_site.prepare_notebook(nb, "01_a", "01_a.py")
    assert counts == {"figures": 2, "alt_from_title": 1, "alt_from_text": 1, "widgets": 1}
    cells = page["cells"]
    assert "download" in cells[1]["source"] and "01_a.ipynb" in cells[1]["source"] and "01_a.py" in cells[1]["source"]
    assert cells[2]["metadata"]["mystnb"]["image"]["alt"] == "Loss against epochs"
    assert cells[3]["metadata"]["mystnb"]["image"]["alt"] == "The second figure shows noise."
    bar = cells[5]["outputs"]
    assert bar[0]["output_type"] == "stream"
    assert bar[0]["text"].startswith("epochs: 100% |" + "█" * 10 + " " * 10 + "| 5/10 [00:01<00:00]")
    assert "widgets" not in page["metadata"]
    assert "widgets" in nb["metadata"]  # the input is not modified


CHAPTER = """\
# %% [markdown]
# # Chapter A
#
# The weights $\\pi_k$ sum to one:
#
# $$\\sum_k \\pi_k = 1.$$

# %%
print("hello")

# %% [markdown]
# ## Check yourself
#
# 1. Why?
#
# <details><summary>Answers</summary>
#
# 1. Because $x = 1$.
#
# </details>
"""


def test_a_small_site_builds_offline(tmp_path):
    """Two chapters' worth of site: pages, downloads, folded answers, local MathJax, no URL loaded."""
    build, chapters = tmp_path / "build", tmp_path / "chapters"
    build.mkdir()
    chapters.mkdir()
    nb = jupytext.reads(CHAPTER, fmt="py:percent")
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="hello\n")]
    nbformat.write(nb, build / "01_a.ipynb")
    (chapters / "01_a.py").write_text(CHAPTER)
    (build / "results.json").write_text(json.dumps({"01_a": {"runtime_s": 3.0, "mode": "quick"}}))

    index = build_site.build(build, build / "site", chapters, REPO / "README.md")

    site = build / "site"
    assert index == site / "index.html" and index.exists()
    page = (site / "01_a.html").read_text()
    assert re.search(r"<details>\s*<summary>Answers</summary>", page) and "<details open" not in page
    assert 'src="_static/mathjax/tex-svg.js' in page and (site / "_static" / "mathjax" / "tex-svg.js").exists()
    # lazy typesetting: the configuration loads ui/lazy, and the file is in the site
    assert '"load": ["ui/lazy"]' in page and (site / "_static" / "mathjax" / "ui" / "lazy.js").exists()
    downloads = re.findall(r'href="(_downloads/[^"]+)"', page)
    assert {Path(d).name for d in downloads} >= {"01_a.ipynb", "01_a.py"}
    assert all((site / d).exists() for d in downloads)
    assert "01_a.html" in index.read_text() and "3 s, quick mode" in index.read_text()
    for html in site.glob("*.html"):
        loaded = re.findall(r'<(?:script|link|img)[^>]+(?:src|href)="(https?:[^"]+)"', html.read_text())
        assert not loaded, f"{html.name} loads {loaded}"


def test_no_executed_chapters_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="no executed chapters"):
        build_site.stage(tmp_path, tmp_path, REPO / "README.md")


def test_a_progress_bar_without_saved_widget_state_keeps_its_multiline_text():
    # A chapter that fails mid-run is saved without widget state, and nbformat may keep
    # text/plain as a list of lines: the page keeps that text (it crashed on the list).
    nb = json.loads(nbformat.writes(_notebook_with_outputs()))
    del nb["metadata"]["widgets"]
    nb["cells"][4]["outputs"][0]["data"]["text/plain"] = ["epochs: 100%|#####| ", "10/10"]
    page, counts = build_site.prepare_notebook(nb, "01_a", None)
    assert counts["widgets"] == 1
    assert page["cells"][5]["outputs"][0]["text"] == "epochs: 100%|#####| 10/10\n"
