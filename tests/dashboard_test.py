"""The dashboard's pages over real HTTP from a real daemon: what they show, the form that starts
a run, sign-in with a token, CSRF, escaping of whatever tools and people write, and errors as
pages. (In a real browser: dashboard_browser_test.py.)"""

from __future__ import annotations

import re

import httpx
import pytest
from conftest import StartDaemon, Toolrun, WriteToolchain
from daemon_seed_test import TIMEOUT, wait_ended

HOSTILE = "<script>alert(1)</script>"

FORM = (
    "description: 'Export <b>tables</b> <script>alert(2)</script>'\n"
    "params:\n"
    "  table: {type: string, default: d01, description: which table}\n"
    "  count: {type: integer, required: true}\n"
    "  push: {type: boolean, default: false}\n"
    "  level: {type: string, choices: [low, high], default: low}\n"
    "toolchain:\n"
    "  - say: {cmd: probe, args: [echo, '${{ params.table }}', '${{ params.count }}',"
    " '${{ params.push }}', '${{ params.level }}']}\n"
)


def csrf_of(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, page.text[:500]
    return found.group(1)


def test_the_root_leads_to_the_runs_and_every_page_is_html_with_its_guards(
    daemon: StartDaemon, toolchain: WriteToolchain
) -> None:
    toolchain("form", FORM)
    toolchain("broken", "toolchain:\n  - '<script>alert(4)</script>': {cmd: probe}\n")
    server = daemon()
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        root = client.get("/")
        assert root.status_code == 302 and root.headers["location"] == "/ui/"
        for path in ("/ui/", "/ui/toolchains", "/ui/toolchains/form", "/ui/tools", "/ui/workers"):
            page = client.get(path)
            assert page.status_code == 200, (path, page.text[:300])
            assert page.headers["content-type"].startswith("text/html")
            policy = page.headers["content-security-policy"]
            assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
            # No inline script anywhere: the only one is our file.
            assert re.findall(r"<script[^>]*>", page.text) == [
                '<script src="/ui/static/toolrun.js" defer>'
            ]
        missing = client.get("/ui/runs/20990101000000-1")
        assert missing.status_code == 404 and "There is no run 20990101000000-1." in missing.text
        assert client.get("/ui/runs/..%2Fetc").status_code == 404
        assert client.get("/ui/nothing-here").status_code == 404
        assert "Traceback" not in missing.text
        script = client.get("/ui/static/toolrun.js")
        assert script.status_code == 200 and "EventSource" in script.text
        # Whatever a toolchain's author wrote is text on the page, not markup.
        form = client.get("/ui/toolchains/form").text
        assert "&lt;script&gt;alert(2)&lt;/script&gt;" in form and "<b>tables</b>" not in form
        listed = client.get("/ui/toolchains").text
        assert "&lt;script&gt;alert(4)&lt;/script&gt;" in listed, "a step id no loader takes"
        assert "<script>alert(4)" not in listed


def test_the_form_starts_a_run_and_says_what_is_wrong_field_by_field(
    daemon: StartDaemon, toolchain: WriteToolchain
) -> None:
    toolchain("form", FORM)
    server = daemon()
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        page = client.get("/ui/toolchains/form")
        csrf = csrf_of(page)
        assert client.cookies.get("toolrun_csrf") == csrf
        bad = client.post(
            "/ui/toolchains/form",
            data={"csrf": csrf, "param.count": "many", "param.level": "medium"},
        )
        assert bad.status_code == 400
        assert re.search(r'data-field="count">Must be a whole number\.', bad.text)
        assert re.search(r'data-field="level">Must be one of: low, high\.', bad.text)
        assert 'value="many"' in bad.text, "what was typed is kept"
        chinese = client.post(
            "/ui/toolchains/form",
            data={"csrf": csrf},
            headers={"accept-language": "zh-CN,zh;q=0.9,en;q=0.5"},
        )
        assert chinese.status_code == 400 and 'data-field="count">必填。' in chinese.text
        started = client.post(
            "/ui/toolchains/form",
            data={
                "csrf": csrf,
                "param.table": HOSTILE,
                "param.count": "3",
                "present": "push",
                "param.push": "true",
            },
        )
        assert started.status_code == 303, started.text[:500]
        run_id = started.headers["location"].removeprefix("/ui/runs/")
        assert wait_ended(client, run_id)["status"] == "succeeded"
        run = client.get(f"/api/v1/runs/{run_id}").json()
        assert run["params"]["count"] == 3 and run["params"]["push"] is True
        assert run["origin"] == "daemon"
        shown = client.get(f"/ui/runs/{run_id}")
        assert shown.status_code == 200
        assert HOSTILE not in shown.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in shown.text
        assert '<svg xmlns="http://www.w3.org/2000/svg" class="dag"' in shown.text
        assert '<g data-step="say"><title>say: succeeded</title>' in shown.text
        assert 'class="timeline"' in shown.text
        recent = client.get("/ui/toolchains/form", params={"period": "1d"}).text
        assert "1 runs" in recent and "succeeded 100%" in recent and 'class="bars"' in recent
        listed = client.get("/ui/", params={"toolchain": "form"})
        assert f'href="/ui/runs/{run_id}"' in listed.text
        assert client.get("/ui/", params={"toolchain": "other"}).text.count("/ui/runs/") == 0

        # A form posted without its token (another site's, a stale one) changes nothing.
        forged = client.post("/ui/toolchains/form", data={"csrf": "x" * 32, "param.count": "1"})
        assert forged.status_code == 403 and "another site" in forged.text
        other_site = client.post(
            "/ui/toolchains/form",
            data={"csrf": csrf, "param.count": "1"},
            headers={"origin": "http://evil.example", "sec-fetch-site": "cross-site"},
        )
        assert other_site.status_code == 403
        assert len(client.get("/api/v1/runs").json()["runs"]) == 1


def test_the_runs_filters_stay_in_the_url_and_bad_ones_are_named(
    daemon: StartDaemon, toolrun: Toolrun
) -> None:
    server = daemon()
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        ids = [
            client.post("/api/v1/runs", json={"cmd": "probe", "args": ["echo", str(n)]}).json()[
                "id"
            ]
            for n in range(3)
        ]
        failed = client.post("/api/v1/runs", json={"cmd": "probe", "args": ["fail", "2"]}).json()
        for run_id in [*ids, failed["id"]]:
            wait_ended(client, run_id)
        page = client.get("/ui/", params={"status": "failed"})
        assert page.status_code == 200
        assert f"/ui/runs/{failed['id']}" in page.text
        assert not any(f"/ui/runs/{run_id}" in page.text for run_id in ids)
        assert '<option value="failed" selected>' in page.text
        bad = client.get("/ui/", params={"status": "sleeping", "since": "yesterday-ish"})
        assert bad.status_code == 400
        assert "Not a status a run can have." in bad.text and "Write a date" in bad.text
        rows = client.get("/ui/", params={"fragment": "rows"})
        assert rows.text.startswith('<table><tbody id="run-rows">') and "<html" not in rows.text
        run_page = client.get(f"/ui/runs/{failed['id']}")
        assert "Rerun" in run_page.text and "Cancel" not in run_page.text


def test_with_tokens_a_browser_signs_in_once_and_does_what_its_token_may(
    daemon: StartDaemon, toolchain: WriteToolchain, toolrun: Toolrun
) -> None:
    toolchain("form", FORM)
    runner = toolrun("daemon", "token", "create", "ana", "--scope", "run").stdout.strip()
    reader = toolrun("daemon", "token", "create", "qa", "--scope", "read").stdout.strip()
    server = daemon()
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        asked = client.get("/ui/toolchains/form")
        assert asked.status_code == 303
        assert asked.headers["location"] == "/ui/login?next=/ui/toolchains/form"
        login = client.get(asked.headers["location"])
        csrf = csrf_of(login)
        wrong = client.post(
            "/ui/login", data={"csrf": csrf, "token": "trk_nope", "next": "/ui/toolchains/form"}
        )
        assert wrong.status_code == 401 and "That token is not one this daemon knows." in wrong.text
        elsewhere = client.post(
            "/ui/login", data={"csrf": csrf, "token": runner, "next": "https://evil.example/"}
        )
        assert elsewhere.status_code == 303 and elsewhere.headers["location"] == "/ui/"
        cookie = elsewhere.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Max-Age=" in cookie
        page = client.get("/ui/toolchains/form")
        assert page.status_code == 200 and "ana" in page.text
        started = client.post("/ui/toolchains/form", data={"csrf": csrf, "param.count": "1"})
        assert started.status_code == 303
        run_id = started.headers["location"].removeprefix("/ui/runs/")
        # The session reads the API too (an EventSource cannot send a header) ...
        events = client.get(f"/api/v1/runs/{run_id}/events", params={"follow": "false"})
        assert events.status_code == 200 and "run_started" in events.text
        assert wait_ended(client, run_id)["requester"] == "ana"
        # ... but changes nothing there: that needs the token itself, or a page's form.
        assert client.post(f"/api/v1/runs/{run_id}/rerun").status_code == 401
        client.post("/ui/logout", data={"csrf": csrf})
        assert client.get("/ui/").status_code == 303

    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        csrf = csrf_of(client.get("/ui/login"))
        client.post("/ui/login", data={"csrf": csrf, "token": reader})
        form = client.get("/ui/toolchains/form")
        assert "may look at this toolchain but not run it" in form.text
        refused = client.post("/ui/toolchains/form", data={"csrf": csrf, "param.count": "1"})
        assert refused.status_code == 403 and "scope read" in refused.text
        client.cookies.set("toolrun_session", "forged-" + "x" * 40, path="/")
        assert client.get("/ui/").status_code == 303


def test_a_link_from_another_site_opens_the_page(daemon: StartDaemon, toolrun: Toolrun) -> None:
    """A designer clicks a run's link in a chat: a top-level GET from another site is shown;
    anything else from another site is refused as before."""
    server = daemon()
    visit = {
        "sec-fetch-site": "cross-site",
        "sec-fetch-mode": "navigate",
        "sec-fetch-dest": "document",
    }
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        assert client.get("/ui/", headers=visit).status_code == 200
        fetched = {**visit, "sec-fetch-mode": "cors", "sec-fetch-dest": "empty"}
        assert client.get("/ui/", headers=fetched).status_code == 403
        assert client.get("/api/v1/runs", headers=visit).status_code == 403
        assert client.post("/ui/login", headers=visit, data={}).status_code == 403


def test_a_10_mb_line_and_hostile_output_stay_text_on_a_small_page(daemon: StartDaemon) -> None:
    server = daemon()
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        big = client.post("/api/v1/runs", json={"cmd": "probe", "args": ["bigline", "10000000"]})
        hostile = client.post(
            "/api/v1/runs",
            json={"cmd": "probe", "args": ["echo", HOSTILE, "javascript:alert(3)", "</pre>"]},
        )
        for answer in (big, hostile):
            wait_ended(client, answer.json()["id"])
        page = client.get(f"/ui/runs/{big.json()['id']}")
        assert page.status_code == 200 and len(page.content) < 1_100_000
        assert "[…]" in page.text, "the line is shown cut, the download has it whole"
        whole = client.get(f"/api/v1/runs/{big.json()['id']}/log").content
        assert len(whole) > 10_000_000
        shown = client.get(f"/ui/runs/{hostile.json()['id']}").text
        assert HOSTILE not in shown and "&lt;/pre&gt;" in shown
        assert 'href="javascript:' not in shown and "javascript:alert(3)" in shown


def test_a_session_ends_when_it_expires_or_its_token_is_revoked() -> None:
    from toolrun.config import TokenRef
    from toolrun.dashboard.sessions import Sessions

    token = TokenRef("ana", "a" * 64, "run", (), "")
    sessions = Sessions(lifetime=-1)
    expired = sessions.open(token)
    assert sessions.get(expired, (token,)) is None
    sessions = Sessions()
    live = sessions.open(token)
    assert sessions.get(live, (token,)) is not None
    assert sessions.get(live, ()) is None, "a revoked token's session ends"
    assert sessions.get("x" * 200, (token,)) is None


@pytest.mark.parametrize(
    ("header", "language"),
    [
        ("zh-CN,zh;q=0.9", "zh_CN"),
        ("zh-TW", "zh_CN"),
        ("fr-FR,en;q=0.5", "en"),
        ("de, zh;q=0", "en"),
        ("", "en"),
        ("en;q=0.2, zh;q=0.8", "zh_CN"),
        ("x;q=abc, zh", "zh_CN"),
    ],
)
def test_the_language_follows_the_browser(header: str, language: str) -> None:
    from toolrun.dashboard.i18n import choose

    assert choose(None, header) == language
    assert choose("en", header) == "en"  # chosen on a page, it stays


def test_the_run_page_pauses_and_resumes_a_run(
    daemon: StartDaemon, toolchain: WriteToolchain
) -> None:
    import time

    toolchain(
        "two",
        "toolchain:\n  - first: {cmd: probe, args: [sleep, '0.5']}\n"
        "  - second: {cmd: probe, args: [echo, second], needs: [first]}\n",
    )
    server = daemon()
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        run_id = client.post("/api/v1/runs", json={"toolchain": "two"}).json()["id"]
        page = client.get(f"/ui/runs/{run_id}")
        assert f'action="/ui/runs/{run_id}/pause"' in page.text
        forged = client.post(f"/ui/runs/{run_id}/pause", data={"csrf": "x" * 32})
        assert forged.status_code == 403
        paused = client.post(f"/ui/runs/{run_id}/pause", data={"csrf": csrf_of(page)})
        assert paused.status_code == 303
        deadline = time.monotonic() + 10
        while client.get(f"/api/v1/runs/{run_id}").json()["status"] != "paused":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        page = client.get(f"/ui/runs/{run_id}", headers={"accept-language": "zh-CN"})
        assert "data-run-status>已暂停</span>" in page.text
        assert f'action="/ui/runs/{run_id}/resume"' in page.text and "继续" in page.text
        time.sleep(1)
        steps = client.get(f"/api/v1/runs/{run_id}").json()["steps"]
        assert [s["status"] for s in steps] == ["succeeded", "pending"]
        client.post(f"/ui/runs/{run_id}/resume", data={"csrf": csrf_of(page)})
        assert wait_ended(client, run_id)["status"] == "succeeded"
