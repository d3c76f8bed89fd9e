"""The website of a quick-mode run, read in headless Chromium as a reader would read it.

Every page: loads from disk in under 2 s (the load event, and the equations in view typeset;
MathJax typesets the rest as they scroll into view) with no console error and no request that
fails or leaves the machine; shows as many typeset equations as its source has maths spans once
all are typeset, and no raw ``$...$``; shows every image output of its notebook as a loaded image with alt text on an
opaque white background (dark theme too); keeps the "Check yourself" answers folded until
clicked; links only to pages and files that exist. A screenshot of each page goes to
``<build>/screenshots/`` for a person to look at, with each page's load time in
``load-times.json``.
"""

import json
import os
import re
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from markdown_it import MarkdownIt
from mdit_py_plugins.amsmath import amsmath_plugin
from mdit_py_plugins.dollarmath import dollarmath_plugin

IMAGE_TYPES = ("image/png", "image/jpeg", "image/svg+xml")
MATH_TOKENS = {"math_inline", "math_block", "math_block_label", "math_inline_double", "amsmath"}
# a page must load from disk within this; GAE_COURSE_PAGE_BUDGET_S raises it on a machine
# busy with other work (the time measured is always printed in the failure message)
LOAD_BUDGET_S = float(os.environ.get("GAE_COURSE_PAGE_BUDGET_S", "2.0"))


def source_pages(build: Path) -> dict[str, dict]:
    """page name -> its Markdown (every Markdown cell) and its number of image outputs."""
    src = build / "site-src"
    pages = {"index": {"markdown": [(src / "index.md").read_text(encoding="utf-8")], "images": 0}}
    for path in sorted(src.glob("[0-9][0-9]_*.ipynb")):
        nb = json.loads(path.read_text(encoding="utf-8"))
        markdown = ["".join(c["source"]) if isinstance(c["source"], list) else c["source"]
                    for c in nb["cells"] if c["cell_type"] == "markdown"]
        images = sum(
            1
            for c in nb["cells"] if c["cell_type"] == "code"
            for o in c.get("outputs", []) if any(t in o.get("data", {}) for t in IMAGE_TYPES)
        )
        pages[path.stem] = {"markdown": markdown, "images": images}
    return pages


def count_maths(markdown: str) -> int:
    """Maths spans in MyST Markdown ($...$, $$...$$, amsmath environments), by markdown-it."""
    # the options myst-parser gives the same plugin by default
    parser = (
        MarkdownIt("commonmark")
        .enable("table")
        .use(dollarmath_plugin, allow_labels=True, allow_space=True, allow_digits=True, double_inline=False)
        .use(amsmath_plugin)
    )

    def walk(tokens):
        n = 0
        for token in tokens:
            n += token.type in MATH_TOKENS
            n += walk(token.children or [])
        return n

    return walk(parser.parse(markdown))


def test_source_counter_counts_maths():
    assert count_maths("a $x$ and $y$ but not `$z$`\n\n$$\nw\n$$\n") == 3
    assert count_maths("| a | $x_1$ |\n|---|---|\n| $y$ | b |\n") == 2
    assert count_maths("<details><summary>A</summary>\n\n1. $x$\n\n</details>\n") == 1


@pytest.fixture(scope="module")
def pages(quick_build):
    found = source_pages(quick_build)
    assert len(found) >= 2, "the site has no chapter pages"
    return found


@pytest.fixture(scope="module")
def screenshots(quick_build):
    folder = quick_build / "screenshots"
    folder.mkdir(exist_ok=True)
    return folder


VISIBLE_TEXT_JS = """() => {
  const clone = document.querySelector('main, article, body').cloneNode(true);
  clone.querySelectorAll('pre, code, script, style, mjx-container, mjx-assistive-mml')
       .forEach(e => e.remove());
  return clone.textContent;
}"""

