"""Execute every chapter, collect its headline figures, and build the website: ``make course``.

For each ``chapters/NN_*.ipynb``, in order, this runs the notebook top to bottom (full mode
unless ``--quick``) in a kernel of the Python running this script, and writes

- ``build/NN_slug.ipynb``: the executed notebook, with outputs;
- ``build/results/NN_slug.json``: written by the chapter's own ``gae_course.results.record``;
- ``build/results.json``: every chapter's figures, keyed by file stem, each with the
  ``runtime_s`` measured here and the ``mode`` it ran in. Chapters not run this time keep
  their previous entry, so ``--only 05`` updates one entry; ``build/results.txt`` shows them
  as a table.

Then it builds the course's website in ``build/site/`` from the executed notebooks of
``build/`` (tools/build_site.py; nothing runs twice), unless ``--no-site``. It prints one line
per chapter (name, time, where its page is) and ends with the path of the site's index.

A chapter that fails is reported (and its notebook still written, error included); the run
goes on with the next chapter and exits non-zero at the end.

The kernels talk to this process over local sockets (ZeroMQ's ipc transport), not TCP, so
ipykernel has no reason to warn about unencrypted TCP. tools/kernel_startup.py runs in each
kernel before the first cell: it records each figure's titles as the site's alt text.

    python tools/run_course.py                 # every chapter, full mode, then the site
    python tools/run_course.py --only 01 05    # chapters 01 and 05
    python tools/run_course.py --quick --build-dir build-quick   # quick mode, a smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from gae_course.results import write_json_atomic

REPO = Path(__file__).resolve().parent.parent
RESULTS_JSON = "results.json"
RESULTS_TXT = "results.txt"
KERNEL_STARTUP = REPO / "tools" / "kernel_startup.py"
SHARED_DATA = REPO.parent / "shared" / "data"


# --- choosing chapters -----------------------------------------------------------------------


def find_chapters(chapters_dir: Path) -> list[Path]:
    """The chapter notebooks ``NN_*.ipynb``, in order."""
    return sorted(Path(chapters_dir).glob("[0-9][0-9]_*.ipynb"))


def select_chapters(chapters: list[Path], only: list[str] | None) -> list[Path]:
    """Keep the chapters named in ``only`` by number (``"01"``, ``"1"``) or stem; all if None."""
    if not only:
        return list(chapters)
    wanted = [w.strip() for item in only for w in item.split(",") if w.strip()]
    chosen = []
    for w in wanted:
        match = [
            p
            for p in chapters
            if w in (p.stem, p.name) or (w.isdigit() and p.stem[:2] == w.zfill(2))
        ]
        if not match:
            names = ", ".join(p.stem for p in chapters) or "none"
            raise SystemExit(f"--only {w}: no such chapter (chapters: {names})")
        chosen += [p for p in match if p not in chosen]
    return sorted(chosen)


# --- results ----------------------------------------------------------------------------------


def load_results(path: Path) -> dict:
    """The previous ``results.json``, or {} when there is none."""
    path = Path(path)
    if not path.exists():
        return {}
    return json.loads(path.read_text())


def chapter_entry(figures: dict | None, runtime_s: float, mode: str, error: str | None = None) -> dict:
    """One chapter's entry: ``runtime_s`` and ``mode`` first, then its figures.

    The mode the chapter recorded wins over the one asked for (they differ only if the chapter
    overrides quick mode itself, which deserves a look); a failed run carries ``error``.
    """
    figures = dict(figures or {})
    entry = {"runtime_s": round(runtime_s, 1), "mode": figures.pop("mode", mode)}
    figures.pop("runtime_s", None)
    entry.update(figures)
    if error is not None:
        entry["error"] = error
    return entry


def merge_results(previous: dict, fresh: dict) -> dict:
    """``previous`` with each chapter in ``fresh`` replaced, sorted by chapter stem."""
    merged = dict(previous)
    merged.update(fresh)
    return dict(sorted(merged.items()))


def flatten(figures: dict, prefix: str = "") -> list[tuple[str, object]]:
    """Nested figures as (``"mnist.test_accuracy"``, value) pairs, in their order."""
    pairs = []
    for key, value in figures.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            pairs += flatten(value, path)
        else:
            pairs.append((path, value))
    return pairs


def _fmt_value(value: object) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        if len(value) <= 4 and all(isinstance(v, (int, float)) for v in value):
            return "[" + ", ".join(_fmt_value(v) for v in value) + "]"
        return f"[{len(value)} values]"
    return str(value)


def _fmt_runtime(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{seconds:.1f}s"


def summary_table(results: dict) -> str:
    """A plain-text table: chapter, mode, runtime, then one headline figure per line."""
    rows = [("chapter", "mode", "runtime", "headline figures")]
    for chapter, entry in results.items():
        figures = {k: v for k, v in entry.items() if k not in ("runtime_s", "mode", "error")}
        lines = [f"{k} = {_fmt_value(v)}" for k, v in flatten(figures)]
        if "error" in entry:
            lines.insert(0, f"FAILED: {entry['error']}")
        lines = lines or ["(none recorded)"]
        rows.append((chapter, str(entry.get("mode", "?")), _fmt_runtime(entry.get("runtime_s")), lines[0]))
        rows += [("", "", "", line) for line in lines[1:]]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    out = []
    for i, (chapter, mode, runtime, figure) in enumerate(rows):
        out.append(f"{chapter:<{widths[0]}}  {mode:<{widths[1]}}  {runtime:>{widths[2]}}  {figure}".rstrip())
        if i == 0:
            out.append("-" * len(out[0]))
    total = sum(e.get("runtime_s") or 0 for e in results.values())
    out.append(f"total runtime {_fmt_runtime(total)}")
    return "\n".join(out)


# --- running one chapter ---------------------------------------------------------------------


def kernel_environment(quick: bool, results_dir: Path, environ: dict | None = None) -> dict:
    """The environment a chapter's kernel runs in."""
    env = dict(os.environ if environ is None else environ)
    if quick:
        env["GAE_COURSE_QUICK"] = "1"
    else:
        env.pop("GAE_COURSE_QUICK", None)
    env["GAE_COURSE_RESULTS_DIR"] = str(Path(results_dir).resolve())
    if "GAE_COURSE_DATA" not in env and SHARED_DATA.is_dir():
        env["GAE_COURSE_DATA"] = str(SHARED_DATA)
    # ipykernel then picks the inline backend, so the HTML pages get their figures.
    env.pop("MPLBACKEND", None)
    return env


