"""The dashboard in a real browser: Debian's chromium, driven through chromium-driver.

A person starts a toolchain from its form and watches its log grow and its state change; the
runs list follows without a reload; a dropped connection resumes with every line once; the
page switches to Chinese; a token signs in (and a wrong one does not); a form on another
site cannot start anything.
"""

from __future__ import annotations

import contextlib
import http.server
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import StartDaemon, Toolrun, WriteToolchain

SLOW = (
    "params:\n  count: {type: integer, default: 12}\n"
    "toolchain:\n  - drip: {cmd: probe, args: [drip, '${{ params.count }}', '0.25']}\n"
)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    assert binary and driver_path, (
        "Debian's chromium and chromium-driver are needed (apt-get install -y chromium "
        "chromium-driver; .ci/run does)"
    )
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
    ):
        options.add_argument(argument)
    options.add_experimental_option("prefs", {"intl.accept_languages": "en-US,en"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


def until(check: Callable[[], Any], seconds: float = 15, what: str = "") -> Any:
    deadline = time.monotonic() + seconds
    while True:
        with contextlib.suppress(Exception):
            found = check()
            if found:
                return found
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what or check}")
        time.sleep(0.05)


class CuttableProxy:
    """A TCP relay to the daemon whose connections the test can cut, as a flaky network does."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.open: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:  # the daemon is gone (the test is ending)
                client.close()
                continue
            with self.lock:
                self.open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def cut(self) -> None:
        with self.lock:
            for sock in self.open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self.open = []

    def close(self) -> None:
        self.cut()
        self.listener.close()


def log_lines(browser: Any) -> list[str]:
    text: str = browser.execute_script("return document.querySelector('[data-log]').textContent")
    return [line for line in text.splitlines() if line.startswith("drip ")]


def test_a_run_started_from_the_form_is_followed_live_through_a_dropped_connection(
    browser: Any, daemon: StartDaemon, toolchain: WriteToolchain
) -> None:
    from selenium.webdriver.common.by import By

    toolchain("slow", SLOW)
    server = daemon()
    port = int(server.url.rsplit(":", 1)[1])
    proxy = CuttableProxy(port)
    base = f"http://127.0.0.1:{proxy.port}"
    try:
        # The runs list, open before anything runs, shows a run started elsewhere and its end.
        browser.get(f"{base}/ui/")
        assert "No run matches." in browser.page_source
        other = httpx.post(
            f"{server.url}/api/v1/runs", json={"cmd": "probe", "args": ["sleep", "0.5"]}
        ).json()["id"]
        until(lambda: browser.find_element(By.CSS_SELECTOR, f'tr[data-run="{other}"]'), what="row")
        until(
            lambda: (
                "succeeded"
                in browser.find_element(By.CSS_SELECTOR, f'tr[data-run="{other}"] .badge').text
            ),
            what="the row's new state",
        )

        browser.get(f"{base}/ui/toolchains/slow")
        field = browser.find_element(By.ID, "param-count")
        field.clear()
        field.send_keys("16")
        field.submit()
        until(lambda: "/ui/runs/" in browser.current_url, what="the run's page")
        run_id = browser.current_url.rsplit("/", 1)[1]
        until(lambda: len(log_lines(browser)) >= 3, what="lines while it runs")
        # The page swaps its status element as events come: read it afresh until it says so.
        until(
            lambda: browser.find_element(By.CSS_SELECTOR, "[data-run-status]").text == "running",
            what="the running state",
        )
        proxy.cut()  # the browser's EventSource reconnects, sending Last-Event-ID
        until(
            lambda: browser.find_element(By.CSS_SELECTOR, "[data-run-status]").text == "succeeded",
            seconds=30,
            what="the run's end, after the cut",
        )
        until(lambda: len(log_lines(browser)) >= 16, what="every line")
        assert log_lines(browser) == [f"drip {n}" for n in range(16)], "a gap or a repeat"
        # ... and the page reloaded at the end shows the same log from the store.
        stored = httpx.get(f"{server.url}/api/v1/runs/{run_id}/log").text.splitlines()
        assert [line for line in stored if line.startswith("drip ")] == log_lines(browser)
        times = browser.find_elements(By.CSS_SELECTOR, "time")
        assert times and all("UTC" not in t.text for t in times), "shown in the viewer's zone"

        # The page may still be swapping parts as the run's last events land: find it afresh.
        until(lambda: browser.find_element(By.LINK_TEXT, "简体中文").click() or True, what="zh")
        until(lambda: "运行" in browser.find_element(By.CSS_SELECTOR, "header nav").text)
        assert browser.find_element(By.CSS_SELECTOR, "[data-run-status]").text == "成功"
        browser.get(f"{base}/ui/")
        assert "工具链" in browser.page_source, "the choice is kept"
        until(lambda: browser.find_element(By.LINK_TEXT, "English").click() or True, what="en")
        until(lambda: "Toolchains" in browser.find_element(By.CSS_SELECTOR, "header nav").text)
    finally:
        proxy.close()


def test_signing_in_and_a_form_on_another_site(
    browser: Any, daemon: StartDaemon, toolchain: WriteToolchain, toolrun: Toolrun, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    toolchain("slow", SLOW)
    secret = toolrun("daemon", "token", "create", "ana", "--scope", "run").stdout.strip()
    server = daemon()
    browser.get(f"{server.url}/ui/toolchains/slow")
    until(lambda: "/ui/login" in browser.current_url)
    box = browser.find_element(By.NAME, "token")
    box.send_keys("trk_not-a-token")
    box.submit()
    until(lambda: "That token is not one this daemon knows." in browser.page_source)
    box = browser.find_element(By.NAME, "token")
    box.send_keys(secret)
    box.submit()
    until(lambda: browser.current_url.endswith("/ui/toolchains/slow"), what="back where asked")
    assert "ana" in browser.find_element(By.CSS_SELECTOR, "header").text

    # Another site's page posts a form to the daemon, with the browser's cookies if it could.
    attack = tmp_path / "attack"
    attack.mkdir()
    (attack / "index.html").write_text(
        f'<form id="f" method="post" action="{server.url}/ui/toolchains/slow">'
        '<input name="param.count" value="1"></form>'
        "<script>document.getElementById('f').submit()</script>"
    )
    handler = lambda *args: http.server.SimpleHTTPRequestHandler(  # noqa: E731
        *args, directory=str(attack)
    )
    site = http.server.ThreadingHTTPServer(("127.0.0.2", 0), handler)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    try:
        browser.get(f"http://127.0.0.2:{site.server_address[1]}/index.html")
        until(lambda: "cross_site" in browser.page_source, what="the daemon's refusal")
    finally:
        site.shutdown()
    runs = httpx.get(
        f"{server.url}/api/v1/runs", headers={"authorization": f"Bearer {secret}"}
    ).json()["runs"]
    assert runs == [], "another site started a run"
