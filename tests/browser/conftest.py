"""The browser-side checks: AJV 8 against the server's verdicts, and a react-jsonschema-form page
in headless Chromium. Their Node packages are installed here from the committed lock file
(``tests/js/package-lock.json``) with ``npm ci``, once per lock file: a later run finds
``node_modules`` current and installs nothing. No browser is ever downloaded; the page runs in
the system's Chromium (Debian ``chromium``), which ``.ci/run`` installs on CI when it is missing.

Outside CI a missing Node/npm or Chromium skips these tests with the reason; on CI (``CI=true``)
it fails them, so that a green CI cannot hide a browser check that never ran.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from browser_support import AGREEMENT, JS_DIR, summary_lines, unavailable

_STAMP = ".lowcode-lock-sha256"


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """``tests/js/node_modules`` installed from the committed lock file (cached by its hash)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        unavailable("Node.js and npm are needed for the AJV and browser checks and were not found")
    assert node is not None and npm is not None
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    digest = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        digest.update((JS_DIR / name).read_bytes())
    digest.update(version.encode())
    wanted = digest.hexdigest()
    target = JS_DIR / "node_modules"
    # Two pytest runs at once (a developer's and an editor's) must not both run `npm ci`,
    # which starts by deleting node_modules.
    with open(JS_DIR / ".npm-ci.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stamp = target / _STAMP
        if stamp.exists() and stamp.read_text().strip() == wanted:
            return target
        env = {**os.environ, "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1", "PUPPETEER_SKIP_DOWNLOAD": "1"}
        result = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=JS_DIR, env=env,
                                capture_output=True, text=True, timeout=600, check=False)
        if result.returncode != 0:
            pytest.fail(f"npm ci failed in {JS_DIR} (exit {result.returncode}):\n{result.stdout[-3000:]}\n"
                        f"{result.stderr[-3000:]}")
        stamp.write_text(wanted + "\n")
    return target


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    tally = config.stash.get(AGREEMENT, None)
    if tally is None:
        return
    terminalreporter.section("browser agreement")
    for line in summary_lines(tally):
        terminalreporter.write_line(line)
