"""Build the course's website from the executed notebooks in ``build/``: ``make site``.

``tools/run_course.py`` ends with this step; ``make site`` runs it alone. Nothing is executed
again: the notebooks are read with their outputs. The steps:

1. a staging folder ``<build>/site-src/`` receives the Sphinx configuration and static files
   of ``book/``, a landing page made from ``book/index.md``, the README (what the course is,
   the chapter table, the results) and ``<build>/results.json`` (this build's runtimes), and a
   copy of each executed ``<build>/NN_*.ipynb`` in which
   - a line under the title links to the notebook (``.ipynb``, with outputs) and to its
     Python source (``chapters/NN_*.py``) for download;
   - each figure output carries alt text: the figure's titles, recorded by the kernel at
     execution (see ``tools/kernel_startup.py``), else the first sentence of the Markdown
     cell that follows it;
   - each progress-bar widget output becomes the text of its final state (a widget would need
     its JavaScript manager from a CDN);
2. Sphinx (myst-nb, sphinx-book-theme) writes the site into ``<build>/site/``, with MathJax 3
   copied from the ``django-static-mathjax`` wheel into ``_static/mathjax``.

    python tools/build_site.py                      # build/ -> build/site/
    python tools/build_site.py --build-dir build-quick
"""

from __future__ import annotations

import argparse
import copy
import html
import json
import re
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BOOK = REPO / "book"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
IMAGE_TYPES = ("image/png", "image/jpeg", "image/svg+xml")
DOWNLOADS = "_downloads_src"


# --- the README, cut into the pieces the landing page reuses ----------------------------------


def readme_sections(text: str) -> tuple[str, str, dict[str, str]]:
    """The README as (title, intro, {"## heading": body}); intro is the text before the first ``##``."""
    lines = text.splitlines()
    title, intro, sections, current = "", [], {}, None
    for line in lines:
        if line.startswith("# ") and not title:
            title = line[2:].strip()
        elif line.startswith("## "):
            current = line[3:].strip()
            sections[current] = []
        elif current is None:
            intro.append(line)
        else:
            sections[current].append(line)
    return title, "\n".join(intro).strip(), {k: "\n".join(v).strip() for k, v in sections.items()}


_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")


def rewrite_links(markdown: str, stems: list[str]) -> str:
    """README links as site links: a chapter's ``.py``/``.ipynb`` becomes its page.

    Other relative links (files of the repository that are not in the site) keep their text
    without the link, so no link on the site points nowhere; absolute URLs are kept.
    """

    def replace(match: re.Match) -> str:
        text, target = match.group(1), match.group(2)
        if re.match(r"[a-z]+://|#|mailto:", target):
            return match.group(0)
        stem = Path(target.split("#")[0]).stem
        if stem in stems:
            return f"[{text}]({stem}.ipynb)"
        return f"{text} (`{target}` in the repository)" if "`" not in text else text

    return _LINK.sub(replace, markdown)


def demote_headings(markdown: str) -> str:
    """``### x`` -> ``#### x`` and so on, so a README section nests under a page section."""
    out, fenced = [], False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        out.append("#" + line if not fenced and re.match(r"#{1,5} ", line) else line)
    return "\n".join(out)


