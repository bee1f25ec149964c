"""Regenerate the dashboard's screenshots in docs/ (docs/dashboard.md shows them).

A daemon in a scratch copy of the example project runs the example toolchain a few times
(one run fails), then Debian's chromium (through chromium-driver) takes each page in English
and in Simplified Chinese: docs/dashboard-<page>-<en|zh_CN>.png. Chinese needs a CJK font
(apt-get install fonts-wqy-microhei). ``python scripts/dashboard_screenshots.py``
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
PAGES = {  # name -> path (the run page's is filled in)
    "runs": "/ui/",
    "run": "/ui/runs/{run}",
    "form": "/ui/toolchains/export-job",
    "toolchains": "/ui/toolchains",
    "tools": "/ui/tools",
    "workers": "/ui/workers",
    "login": "/ui/login",
}


def start_daemon(project: Path, home: Path) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "toolrun", "daemon", "-p", "0"],
        cwd=project,
        env={**os.environ, "TOOLRUN_HOME": str(home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            if '"listening"' in line:
                url.append(json.loads(line)["url"])
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(30) or not url:
        process.kill()
        raise SystemExit("the daemon did not start")
    return process, url[0]


def make_runs(url: str) -> str:
    """A few runs of the example; the id of a succeeded one."""
    bodies = [
        {"toolchain": "export-job", "params": {"table": "d01", "push": False}},
        {"toolchain": "export-job", "params": {"table": "d02", "push": False}},
        {"toolchain": "export-job", "params": {"table": "nope", "push": False}},
        {"toolchain": "export-job", "params": {"table": "d01", "push": True}},
    ]
    ids = []
    for body in bodies:
        answer = httpx.post(f"{url}/api/v1/runs", json=body, timeout=60)
        answer.raise_for_status()
        ids.append(answer.json()["id"])
        while httpx.get(f"{url}/api/v1/runs/{ids[-1]}").json()["status"] in ("queued", "running"):
            time.sleep(0.1)
    return ids[0]


def shoot(url: str, run_id: str) -> list[Path]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"):
        options.add_argument(argument)
    options.add_argument("--window-size=1280,900")
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    written = []
    try:
        for language in ("en", "zh_CN"):
            for name, path in PAGES.items():
                driver.get(f"{url}{path.format(run=run_id)}?lang={language}")
                time.sleep(0.5)  # the script's local times
                # The whole page, not the window: Chrome's own full-page capture.
                shot = driver.execute_cdp_cmd(
                    "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}
                )
                target = DOCS / f"dashboard-{name}-{language}.png"
                target.write_bytes(base64.b64decode(shot["data"]))
                written.append(target)
    finally:
        driver.quit()
    return written


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        project = Path(scratch) / "project"
        for part in ("toolchains", "registry", "examples"):
            shutil.copytree(REPO / part, project / part)
        daemon, url = start_daemon(project, Path(scratch) / "home")
        try:
            run_id = make_runs(url)
            for path in shoot(url, run_id):
                print(f"wrote {path.relative_to(REPO)}")
        finally:
            daemon.terminate()
            daemon.wait(30)


if __name__ == "__main__":
    main()