WAIT_MATHJAX_JS = """() => new Promise((resolve, reject) => {
  const start = Date.now();
  // Sphinx loads MathJax only on pages that have maths. Count the article's equations only:
  // a heading with maths is typeset again in the page's table of contents. An equation is
  // typeset when its mjx-container holds an <svg>; a lazy one holds only an <mjx-lazy> marker.
  const typeset = () => Array.from(document.querySelectorAll('article.bd-article mjx-container'))
    .filter(c => Array.from(c.children).some(e => e.tagName.toLowerCase() === 'svg')).length;
  if (!document.querySelector('script[src*="mathjax/tex-svg.js"]')) {
    resolve({ready_s: 0, visible: 0, all: 0}); return;
  }
  (function poll() {
    if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
      MathJax.startup.promise.then(() => {
        // the page is ready for a reader: the equations in view are typeset
        const ready_s = performance.now() / 1000, visible = typeset();
        // then every equation, as if the reader had scrolled through the page (lazy typesetting)
        const rest = MathJax.startup.document.lazyTypesetAll
          ? MathJax.startup.document.lazyTypesetAll() : Promise.resolve();
        return rest.then(() => resolve({ready_s, visible, all: typeset()}));
      }).catch(reject);
    } else if (Date.now() - start > 20000) {
      reject(new Error('MathJax did not start'));
    } else { setTimeout(poll, 50); }
  })();
})"""


def test_every_page_in_chromium(browser_context, quick_build, pages, screenshots):
    site = quick_build / "site"
    problems, load_times = [], {}
    for name, source in pages.items():
        path = site / f"{name}.html"
        assert path.exists(), f"no page {path}"
        page = browser_context.new_page()
        console_errors, bad_requests = [], []
        page.on("console", lambda m, e=console_errors: e.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc, e=console_errors: e.append(str(exc)))
        page.on(
            "request",
            lambda r, b=bad_requests: b.append(f"outgoing: {r.url}")
            if urlparse(r.url).scheme not in ("file", "data", "blob", "about")
            else None,
        )
        page.on("requestfailed", lambda r, b=bad_requests: b.append(f"failed: {r.url} ({r.failure})"))
        page.goto(path.as_uri(), wait_until="load")
        load_s = page.evaluate(
            "() => { const t = performance.getEntriesByType('navigation')[0]; return t.loadEventEnd / 1000; }"
        )
        maths = page.evaluate(WAIT_MATHJAX_JS)
        # ready = the load event, or later when MathJax has typeset what is in view
        load_s = max(load_s, maths["ready_s"])
        rendered = maths["all"]
        load_times[name] = round(load_s, 3)
        expected = sum(count_maths(md) for md in source["markdown"])
        text = page.evaluate(VISIBLE_TEXT_JS)
        raw = re.findall(r"\$[^$\n]{1,80}\$|\\\(.{1,40}?\\\)", text)

        images = page.evaluate(
            """() => Array.from(document.querySelectorAll('.cell_output img')).map(i => ({
                 alt: i.getAttribute('alt') || '', loaded: i.complete && i.naturalWidth > 0,
                 background: getComputedStyle(i).backgroundColor}))"""
        )
        details = page.evaluate(
            "() => Array.from(document.querySelectorAll('details')).map(d => d.open)"
        )
        page.screenshot(path=str(screenshots / f"{name}.png"))

        label = f"{name}:"
        if console_errors:
            problems.append(f"{label} console errors {console_errors[:3]}")
        if bad_requests:
            problems.append(f"{label} requests {bad_requests[:3]}")
        if load_s > LOAD_BUDGET_S:
            problems.append(f"{label} loaded in {load_s:.2f} s (budget {LOAD_BUDGET_S} s)")
        if rendered != expected:
            problems.append(f"{label} {rendered} equations typeset, {expected} maths spans in the source")
        if raw:
            problems.append(f"{label} raw maths visible: {raw[:3]}")
        if len(images) != source["images"]:
            problems.append(f"{label} {len(images)} images on the page, {source['images']} in the notebook")
        for i, image in enumerate(images):
            if not image["loaded"]:
                problems.append(f"{label} image {i} did not load")
            if not image["alt"].strip() or image["alt"].endswith((".png", ".jpeg", ".svg")):
                problems.append(f"{label} image {i} has no alt text ({image['alt']!r})")
            if image["background"] != "rgb(255, 255, 255)":
                problems.append(f"{label} image {i} background {image['background']}")
        if any(details):
            problems.append(f"{label} an answers block is open before any click")

        if name != "index":
            problems += [f"{label} {p}" for p in check_chapter_page(page, name, screenshots)]
        page.close()
    (screenshots / "load-times.json").write_text(json.dumps(load_times, indent=1) + "\n")
    assert not problems, "\n".join(problems)


