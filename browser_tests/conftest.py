"""Headless Chromium for the browser tests (``make test-browser``).

Debian's ``chromium`` is driven by Playwright for Python through its executable (Playwright's
own browser downloads are neither used nor needed). Each test session gets a new, empty
profile folder, and the flags keep Chromium from calling home: no background networking,
component updates, sync or QUIC.
"""

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_executable() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("no chromium on PATH: `apt-get install -y chromium` (as root; .ci/run does it)")


@pytest.fixture(scope="session")
def browser_context(tmp_path_factory):
    """A Chromium context on a fresh profile, shared by the tests of the session."""
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=chromium_executable(),
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture(scope="session")
def quick_build() -> Path:
    """The quick-mode build folder the site tests check (``make test-browser`` fills it)."""
    build = Path(os.environ.get("GAE_COURSE_SITE_BUILD", REPO / "build-quick"))
    if not build.is_absolute():
        build = REPO / build
    if not (build / "site" / "index.html").exists():
        pytest.fail(
            f"no site in {build}/site: run `make test-browser` (or tools/run_course.py --quick "
            f"--build-dir {build}) first"
        )
    return build
