"""Headless Chromium driven over the DevTools protocol, for the HTML report's tests.

Debian's ``chromium`` (``.ci/run`` installs it) is started on 127.0.0.1 with a
private profile in the test's tmp folder; the page's console messages, uncaught
exceptions, JavaScript dialogs and network requests are recorded from the moment
it is created.  The browser's whole process group is killed when the block ends.
"""
from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import websocket

LISTENING = re.compile(r"DevTools listening on (ws://127\.0\.0\.1:(\d+)/\S+)")


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Page:
    """One page target: commands in order, events kept in ``events``."""

    def __init__(self, ws_url: str, deadline: float):
        self.deadline = deadline
        self.ws = websocket.create_connection(ws_url, timeout=10, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict] = []

    def _recv(self) -> dict:
        self.ws.settimeout(max(0.1, self.deadline - time.monotonic()))
        return json.loads(self.ws.recv())

    def send(self, method: str, **params: Any) -> dict:
        self.next_id += 1
        my_id = self.next_id
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        while time.monotonic() < self.deadline:
            msg = self._recv()
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)
        raise TimeoutError(method)

    def wait_for(self, method: str) -> dict:
        for event in self.events:
            if event["method"] == method:
                return event
        while time.monotonic() < self.deadline:
            msg = self._recv()
            if "method" in msg:
                self.events.append(msg)
                if msg["method"] == method:
                    return msg
        raise TimeoutError(method)

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def settle(self, seconds: float = 0.5) -> None:
        """Collect the events that arrive within ``seconds``."""
        end = min(self.deadline, time.monotonic() + seconds)
        while time.monotonic() < end:
            self.ws.settimeout(max(0.05, end - time.monotonic()))
            try:
                msg = json.loads(self.ws.recv())
            except websocket.WebSocketTimeoutException:
                break
            if "method" in msg:
                self.events.append(msg)

    def navigate(self, url: str) -> None:
        """Load ``url``; ``events`` then holds what this load did."""
        self.events = []
        self.send("Page.navigate", url=url)
        self.wait_for("Page.loadEventFired")
        self.settle()

    def screenshot(self) -> bytes:
        return base64.b64decode(self.send("Page.captureScreenshot", format="png",
                                          captureBeyondViewport=True)["data"])

    def of(self, *methods: str) -> list[dict]:
        return [e for e in self.events if e["method"] in methods]


@contextmanager
def open_page(url: str, profile: Path, timeout: float = 60, width: int = 1280,
              height: int = 900) -> Iterator[Page]:
    """Chromium headless with ``url`` loaded in a fresh page, everything recorded."""
    binary = chromium()
    assert binary, "chromium is not installed"
    deadline = time.monotonic() + timeout
    profile.mkdir(parents=True, exist_ok=True)
    log_path = profile / "chromium.log"               # a file, so a chatty browser never blocks
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--metrics-recording-only",
         "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
         f"--user-data-dir={profile}", f"--window-size={width},{height}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    page = None
    try:
        port = None
        while port is None and time.monotonic() < deadline:
            m = LISTENING.search(log_path.read_text(errors="replace"))
            if m:
                port = int(m.group(2))
            elif proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {proc.returncode}: {log_path.read_text()[-2000:]}")
            else:
                time.sleep(0.05)
        assert port, "chromium did not open its DevTools port in time"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            targets = json.loads(r.read())
        target = next(t for t in targets if t.get("type") == "page")
        page = Page(target["webSocketDebuggerUrl"], deadline)
        for domain in ("Page", "Runtime", "Log", "Network"):
            page.send(f"{domain}.enable")
        page.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                  mobile=False)
        page.navigate(url)
        yield page
    finally:
        if page is not None:
            page.ws.close()
        try:
            os.killpg(proc.pid, signal.SIGKILL)        # the group this test started, nothing else
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)
        log.close()