def execute_chapter(notebook_path: Path, build_dir: Path, env: dict, timeout: int | None) -> str | None:
    """Execute one notebook into ``build_dir`` (the .ipynb, with outputs); the error summary, or None."""
    import nbformat
    from jupyter_client.manager import KernelManager
    from nbconvert.preprocessors import CellExecutionError, ExecutePreprocessor
    from traitlets.config import Config

    class CurrentPythonKernel(KernelManager):
        """A kernel of this very Python (the venv), whatever kernelspec the notebook names."""

        def format_kernel_cmd(self, extra_arguments=None):
            return [
                sys.executable,
                "-m",
                "ipykernel_launcher",
                "-f",
                self.connection_file,
                f"--IPKernelApp.exec_files={KERNEL_STARTUP}",
            ]

    notebook = nbformat.read(notebook_path, as_version=4)
    # ipc: Unix sockets, no TCP port (and no TCP warning). Their path must be absolute (the
    # kernel starts in the chapter's folder) and this kernel's own.
    sockets = Path(tempfile.mkdtemp(prefix="gae-kernel-"))
    config = Config({"KernelManager": {"transport": "ipc", "ip": str(sockets / "kernel")}})
    executor = ExecutePreprocessor(
        timeout=timeout, kernel_name="python3", kernel_manager_class=CurrentPythonKernel, config=config
    )
    error = None
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        executor.preprocess(notebook, {"metadata": {"path": str(notebook_path.parent)}})
    except CellExecutionError as exc:
        error = _last_line(exc)
    except Exception as exc:  # kernel died, timeout: still report and write what ran
        error = f"{type(exc).__name__}: {_last_line(exc)}"
    finally:
        os.environ.clear()
        os.environ.update(saved)
        shutil.rmtree(sockets, ignore_errors=True)

    build_dir.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, build_dir / notebook_path.name)
    return error