def _fmt_runtime(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{seconds:.0f} s"


def chapters_table(readme_chapters: str, chapters: list[tuple[str, str]], results: dict) -> str:
    """The README's chapter table with links to the pages and a column for this build.

    ``chapters`` holds (stem, page title) in order. A README row is matched to a chapter by
    the stem it links to; a chapter missing from the README still gets a row.
    """
    rows = {}
    header = None
    for line in readme_chapters.splitlines():
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
            continue
        if set("".join(cells)) <= set("-: "):
            continue
        stem = next((s for s, _ in chapters if s in line), None)
        if stem:
            rows[stem] = cells
    learn_col = next((i for i, h in enumerate(header or []) if "learn" in h), None)
    full_col = next((i for i, h in enumerate(header or []) if h.startswith("full")), None)
    out = [
        "| # | chapter | what you learn | full run (README, 2 CPU cores) | this build |",
        "|---|---|---|---|---|",
    ]
    for i, (stem, title) in enumerate(chapters, 1):
        cells = rows.get(stem, [])
        learn = cells[learn_col] if learn_col is not None and len(cells) > learn_col else ""
        full = cells[full_col] if full_col is not None and len(cells) > full_col else ""
        entry = results.get(stem)
        this = "not run"
        if entry:
            this = f"{_fmt_runtime(entry.get('runtime_s'))}, {entry.get('mode', '?')} mode"
            if "error" in entry:
                this += ", **failed**"
        out.append(f"| {i} | [{title}]({stem}.ipynb) | {learn} | {full} | {this} |")
    return "\n".join(out)


def landing_page(readme: str, chapters: list[tuple[str, str]], results: dict) -> str:
    """``book/index.md`` filled in from the README and this build's results."""
    stems = [s for s, _ in chapters]
    title, intro, sections = readme_sections(readme)
    # the README's commands, and what follows them, go under "How to run it"
    commands = re.search(r"```bash\n.*?```", intro, flags=re.S)
    after_commands = intro[commands.end():] if commands else ""
    intro = intro[: commands.start()] if commands else intro
    intro = rewrite_links(intro.strip(), stems)
    chapters_md = sections.get("Chapters", "")
    run_notes = "\n\n".join(
        [rewrite_links(after_commands.strip(), stems)]
        + [
            f"### {name}\n\n{demote_headings(rewrite_links(sections[name], stems))}"
            for name in sections
            if name.startswith(("Quick mode", "Data"))
        ]
    )
    results_md = rewrite_links(sections.get("Results", "(no results in the README)"), stems)
    after_table = chapters_md.split("\n\n")[-1] if "\n\n" in chapters_md else ""
    table = chapters_table(chapters_md, chapters, results)
    if after_table and not after_table.startswith("|"):
        table += "\n\n" + rewrite_links(after_table, stems)
    template = (BOOK / "index.md").read_text(encoding="utf-8")
    return template.format(
        title=title or "Gaussian Auto Embeddings",
        intro=intro,
        chapters_table=table,
        run_notes=run_notes,
        results=results_md,
        toctree="\n".join(stems),
    )


# --- one notebook, made ready for the page ------------------------------------------------------


def notebook_title(notebook: dict, fallback: str) -> str:
    """The first ``# heading`` of the notebook's Markdown."""
    for cell in notebook["cells"]:
        if cell["cell_type"] == "markdown":
            for line in _source(cell).splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return fallback


def _source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def first_sentence(markdown: str, limit: int = 200) -> str:
    """The first sentence of a Markdown cell as plain text (headings, maths marks, links removed)."""
    text = " ".join(line.lstrip("#>*- ").strip() for line in markdown.splitlines() if line.strip())
    text = re.sub(r"\$+([^$]*)\$+", r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = re.sub(r"[`*_]", "", text).strip()
    match = re.match(r"(.+?[.!?:])(\s|$)", text)
    sentence = match.group(1) if match else text
    return sentence[:limit].rstrip()


def widget_text(model_id: str, state: dict) -> str | None:
    """The text of a tqdm progress bar's final state from the notebook's widget state.

    tqdm draws an HBox of (label HTML, FloatProgress, counts HTML); the state the executor
    saved holds each child's last value. None when the model is not such a box.
    """
    box = state.get(model_id, {}).get("state", {})
    children = [c.replace("IPY_MODEL_", "") for c in box.get("children", [])]
    if not children:
        return None
    parts = []
    for child in children:
        child_state = state.get(child, {}).get("state", {})
        if "max" in child_state and "value" in child_state:
            value, high = child_state["value"], child_state["max"] or 1
            filled = int(round(20 * min(max(value / high, 0), 1)))
            parts.append("|" + "█" * filled + " " * (20 - filled) + "|")
        elif child_state.get("value"):
            parts.append(html.unescape(re.sub(r"<[^>]+>", "", str(child_state["value"]))).strip())
    return " ".join(p for p in parts if p) or None


def prepare_notebook(notebook: dict, stem: str, py_name: str | None) -> tuple[dict, dict]:
    """A copy of an executed notebook ready for the site, and counts of what was changed.

    See the module docstring: download line, alt text on figures, widgets as text.
    """
    nb = copy.deepcopy(notebook)
    widget_state = nb.get("metadata", {}).get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    counts = {"figures": 0, "alt_from_title": 0, "alt_from_text": 0, "widgets": 0}
    cells = nb["cells"]
    for index, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        following = next(
            (_source(c) for c in cells[index + 1 :] if c["cell_type"] == "markdown"), ""
        )
        outputs = []
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if WIDGET_VIEW in data:
                text = widget_text(data[WIDGET_VIEW].get("model_id", ""), widget_state)
                if text is None:
                    text = data.get("text/plain", "")
                    text = "".join(text) if isinstance(text, list) else text  # nbformat's multiline form
                    text = "" if text.startswith(("HBox(", "VBox(")) else text
                counts["widgets"] += 1
                if text:
                    outputs.append(
                        {"output_type": "stream", "name": "stdout", "text": text.rstrip() + "\n"}
                    )
                continue
            if any(t in data for t in IMAGE_TYPES):
                counts["figures"] += 1
                metadata = output.setdefault("metadata", {})
                alt = metadata.get("course", {}).get("alt")
                if alt:
                    counts["alt_from_title"] += 1
                else:
                    alt = first_sentence(following) or f"A figure of {stem}"
                    counts["alt_from_text"] += 1
                output["_alt"] = alt
            outputs.append(output)
        cell["outputs"] = outputs
        if any("_alt" in o for o in outputs):
            alts = [o.pop("_alt") for o in outputs if "_alt" in o]
            # myst-nb reads a cell's image options from metadata.mystnb.image
            cell.setdefault("metadata", {}).setdefault("mystnb", {})["image"] = {"alt": " / ".join(alts)}
            for o, alt in zip([o for o in outputs if any(t in o.get("data", {}) for t in IMAGE_TYPES)], alts):
                o.setdefault("metadata", {}).setdefault("course", {})["alt"] = alt
    # drop the saved widget state: nothing on the page renders widgets
    nb.get("metadata", {}).pop("widgets", None)

    links = [f"{{download}}`the notebook, with its outputs (.ipynb) <{DOWNLOADS}/{stem}.ipynb>`"]
    if py_name:
        links.append(f"{{download}}`its source, a Jupytext py:percent file (.py) <{DOWNLOADS}/{py_name}>`")
    download_cell = {
        "cell_type": "markdown",
        "id": "course-downloads",
        "metadata": {},
        "source": "```{container} course-downloads\nDownload " + " · ".join(links) + "\n```",
    }
    first_md = next((i for i, c in enumerate(cells) if c["cell_type"] == "markdown"), -1)
    cells.insert(first_md + 1, download_cell)
    return nb, counts


# --- the site ------------------------------------------------------------------------------


def mathjax_dir() -> Path:
    """MathJax 3's browser build (``es5/``), shipped by the ``django-static-mathjax`` wheel.

    The wheel holds MathJax's own release files and nothing else (no Django code, no
    dependencies); its import name is ``mathjax``.
    """
    try:
        import mathjax
    except ImportError as exc:  # pragma: no cover - the dev extra is missing
        raise SystemExit(
            "MathJax is not installed: .venv/bin/python -m pip install -e '.[dev]' "
            "(it comes from the django-static-mathjax wheel)"
        ) from exc
    es5 = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    if not (es5 / "tex-svg.js").exists():
        raise SystemExit(f"no tex-svg.js in {es5}: reinstall django-static-mathjax")
    return es5


# The site uses tex-svg.js: SVG output needs no font files. These are the other builds.
_MATHJAX_UNUSED = shutil.ignore_patterns(
    "tex-chtml*", "tex-mml-*", "mml-*", "tex-svg-full*", "node-main.js", "chtml", "chtml.js"
)


def stage(build_dir: Path, chapters_dir: Path, readme: Path) -> tuple[Path, list[tuple[str, str]], dict]:
    """Fill ``<build>/site-src/``; return it, the (stem, title) of each chapter, and counts."""
    notebooks = sorted(build_dir.glob("[0-9][0-9]_*.ipynb"))
    if not notebooks:
        raise SystemExit(
            f"no executed chapters (NN_*.ipynb) in {build_dir}: run `make course` "
            "(or tools/run_course.py --quick --build-dir ...) first"
        )
    src = build_dir / "site-src"
    if src.exists():
        shutil.rmtree(src)
    shutil.copytree(BOOK, src, ignore=shutil.ignore_patterns("index.md", "__pycache__"))
    shutil.copytree(mathjax_dir(), src / "_static" / "mathjax", ignore=_MATHJAX_UNUSED)
    (src / DOWNLOADS).mkdir()

    chapters, counts = [], {}
    for path in notebooks:
        stem = path.stem
        notebook = json.loads(path.read_text(encoding="utf-8"))
        py = chapters_dir / f"{stem}.py"
        page, counts[stem] = prepare_notebook(notebook, stem, py.name if py.exists() else None)
        (src / f"{stem}.ipynb").write_text(json.dumps(page, indent=1, ensure_ascii=False), encoding="utf-8")
        shutil.copy2(path, src / DOWNLOADS / path.name)
        if py.exists():
            shutil.copy2(py, src / DOWNLOADS / py.name)
        chapters.append((stem, notebook_title(notebook, stem)))

    results_path = build_dir / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    (src / "index.md").write_text(
        landing_page(readme.read_text(encoding="utf-8"), chapters, results), encoding="utf-8"
    )
    return src, chapters, counts


def build(build_dir: Path, site_dir: Path, chapters_dir: Path, readme: Path, quiet: bool = True) -> Path:
    """Stage and run Sphinx; the site's ``index.html``.

    Sphinx runs in its own process: the theme's deprecation warnings (about Sphinx 11) are the
    theme's to fix and are not shown; Sphinx's own warnings go to ``<build>/site-warnings.txt``.
    """
    import os
    import subprocess

    src, chapters, _ = stage(build_dir, chapters_dir, readme)
    if site_dir.exists():
        shutil.rmtree(site_dir)
    warnings = build_dir / "site-warnings.txt"
    command = [
        sys.executable, "-m", "sphinx", "-b", "html", "-w", str(warnings),
        "--doctree-dir", str(build_dir / "site-doctrees"), str(src), str(site_dir),
    ]
    if quiet:
        command.insert(3, "-q")
    env = dict(os.environ, PYTHONWARNINGS="ignore::DeprecationWarning,ignore::PendingDeprecationWarning")
    done = subprocess.run(command, env=env, capture_output=quiet, text=True)
    if done.returncode != 0:
        raise SystemExit(
            f"sphinx-build failed (status {done.returncode}); see {warnings}\n{(done.stderr or '')[-2000:]}"
        )
    return site_dir / "index.html"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build-dir", type=Path, default=REPO / "build")
    parser.add_argument("--site-dir", type=Path, help="default: <build-dir>/site")
    parser.add_argument("--chapters-dir", type=Path, default=REPO / "chapters")
    parser.add_argument("--readme", type=Path, default=REPO / "README.md")
    parser.add_argument("--verbose", action="store_true", help="show Sphinx's progress")
    args = parser.parse_args(argv)
    site_dir = args.site_dir or args.build_dir / "site"
    index = build(args.build_dir, site_dir, args.chapters_dir, args.readme, quiet=not args.verbose)
    print(f"site: {index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
