"""The operator CLI over the admin API, and the status page in a real headless browser."""

from __future__ import annotations

import asyncio
import io
import json
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

from smsgw.admin import client
from smsgw.cli import build_parser
from tests import engines
from tests.http_helpers import http
from tests.stack import SHIPPED_CONFIG, Stack, on_loop, start_stack

pytestmark = pytest.mark.usefixtures("store_engine")

ADMIN = "dev-backoffice-3Qm9xT7vK2pL8wR4"
READER = "dev-monitoring-Z6hN1cV5bJ0sY3eU"

CHROMIUM = next((found for name in ("chromium", "chromium-browser", "google-chrome")
                 if (found := shutil.which(name))), None)


def port(stack: Stack) -> int:
    assert stack.gateway.admin is not None
    return stack.gateway.admin.port


async def smsgw(*argv: str) -> tuple[int, str, str]:
    """`smsgw ARGV` in a worker thread: the CLI blocks on HTTP, the gateway's loop must keep serving.
    Its output is collected apart from stdout, where the gateway logs."""
    args = build_parser().parse_args(list(argv))
    out, err = io.StringIO(), io.StringIO()
    code = await asyncio.to_thread(client.run, args, out, err)
    return code, out.getvalue(), err.getvalue()


@on_loop
async def test_cli_status_routes_pause_resume_reload_audit_over_the_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    stack = await start_stack(tmp_path)
    try:
        url = f"http://127.0.0.1:{port(stack)}"
        monkeypatch.setenv("SMSGW_TOKEN", READER)
        code, out, _ = await smsgw("status", "--url", url)
        assert code == 0
        assert re.search(r"(?m)^omantel\s+bound\s", out) and "friendi" in out and "ooredoo" in out
        code, out, _ = await smsgw("status", "--url", url, "--json")
        assert code == 0 and len(json.loads(out)["carriers"]) == 3

        # The read-only token from the environment cannot pause; --token overrides it.
        code, _, err = await smsgw("pause", "ooredoo", "--url", url)
        assert code == 1 and "read-only" in err and not stack.gateway.queue.senders["ooredoo"].paused
        code, out, _ = await smsgw("pause", "ooredoo", "--url", url, "--token", ADMIN)
        assert code == 0 and "ooredoo: paused" in out and stack.gateway.queue.senders["ooredoo"].paused
        code, out, _ = await smsgw("status", "--url", url)
        assert re.search(r"(?m)^ooredoo\s+paused\s", out)
        code, out, _ = await smsgw("resume", "ooredoo", "--url", url, "--token", ADMIN)
        assert code == 0 and not stack.gateway.queue.senders["ooredoo"].paused

        monkeypatch.setenv("SMSGW_TOKEN", ADMIN)
        code, out, _ = await smsgw("routes", "add", "INFO", "help", "--alias", "معلومات",
                                   "--short-code", "90091", "--url", url)
        assert code == 0 and "created" in out
        [reply] = await stack.texts("omantel", "96891230020", "90091", "معلومات")
        assert "90091" in reply
        code, out, _ = await smsgw("routes", "list", "--url", url)
        assert re.search(r"(?m)^INFO\s+معلومات\s+help\s+90091\s+api$", out)
        # No action: the list, as `status` shows the links (options before or after work alike).
        assert await smsgw("routes", "--url", url) == (code, out, "")
        code, out, _ = await smsgw("routes", "--url", url, "--json")
        assert code == 0 and "INFO" in [r["keyword"] for r in json.loads(out)["routes"]]
        code, out, _ = await smsgw("routes", "--json", "list", "--url", url)
        assert code == 0 and json.loads(out)["routes"]
        code, out, _ = await smsgw("routes", "add", "INFO", "nonexistent", "--url", url)
        assert code == 1
        code, out, _ = await smsgw("routes", "remove", "INFO", "--short-code", "90091", "--url", url)
        assert code == 0 and "removed" in out
        code, out, _ = await smsgw("routes", "list", "--url", url, "--json")
        assert "INFO" not in [r["keyword"] for r in json.loads(out)["routes"]]

        # The stack's config is the shipped file, whose store path differs: a reload is refused.
        code, out, _ = await smsgw("reload", "--url", url)
        assert code == 1 and "refused" in out and engines.config_key() in out

        code, out, _ = await smsgw("audit", "--url", url)
        assert code == 0
        for action in ("pause", "resume", "route_put", "route_delete", "reload"):
            assert re.search(rf"token:backoffice\s+{action}\s", out), action
    finally:
        await stack.stop()


def test_cli_takes_the_address_from_the_config_and_needs_a_token(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SMSGW_TOKEN", raising=False)
    assert client.run(build_parser().parse_args(["status", "--config", str(SHIPPED_CONFIG)])) == 2
    assert "SMSGW_TOKEN" in capsys.readouterr().err
    args = build_parser().parse_args(["status", "--config", str(SHIPPED_CONFIG)])
    assert client._base_url(args) == "http://127.0.0.1:12790"


class _Page(HTMLParser):
    """Carrier rows (name → shown state) and the message rows of the rendered page."""

    def __init__(self) -> None:
        super().__init__()
        self.carriers: dict[str, str] = {}
        self.messages = 0
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tr" and a.get("class") == "carrier":
            self.carriers[a["data-carrier"] or ""] = a["data-state"] or ""
        if tag == "tr" and a.get("class") == "message":
            self.messages += 1

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def dump_dom(url: str) -> str:
    """What a real browser renders at `url` (scripts run, meta refresh ignored by --dump-dom)."""
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
             "--dump-dom", url],
            check=False, capture_output=True, text=True, timeout=60,
        )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on PATH (Debian: apt-get install chromium); "
                                             "the status page browser test needs a real headless browser")
@on_loop
async def test_status_page_in_a_headless_browser_shows_three_carriers_and_a_paused_one(tmp_path: Path) -> None:
    stack = await start_stack(tmp_path)
    try:
        p = port(stack)
        await stack.send("omantel", "96891230030", "90091", "HELP")
        assert (await http(p, "POST", "/api/v1/carriers/friendi/pause", token=ADMIN)).status == 200

        page = _Page()
        page.feed(await asyncio.to_thread(dump_dom, f"http://127.0.0.1:{p}/?token={READER}"))
        assert page.carriers == {"friendi": "paused", "omantel": "bound", "ooredoo": "bound"}
        text = " ".join(page.text)
        assert "smsgw" in text and "monitoring" in text  # who is signed in: the token's name
        assert page.messages == 2  # the MO and its reply
        assert "9689****030" in text and "96891230030" not in text

        login = _Page()
        login.feed(await asyncio.to_thread(dump_dom, f"http://127.0.0.1:{p}/?token=wrong-token-0123456789abcdefgh"))
        assert login.carriers == {} and "not valid" in " ".join(login.text)
        anonymous = await http(p, "GET", "/")
        assert anonymous.status == 401 and b'name="token"' in anonymous.raw
        assert (await http(p, "GET", f"/?token={READER}")).header("referrer-policy") == "no-referrer"
    finally:
        await stack.stop()
