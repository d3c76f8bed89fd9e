"""JupyterLab as ``make lab`` starts it, used in headless Chromium as a reader would.

The server runs on 127.0.0.1 with a random token, on a copy of the repository's pairing set-up
(``jupytext.toml`` at the root, chapter 1's ``.py`` and ``.ipynb`` in ``chapters/``) and with
``tools/lab/overrides.json``, as in the Makefile. The test opens ``chapters/01_em_gmm.py`` by
its URL (a double click does the same), checks that it is a notebook, runs its setup cell and
sees the printed settings, then runs a one-line tqdm loop and sees the progress bar drawn as a
widget, saves, and checks that Jupytext wrote the new cell to both files of the pair.
"""

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import jupytext
import pytest

REPO = Path(__file__).resolve().parent.parent
CHAPTER = "01_em_gmm"
PROBE = 'for _ in tqdm(range(40), desc="lab check"):\n    time.sleep(0.01)'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab_server(tmp_path):
    """A JupyterLab server on a copy of chapter 1; yields (base URL, token, root folder)."""
    root = tmp_path / "course"
    (root / "chapters").mkdir(parents=True)
    shutil.copy2(REPO / "jupytext.toml", root / "jupytext.toml")
    for suffix in (".py", ".ipynb"):
        shutil.copy2(REPO / "chapters" / f"{CHAPTER}{suffix}", root / "chapters" / f"{CHAPTER}{suffix}")
    port, token = free_port(), secrets.token_hex(16)
    env = dict(os.environ)
    # a private Jupyter home: no user settings, workspaces or runtime files of the machine
    for var, sub in [("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_RUNTIME_DIR", "runtime"),
                     ("JUPYTERLAB_SETTINGS_DIR", "settings"), ("JUPYTERLAB_WORKSPACES_DIR", "workspaces")]:
        env[var] = str(tmp_path / "jupyter" / sub)
    env["GAE_COURSE_QUICK"] = "1"
    log = open(tmp_path / "lab.log", "w")
    server = subprocess.Popen(
        [
            sys.executable, "-m", "jupyter", "lab", "--no-browser",
            "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
            "--LabApp.default_url=/lab/tree/chapters",
            f"--LabApp.app_settings_dir={REPO / 'tools' / 'lab'}",
            "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ]
        + (["--allow-root"] if os.geteuid() == 0 else []),  # CI runs as root
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail("JupyterLab did not start:\n" + (tmp_path / "lab.log").read_text()[-3000:])
            time.sleep(0.5)
        yield base, token, root
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
    assert server.returncode is not None


def contents(base, token, path):
    with urllib.request.urlopen(f"{base}/api/contents/{path}?token={token}&type=notebook&content=1") as r:
        return json.load(r)["content"]


def test_py_and_ipynb_are_the_same_notebook(lab_server):
    base, token, _ = lab_server
    from_py = contents(base, token, f"chapters/{CHAPTER}.py")
    from_ipynb = contents(base, token, f"chapters/{CHAPTER}.ipynb")
    sources = lambda nb: [(c["cell_type"], c["source"]) for c in nb["cells"]]  # noqa: E731
    assert len(from_py["cells"]) > 10
    assert sources(from_py) == sources(from_ipynb)


def test_open_run_and_save_a_chapter(lab_server, browser_context, quick_build_dir_or_tmp):
    page = browser_context.new_page()
    try:
        open_run_and_save(page, *lab_server, quick_build_dir_or_tmp)
    except Exception:
        page.screenshot(path=str(quick_build_dir_or_tmp / "lab-failure.png"))
        raise
    finally:
        page.close()


def open_run_and_save(page, base, token, root, screenshots):
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    outgoing = []
    page.on(
        "request",
        lambda r: outgoing.append(r.url) if not r.url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:")) else None,
    )
    page.goto(f"{base}/lab/tree/chapters/{CHAPTER}.py?token={token}")
    notebook = page.locator(".jp-NotebookPanel:visible .jp-Notebook")
    notebook.wait_for(timeout=90_000)  # a notebook, not the text editor
    page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=120_000)  # the kernel is up
    news = page.get_by_role("button", name="No")
    if news.count():
        news.first.click()  # "get notified about Jupyter news?"

    # the setup cell: the first code cell, selected by its prompt and run
    setup = page.locator(".jp-NotebookPanel:visible .jp-CodeCell").first
    output = setup.locator(".jp-OutputArea-output")
    for _ in range(3):  # a key press can land before the notebook listens: try again
        setup.locator(".jp-InputPrompt").click()
        page.keyboard.press("Shift+Enter")
        try:
            output.first.wait_for(timeout=40_000)
            break
        except Exception:
            continue
    output.first.wait_for(timeout=5_000)
    page.wait_for_function(
        "el => el.innerText.includes('N_PIXEL_TRAIN')", arg=output.first.element_handle(), timeout=120_000
    )
    settings = output.first.inner_text()
    assert "mode: quick" in settings and "N_TOY" in settings

    # a new cell below the setup cell, with a progress bar
    setup.locator(".jp-InputPrompt").click()
    page.keyboard.press("b")
    new_cell = page.locator(".jp-NotebookPanel:visible .jp-CodeCell").nth(1)
    new_cell.locator(".jp-InputArea-editor").click()
    page.keyboard.insert_text(PROBE)
    page.keyboard.press("Shift+Enter")
    bar = new_cell.locator(".jp-OutputArea-output .widget-progress, .jp-OutputArea-output .jupyter-widgets.widget-hprogress")
    bar.first.wait_for(timeout=60_000)
    page.wait_for_function(
        "el => el.innerText.includes('40/40')",
        arg=new_cell.locator(".jp-OutputArea-output").first.element_handle(),
        timeout=60_000,
    )
    page.screenshot(path=str(screenshots / "lab-01_em_gmm.png"))

    # save: Jupytext writes both files of the pair
    page.keyboard.press("Escape")
    page.keyboard.press("Control+s")
    py, ipynb = root / "chapters" / f"{CHAPTER}.py", root / "chapters" / f"{CHAPTER}.ipynb"
    deadline = time.monotonic() + 30
    while 'desc="lab check"' not in py.read_text() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert 'desc="lab check"' in py.read_text()
    paired = jupytext.read(ipynb)
    probe_cells = [c for c in paired.cells if 'desc="lab check"' in c.source]
    assert len(probe_cells) == 1 and probe_cells[0].outputs, "the .ipynb lacks the new cell or its outputs"
    assert [c.source for c in jupytext.read(py).cells] == [c.source for c in paired.cells]
    assert not errors, errors
    assert not outgoing, f"JupyterLab asked the network for {outgoing[:5]}"


@pytest.fixture
def quick_build_dir_or_tmp(tmp_path):
    """Where the JupyterLab screenshot goes: the quick build folder when there is one."""
    build = Path(os.environ.get("GAE_COURSE_SITE_BUILD", REPO / "build-quick"))
    build = build if build.is_absolute() else REPO / build
    folder = build / "screenshots" if build.is_dir() else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder
