"""tools/run_course.py, the body of `make course`: choosing chapters, merging results, the table."""

import importlib.util
import json
import sys
from pathlib import Path

import jupytext
import pytest

REPO = Path(__file__).resolve().parent.parent


def _load_runner():
    spec = importlib.util.spec_from_file_location("run_course", REPO / "tools" / "run_course.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["run_course"] = module
    spec.loader.exec_module(module)
    return module


run_course = _load_runner()

CHAPTERS = [Path(f"chapters/{s}.ipynb") for s in ("01_em_gmm", "02_elbo", "05_gaussian_auto_embeddings")]


def test_select_chapters_by_number_or_stem():
    assert run_course.select_chapters(CHAPTERS, None) == CHAPTERS
    assert run_course.select_chapters(CHAPTERS, ["5", "01"]) == [CHAPTERS[0], CHAPTERS[2]]
    assert run_course.select_chapters(CHAPTERS, ["01,02"]) == CHAPTERS[:2]
    assert run_course.select_chapters(CHAPTERS, ["02_elbo"]) == [CHAPTERS[1]]
    with pytest.raises(SystemExit, match="--only 03: no such chapter"):
        run_course.select_chapters(CHAPTERS, ["03"])


def test_find_chapters_in_order(tmp_path):
    for name in ["02_b.ipynb", "01_a.ipynb", "01_a.py", "scratch.ipynb"]:
        (tmp_path / name).write_text("")
    assert [p.name for p in run_course.find_chapters(tmp_path)] == ["01_a.ipynb", "02_b.ipynb"]


def test_chapter_entry_puts_runtime_and_mode_first():
    entry = run_course.chapter_entry({"acc": 0.9, "mode": "full"}, 12.345, "full")
    assert list(entry) == ["runtime_s", "mode", "acc"] and entry["runtime_s"] == 12.3
    failed = run_course.chapter_entry(None, 1.0, "quick", error="AssertionError: x")
    assert failed == {"runtime_s": 1.0, "mode": "quick", "error": "AssertionError: x"}


def test_merge_keeps_chapters_not_rerun_and_replaces_the_rest():
    previous = {
        "05_gaussian_auto_embeddings": {"runtime_s": 800.0, "mode": "full", "mnist": {"test_accuracy": 0.98}},
        "01_em_gmm": {"runtime_s": 200.0, "mode": "full", "nmi": {"mnist": {"5": 0.4}}},
    }
    fresh = {"01_em_gmm": {"runtime_s": 190.0, "mode": "full", "nmi": {"mnist": {"5": 0.5}}}}
    merged = run_course.merge_results(previous, fresh)
    assert list(merged) == ["01_em_gmm", "05_gaussian_auto_embeddings"]
    assert merged["01_em_gmm"] == fresh["01_em_gmm"]
    assert merged["05_gaussian_auto_embeddings"] == previous["05_gaussian_auto_embeddings"]
    assert previous["01_em_gmm"]["runtime_s"] == 200.0  # inputs untouched


def test_flatten_gives_short_key_paths():
    figures = {"nmi": {"mnist": {"5": 0.4, "10": 0.5}}, "iwae_k": 5000}
    assert run_course.flatten(figures) == [("nmi.mnist.5", 0.4), ("nmi.mnist.10", 0.5), ("iwae_k", 5000)]


def test_summary_table_lists_every_chapter_and_figure():
    results = {
        "01_em_gmm": {"runtime_s": 254.0, "mode": "full", "nmi": {"mnist": {"5": 0.41234567}}, "curve": [1.0] * 50},
        "04_vae": {"runtime_s": 3.25, "mode": "quick", "error": "AssertionError: nll"},
        "06_comparison": {"runtime_s": 1.0, "mode": "full"},
    }
    table = run_course.summary_table(results)
    lines = table.splitlines()
    assert lines[0].split() == ["chapter", "mode", "runtime", "headline", "figures"]
    assert "01_em_gmm" in lines[2] and "4m14s" in lines[2] and "nmi.mnist.5 = 0.4123" in lines[2]
    assert "curve = [50 values]" in lines[3]
    assert "04_vae" in lines[4] and "quick" in lines[4] and "3.2s" in lines[4] and "FAILED" in lines[4]
    assert "(none recorded)" in lines[5]
    assert lines[-1] == "total runtime 4m18s"


def test_kernel_environment(tmp_path):
    base = {"GAE_COURSE_QUICK": "1", "MPLBACKEND": "Agg", "GAE_COURSE_DATA": "/data", "HOME": "/h"}
    full = run_course.kernel_environment(False, tmp_path / "results", base)
    assert "GAE_COURSE_QUICK" not in full and "MPLBACKEND" not in full
    assert full["GAE_COURSE_RESULTS_DIR"] == str(tmp_path / "results")
    assert full["GAE_COURSE_DATA"] == "/data" and full["HOME"] == "/h"
    assert run_course.kernel_environment(True, tmp_path, {})["GAE_COURSE_QUICK"] == "1"
    assert base["GAE_COURSE_QUICK"] == "1"  # not modified


CHAPTER_OK = """\
# %%
import os
from gae_course import results

# %%
results.record("01_ok", accuracy=0.5, quick=os.environ.get("GAE_COURSE_QUICK"))
"""

CHAPTER_FIGURE = """\
# %%
import matplotlib.pyplot as plt
fig, ax = plt.subplots()
fig.patch.set_alpha(0.0)
ax.plot([0, 1])
ax.set_title("a rising line")
fig.suptitle("What to see")
"""

CHAPTER_BAD = """\
# %%
x = 1

# %%
assert x == 2, "x should be two"
"""


def test_the_runner_end_to_end(tmp_path, capfd):
    """Three throwaway chapters, one failing: notebooks for all, results merged, exit status 1."""
    chapters, build = tmp_path / "chapters", tmp_path / "build"
    chapters.mkdir()
    for stem, source in [("01_ok", CHAPTER_OK), ("02_bad", CHAPTER_BAD), ("03_figure", CHAPTER_FIGURE)]:
        jupytext.write(jupytext.reads(source, fmt="py:percent"), chapters / f"{stem}.ipynb")
    build.mkdir()
    (build / "results.json").write_text(json.dumps({"09_old": {"runtime_s": 1.0, "mode": "full"}}))

    status = run_course.main(
        ["--quick", "--no-site", "--chapters-dir", str(chapters), "--build-dir", str(build)]
    )

    assert status == 1
    results = json.loads((build / "results.json").read_text())
    assert list(results) == ["01_ok", "02_bad", "03_figure", "09_old"]
    assert results["01_ok"]["accuracy"] == 0.5 and results["01_ok"]["quick"] == "1"
    assert results["01_ok"]["mode"] == "quick" and results["01_ok"]["runtime_s"] > 0
    assert results["02_bad"]["error"] == "AssertionError: x should be two"
    for stem in ["01_ok", "02_bad", "03_figure"]:
        assert (build / f"{stem}.ipynb").exists()
    assert "01_ok" in (build / "results.txt").read_text()
    out = capfd.readouterr()
    # one line per chapter, the failure explained under its line
    assert [line.split()[1] for line in out.out.splitlines() if line.startswith("[")] == ["01_ok", "02_bad", "03_figure"]
    assert "FAILED after" in out.out and "FAILED: 02_bad" in out.err
    # ipc transport: the kernels never warn about unencrypted TCP
    assert "without encryption" not in out.err + out.out

    # tools/kernel_startup.py: the figure carries its titles as alt text, on white
    figure_nb = json.loads((build / "03_figure.ipynb").read_text())
    images = [o for c in figure_nb["cells"] for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) == 1
    assert images[0]["metadata"]["course"]["alt"] == "What to see; a rising line"
    import base64, io

    import matplotlib.image

    pixels = matplotlib.image.imread(io.BytesIO(base64.b64decode(images[0]["data"]["image/png"])))
    assert pixels.shape[2] == 3 or pixels[..., 3].min() == 1.0  # opaque
    assert pixels[0, 0, :3].tolist() == [1.0, 1.0, 1.0]  # white corner