def check_chapter_page(page, name, screenshots) -> list[str]:
    """Navigation, per-page contents, downloads, answers that open on a click, dark theme."""
    problems = []
    sidebar = page.locator("nav.bd-links a").count()
    if sidebar < 2:
        problems.append(f"sidebar lists {sidebar} pages")
    toc = page.locator(".bd-toc-nav a, #pst-page-navigation-heading-2 ~ * a").count()
    if toc < 2:
        problems.append(f"page contents lists {toc} sections")
    downloads = page.evaluate(
        "() => Array.from(document.querySelectorAll('a.download, a[download]')).map(a => a.getAttribute('href'))"
    )
    for suffix in (".ipynb", ".py"):
        if not any(h.endswith(f"{name}{suffix}") for h in downloads):
            problems.append(f"no download link to {name}{suffix} (links: {downloads})")
    if page.locator(".prev-next-area a").count() < 1:
        problems.append("no previous/next link")
    answers = page.locator("details")
    if answers.count():
        first = answers.first
        first.locator("summary").click()
        if not first.evaluate("d => d.open"):
            problems.append("answers do not open on a click")
        elif not first.evaluate("d => d.innerText.length > 50"):
            problems.append("opened answers are empty")
    # the dark theme: figures keep their white background
    page.evaluate("() => { document.documentElement.dataset.theme = 'dark'; }")
    figure = page.locator(".cell_output img").first
    if page.locator(".cell_output img").count():
        figure.scroll_into_view_if_needed()
        background = figure.evaluate("i => getComputedStyle(i).backgroundColor")
        if background != "rgb(255, 255, 255)":
            problems.append(f"dark theme: figure background {background}")
        page.screenshot(path=str(screenshots / f"{name}-figure-dark.png"))
    return problems


def test_every_link_resolves(quick_build):
    """Links between pages and to files (downloads, images) point to something that exists."""
    site = quick_build / "site"
    ids = {}
    problems = []
    href = re.compile(r'(?:href|src)="([^"]+)"')
    for page in sorted(site.glob("*.html")):
        text = page.read_text(encoding="utf-8")
        for target in href.findall(text):
            parsed = urlparse(target)
            if parsed.scheme in ("http", "https", "mailto", "data") or target.startswith("javascript:"):
                continue
            path = unquote(parsed.path)
            file = page if not path else (page.parent / path).resolve()
            if not file.exists():
                problems.append(f"{page.name}: {target} -> missing {file}")
                continue
            if parsed.fragment and file.suffix == ".html":
                if file not in ids:
                    ids[file] = set(re.findall(r'id="([^"]+)"', file.read_text(encoding="utf-8")))
                if parsed.fragment not in ids[file]:
                    problems.append(f"{page.name}: {target} -> no #{parsed.fragment} in {file.name}")
    assert not problems, "\n".join(problems[:20])


def test_no_page_refers_to_the_network(quick_build):
    """No script, style sheet, font or image is loaded from a URL: everything is in the site."""
    problems = []
    for file in sorted((quick_build / "site").rglob("*")):
        if file.suffix not in (".html", ".css"):
            continue
        text = file.read_text(encoding="utf-8", errors="replace")
        for match in re.finditer(r'(?:src|href)="(https?:[^"]+)"|url\(["\']?(https?:[^)"\']+)', text):
            url = match.group(1) or match.group(2)
            tag = text[text.rfind("<", 0, match.start()) : match.start()]
            if match.group(1) and tag.startswith("<a "):
                continue  # a link a reader may follow, not a resource the page loads
            problems.append(f"{file.relative_to(quick_build)}: {url}")
    assert not problems, "\n".join(problems[:20])
