"""A small Chrome DevTools Protocol client: Debian's headless Chromium driven over one websocket.

The web pages' browser tests need only a handful of commands (navigate, type, click, read text,
screenshot), so this speaks CDP directly instead of pulling in a browser-automation framework whose
own bundled browser we could not download here; CDP is Chromium's own, versioned protocol.
Typing and clicking go through `Input.*` (real key and mouse events at the element's position), so
the browser submits forms exactly as it would for a person.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

_LISTENING = re.compile(r"DevTools listening on (ws://\S+)")


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


class CdpError(RuntimeError):
    pass


class Page:
    """One tab, attached through the browser's websocket with a flat session id."""

    def __init__(self, ws: ClientConnection, session_id: str, timeout_s: float) -> None:
        self._ws = ws
        self._session = session_id
        self._ids = itertools.count(1)
        self._events: list[dict[str, Any]] = []
        self._timeout_s = timeout_s

    # -- protocol -------------------------------------------------------------------------------

    def _recv(self, deadline: float) -> dict[str, Any]:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no answer from Chromium")
        msg: dict[str, Any] = json.loads(self._ws.recv(timeout=left))
        return msg

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        msg_id = next(self._ids)
        self._ws.send(
            json.dumps(
                {"id": msg_id, "method": method, "params": params, "sessionId": self._session}
            )
        )
        deadline = time.monotonic() + self._timeout_s
        while True:
            msg = self._recv(deadline)
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise CdpError(f"{method}: {msg['error']}")
                result: dict[str, Any] = msg.get("result", {})
                return result
            if "method" in msg:
                self._events.append(msg)

    def _wait_event(self, method: str, after: int) -> None:
        deadline = time.monotonic() + self._timeout_s
        while True:
            if any(e["method"] == method for e in self._events[after:]):
                return
            msg = self._recv(deadline)
            if "method" in msg:
                self._events.append(msg)

    def events(self, *methods: str) -> list[dict[str, Any]]:
        """The protocol events received so far with one of these method names, oldest first."""
        return [e for e in self._events if e["method"] in methods]

    def evaluate(self, expression: str) -> Any:
        out = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in out:
            raise CdpError(f"{expression!r}: {out['exceptionDetails'].get('text')}")
        return out["result"].get("value")

    # -- what a person does ---------------------------------------------------------------------

    def goto(self, url: str) -> None:
        mark = len(self._events)
        self.send("Page.navigate", url=url)
        self._wait_event("Page.loadEventFired", mark)

    def _center(self, selector: str) -> tuple[float, float]:
        box = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " if (!e) return null; e.scrollIntoView({block: 'center'});"
            " const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        if box is None:
            raise CdpError(f"no element {selector!r} on {self.url()}")
        return float(box[0]), float(box[1])

    def click(self, selector: str, *, navigates: bool = False) -> None:
        x, y = self._center(selector)
        mark = len(self._events)
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)
        if navigates:
            self._wait_event("Page.loadEventFired", mark)

    def type(self, selector: str, text: str) -> None:
        """Click into the field, clear it, and type `text` as keyboard input."""
        self.click(selector)
        self.evaluate(f"document.querySelector({json.dumps(selector)}).select?.()")
        self.send("Input.dispatchKeyEvent", type="keyDown", key="Delete", code="Delete")
        self.send("Input.dispatchKeyEvent", type="keyUp", key="Delete", code="Delete")
        if text:
            self.send("Input.insertText", text=text)

    def choose(self, selector: str, value: str) -> None:
        """Pick an <option> of a <select> by value (a native popup cannot be clicked headless)."""
        ok = self.evaluate(
            f"(() => {{ const s = document.querySelector({json.dumps(selector)});"
            f" if (!s || ![...s.options].some(o => o.value === {json.dumps(value)})) return false;"
            f" s.value = {json.dumps(value)};"
            " s.dispatchEvent(new Event('input', {bubbles: true}));"
            " s.dispatchEvent(new Event('change', {bubbles: true})); return true; })()"
        )
        if not ok:
            raise CdpError(f"{selector!r} has no option {value!r}")

    def set_value(self, selector: str, value: str) -> None:
        """Set an <input type=datetime-local> (its segmented editor takes no plain typed text)."""
        ok = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); if (!e) return false;"
            f" e.value = {json.dumps(value)}; e.dispatchEvent(new Event('input', {{bubbles: true}}));"
            " e.dispatchEvent(new Event('change', {bubbles: true})); return true; })()"
        )
        if not ok:
            raise CdpError(f"no element {selector!r} on {self.url()}")

    def text(self, selector: str = "body") -> str:
        value = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " return e ? e.innerText : null; })()"
        )
        if value is None:
            raise CdpError(f"no element {selector!r} on {self.url()}")
        return str(value)

    def exists(self, selector: str) -> bool:
        return bool(self.evaluate(f"document.querySelector({json.dumps(selector)}) !== null"))

    def url(self) -> str:
        return str(self.evaluate("location.href"))

    def cookies(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.send("Network.getCookies")["cookies"]
        return found

    def screenshot(self, path: Path) -> None:
        shot = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))