def _last_line(exc: BaseException) -> str:
    """The error's last non-empty line, without terminal colours ("AssertionError: ...")."""
    import re

    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else type(exc).__name__


# --- the command --------------------------------------------------------------------------


def build_site(build_dir: Path, site_dir: Path, chapters_dir: Path) -> Path:
    """tools/build_site.py on ``build_dir``; the site's index.html."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_site", REPO / "tools" / "build_site.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build(build_dir, site_dir, chapters_dir, REPO / "README.md")


def _relative(path: Path) -> str:
    """``path`` relative to the current folder when it is below it (shorter lines)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="run in quick mode (smoke test)")
    parser.add_argument("--only", nargs="+", metavar="NN", help="chapters to run: 01 05 or 01,05")
    parser.add_argument("--chapters-dir", type=Path, default=REPO / "chapters")
    parser.add_argument("--build-dir", type=Path, default=REPO / "build")
    parser.add_argument("--site-dir", type=Path, help="where the website goes (default: <build-dir>/site)")
    parser.add_argument("--no-site", action="store_true", help="execute the chapters only")
    parser.add_argument(
        "--timeout", type=int, default=3600, help="seconds one cell may run (default 3600)"
    )
    args = parser.parse_args(argv)

    chapters = select_chapters(find_chapters(args.chapters_dir), args.only)
    if not chapters:
        print(f"no chapters (NN_*.ipynb) in {args.chapters_dir}", file=sys.stderr)
        return 1
    build_dir, mode = args.build_dir, "quick" if args.quick else "full"
    site_dir = args.site_dir or build_dir / "site"
    results_dir = build_dir / "results"
    env = kernel_environment(args.quick, results_dir)
    width = max(len(p.stem) for p in chapters)

    print(f"executing {len(chapters)} chapter(s) in {mode} mode into {_relative(build_dir)}/", flush=True)
    fresh, failed = {}, []
    for i, notebook_path in enumerate(chapters, 1):
        stem = notebook_path.stem
        print(f"[{i}/{len(chapters)}] {stem:<{width}} ", end="", flush=True)
        recorded = results_dir / f"{stem}.json"
        recorded.unlink(missing_ok=True)  # never merge a previous run's figures as this one's
        start = time.perf_counter()
        error = execute_chapter(notebook_path, build_dir, env, args.timeout)
        runtime = time.perf_counter() - start
        figures = json.loads(recorded.read_text()) if recorded.exists() else None
        fresh[stem] = chapter_entry(figures, runtime, mode, error)
        page = "" if args.no_site else f"  {_relative(site_dir / f'{stem}.html')}"
        if error:
            failed.append(stem)
            print(f"FAILED after {_fmt_runtime(runtime):>6}{page}", flush=True)
            print(f"    {error}", flush=True)
            print(f"    the failing cell is in {_relative(build_dir / notebook_path.name)}", flush=True)
        else:
            notes = [] if figures else ["the chapter recorded no figures"]
            if figures and figures.get("mode", mode) != mode:
                notes.append(f"the chapter recorded mode {figures['mode']!r}")
            note = f"  ({'; '.join(notes)})" if notes else ""
            print(f"{_fmt_runtime(runtime):>6}{page}{note}", flush=True)

    results_path = build_dir / RESULTS_JSON
    merged = merge_results(load_results(results_path), fresh)
    write_json_atomic(results_path, merged)
    (build_dir / RESULTS_TXT).write_text(summary_table(merged) + "\n", encoding="utf-8")
    print(f"results: {_relative(results_path)} (as a table: {_relative(build_dir / RESULTS_TXT)})")
    status = 0
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        status = 1
    if not args.no_site:
        start = time.perf_counter()
        index = build_site(build_dir, site_dir, args.chapters_dir)
        print(f"site built in {_fmt_runtime(time.perf_counter() - start)}, open: {_relative(index)}")
    return status


if __name__ == "__main__":
    sys.exit(main())
