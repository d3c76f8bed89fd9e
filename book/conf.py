"""Sphinx configuration of the course's website (``make site``, the end of ``make course``).

tools/build_site.py copies this file into a staging folder beside the executed notebooks of
``build/`` and runs Sphinx there: myst-nb reads the notebooks with their outputs and never runs
them again, sphinx-book-theme (Jupyter Book 1's theme) lays the pages out. Everything a page
needs is in the site: MathJax 3 comes from the ``django-static-mathjax`` wheel (copied into
``_static/mathjax`` by tools/build_site.py), the theme's fonts and scripts are its own files, and
nothing is fetched from the network when the site is built or read.
"""

project = "Gaussian Auto Embeddings"
author = "the course's authors"
copyright = "the course's authors, MIT licence"

extensions = ["myst_nb"]
exclude_patterns = ["_build", "_downloads_src", "**.ipynb_checkpoints"]
root_doc = "index"

# --- notebooks: rendered as executed by tools/run_course.py, never run here ------------------
nb_execution_mode = "off"
# ipywidgets (tqdm's progress bars) would need the widget manager from a CDN: tools/build_site.py
# replaces each widget output with the text of its final state, and no widget script is loaded.
nb_ipywidgets_js = {}
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "html_image"]
myst_heading_anchors = 3
# tools/build_site.py writes the MathJax configuration itself (MathJax 2, below).
myst_update_mathjax = False

# --- maths: a local MathJax 3 (from the django-static-mathjax wheel), no CDN ---------------
# A relative mathjax_path is relative to the site's _static folder. SVG output: the glyphs are
# in the script, so no web font is loaded (file:// pages cannot always load fonts).
mathjax_path = "mathjax/tex-svg.js"
mathjax3_config = {
    "tex": {"inlineMath": [["\\(", "\\)"]], "displayMath": [["\\[", "\\]"]]},
    "options": {
        # only what myst marks as maths, never code cells or outputs that contain a $
        "processHtmlClass": "tex2jax_process|mathjax_process|math|output_area",
        "ignoreHtmlClass": "tex2jax_ignore|mathjax_ignore|document",
    },
    "svg": {"fontCache": "global"},
    # Lazy typesetting (MathJax's ui/lazy, in the same wheel): only the equations in or near
    # the window are typeset at load, the rest as they scroll into view. Chapters 1-3 hold
    # 200-320 equations each; typesetting them all took 1-1.5 s of a 2-3 s page load here.
    # Printing typesets everything first (the extension does it on beforeprint).
    "loader": {"load": ["ui/lazy"]},
}

# --- the theme ---------------------------------------------------------------------------
html_theme = "sphinx_book_theme"
html_title = "Gaussian Auto Embeddings: a course"
html_static_path = ["_static"]
html_css_files = ["course.css"]
html_last_updated_fmt = None
html_show_sphinx = False
html_copy_source = True
html_sourcelink_suffix = ""
html_theme_options = {
    "home_page_in_toc": True,
    "show_toc_level": 2,
    "use_download_button": True,
    "use_fullscreen_button": False,
    "use_repository_button": False,
    "use_issues_button": False,
    "use_edit_page_button": False,
    "launch_buttons": {},
    "navigation_with_keys": False,
    # no search-engine or analytics snippets, no version switcher fetched at view time
    "analytics": {},
}
# the theme's light/dark switch starts from the reader's system setting ("auto"); left empty,
# the theme logs an error on every page
html_context = {"default_mode": "auto"}