@contextmanager
def chromium(*, width: int = 1100, height: int = 900, timeout_s: float = 30.0) -> Iterator[Page]:
    """Start headless Chromium (no sandbox: tests run as root) with a throwaway profile."""
    exe = chromium_path()
    if exe is None:
        raise CdpError("chromium is not installed (scripts/bootstrap installs it)")
    profile = tempfile.mkdtemp(prefix="tracker-cdp-")
    # stderr goes to a file, not a pipe: Chromium keeps logging there and an unread pipe would
    # block it once full.
    log_path = Path(profile) / "chromium.log"
    log = log_path.open("w")
    proc = subprocess.Popen(
        [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            # no update checks, safe-browsing lists or metrics: the pages under test may make the
            # only requests, so a test can check that they make none off the machine
            "--disable-background-networking",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--lang=zh-CN",
            f"--window-size={width},{height}",
            f"--user-data-dir={profile}",
            "--remote-debugging-port=0",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
        env={**os.environ, "LANG": "zh_CN.UTF-8"},
    )
    try:
        ws_url = _browser_url(proc, log_path, timeout_s)
        with connect(ws_url, max_size=64 * 1024 * 1024, open_timeout=timeout_s) as ws:
            ws.send(
                json.dumps(
                    {"id": 1, "method": "Target.createTarget", "params": {"url": "about:blank"}}
                )
            )
            target = _answer(ws, 1, timeout_s)["targetId"]
            ws.send(
                json.dumps(
                    {
                        "id": 2,
                        "method": "Target.attachToTarget",
                        "params": {"targetId": target, "flatten": True},
                    }
                )
            )
            page = Page(ws, _answer(ws, 2, timeout_s)["sessionId"], timeout_s)
            # navigator.language and Intl as in a clerk's browser in China
            page.send("Emulation.setLocaleOverride", locale="zh-CN")
            page.send("Page.enable")
            page.send("Network.enable")
            page.send(
                "Emulation.setDeviceMetricsOverride",
                width=width,
                height=height,
                deviceScaleFactor=1,
                mobile=False,
            )
            yield page
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(profile, ignore_errors=True)


def _browser_url(proc: subprocess.Popen[bytes], log_path: Path, timeout_s: float) -> str:
    # Chromium prints the browser's websocket address on stderr once its debugging port is open.
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        match = _LISTENING.search(log_path.read_text(errors="replace"))
        if match:
            return match.group(1)
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    tail = log_path.read_text(errors="replace").splitlines()[-20:]
    raise CdpError("Chromium did not open its debugging port:\n" + "\n".join(tail))


def _answer(ws: ClientConnection, msg_id: int, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        msg = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        if msg.get("id") == msg_id:
            if "error" in msg:
                raise CdpError(str(msg["error"]))
            result: dict[str, Any] = msg["result"]
            return result
