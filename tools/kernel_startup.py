"""Run in each chapter's kernel by tools/run_course.py before the first cell (IPython exec_files).

It changes nothing a chapter computes or prints; it only annotates the figures that the inline
backend sends, for the website that tools/build_site.py builds from the executed notebooks:

- each figure output carries ``metadata["course"]["alt"]``: the figure's titles (suptitle, then
  the axes' titles), which the site uses as the image's alt text;
- a figure whose background is transparent is given an opaque white one, so it stays
  readable on the site's dark theme.

Everything is defined inside a function and deleted, so the chapter's namespace stays clean.
"""


def _course_annotate_figures():
    try:
        from matplotlib_inline import backend_inline
    except ImportError:  # no inline backend: nothing is displayed as a figure
        return
    fetch = getattr(backend_inline, "_fetch_figure_metadata", None)
    if fetch is None or getattr(fetch, "_course", False):
        return  # another matplotlib-inline: the site falls back on the text after the figure

    def figure_metadata(fig):
        from matplotlib.colors import to_rgba

        if to_rgba(fig.get_facecolor())[3] < 1:
            fig.patch.set_facecolor("white")
            fig.patch.set_alpha(1.0)
        metadata = dict(fetch(fig) or {})
        metadata.pop("needs_background", None)  # opaque now
        titles = []
        suptitle = getattr(fig, "_suptitle", None)
        if suptitle is not None and suptitle.get_text().strip():
            titles.append(suptitle.get_text().strip())
        for ax in fig.axes:
            title = " ".join(ax.get_title(loc) for loc in ("left", "center", "right")).strip()
            if title and title not in titles:
                titles.append(title)
        if titles:
            alt = "; ".join(" ".join(t.split()) for t in titles)
            metadata["course"] = {"alt": alt[:400]}
        return metadata or None

    figure_metadata._course = True
    backend_inline._fetch_figure_metadata = figure_metadata


_course_annotate_figures()
del _course_annotate_figures
