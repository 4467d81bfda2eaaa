# A small Chrome DevTools Protocol client: starts a headless Chromium and drives its pages.
#
# One WebSocket per page target; a reader thread files each reply under its command id and
# appends each event to the page's event list. Every wait has a deadline, so a hung browser
# makes the caller fail instead of hang.

import ctypes
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request

import websocket


def die_with_parent():
    """In a child before exec: SIGKILL when the process that started it dies, however it dies
    (a test runner's timeout may SIGKILL the test without a chance to clean up)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG


class CdpError(Exception):
    """A command that failed, timed out, or a browser that did not start."""


class Page:
    """One page target: send commands, read events, evaluate JavaScript."""

    def __init__(self, ws_url, timeout=30.0):
        self.default_timeout = timeout
        self._ws = websocket.create_connection(ws_url, suppress_origin=True, timeout=timeout)
        self._ws.settimeout(0.5)  # the reader wakes up this often to see whether it should stop
        self._next_id = 0
        self._lock = threading.Condition()
        self._replies = {}
        self.events = []  # (monotonic time, method, params), in arrival order
        self._closed = False
        self._reader = threading.Thread(target=self._read_loop, name="cdp-reader", daemon=True)
        self._reader.start()

    def _read_loop(self):
        while not self._closed:
            try:
                raw = self._ws.recv()
            except websocket.WebSocketTimeoutException:
                continue
            except Exception:  # the browser went away: wake every waiter
                with self._lock:
                    self._closed = True
                    self._lock.notify_all()
                return
            if not raw:
                continue
            msg = json.loads(raw)
            with self._lock:
                if "id" in msg:
                    self._replies[msg["id"]] = msg
                else:
                    self.events.append((time.monotonic(), msg.get("method"), msg.get("params", {})))
                self._lock.notify_all()

    def call(self, method, params=None, timeout=None):
        """Sends one command and returns its result; raises CdpError on error or timeout."""
        timeout = self.default_timeout if timeout is None else timeout
        with self._lock:
            self._next_id += 1
            cid = self._next_id
        self._ws.send(json.dumps({"id": cid, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout
        with self._lock:
            while cid not in self._replies:
                left = deadline - time.monotonic()
                if self._closed:
                    raise CdpError(f"{method}: the browser closed the connection")
                if left <= 0:
                    raise CdpError(f"{method}: no reply within {timeout:.0f} s")
                self._lock.wait(left)
            reply = self._replies.pop(cid)
        if "error" in reply:
            raise CdpError(f"{method}: {reply['error'].get('message')} {reply['error'].get('data', '')}")
        return reply.get("result", {})

    def evaluate(self, expression, await_promise=False, timeout=None):
        """The value of a JavaScript expression (JSON-able values only); raises on an exception."""
        r = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                           "awaitPromise": await_promise, "userGesture": True},
                      timeout)
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            text = d.get("exception", {}).get("description") or d.get("text")
            raise CdpError(f"evaluate {expression[:80]!r}: {text}")
        return r.get("result", {}).get("value")

    def wait_for(self, expression, timeout, interval=0.1):
        """Polls until the expression is truthy; returns its value, or None at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = self.evaluate(expression, timeout=max(1.0, min(10.0, timeout)))
            except CdpError:
                value = None  # e.g. during a navigation, when the context is being replaced
            if value:
                return value
            if time.monotonic() >= deadline:
                return None
            time.sleep(interval)

    def events_named(self, *methods):
        with self._lock:
            return [(t, m, p) for (t, m, p) in self.events if m in methods]

    def wait_event(self, method, predicate=lambda p: True, timeout=None, since=0.0):
        """The params of the first `method` event after `since` matching predicate, or None."""
        deadline = time.monotonic() + (self.default_timeout if timeout is None else timeout)
        with self._lock:
            while True:
                for t, m, p in self.events:
                    if t >= since and m == method and predicate(p):
                        return p
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    return None
                self._lock.wait(left)

    def navigate(self, url, timeout=None):
        since = time.monotonic()
        r = self.call("Page.navigate", {"url": url}, timeout)
        if r.get("errorText"):
            raise CdpError(f"navigate {url}: {r['errorText']}")
        self.wait_event("Page.loadEventFired", timeout=timeout, since=since)
        return r

    def screenshot(self, path):
        import base64
        data = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": False})
        with open(path, "wb") as f:
            f.write(base64.b64decode(data["data"]))
        return path

    def close(self):
        self._closed = True
        try:
            self._ws.close()
        except Exception:
            pass
        self._reader.join(timeout=2)


class Browser:
    """A headless Chromium with its own profile directory, killed (with its children) by close()."""

    def __init__(self, binary="/usr/bin/chromium", window="1366,900", start_timeout=30.0,
                 log_path=None, extra_args=()):
        self._profile = tempfile.mkdtemp(prefix="plugmon-cdp-")
        self._log = open(log_path or os.devnull, "wb")
        args = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--no-default-browser-check", "--hide-scrollbars",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--metrics-recording-only", "--mute-audio",
                "--remote-debugging-port=0", f"--user-data-dir={self._profile}",
                f"--window-size={window}", *extra_args, "about:blank"]
        # Its own process group: close() ends the renderers and helpers too.
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True,
                                     preexec_fn=die_with_parent)
        self.port = self._read_port(start_timeout)
        self._pages = []

    def _read_port(self, timeout):
        marker = os.path.join(self._profile, "DevToolsActivePort")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise CdpError(f"chromium exited with status {self.proc.returncode} at start")
            try:
                with open(marker) as f:
                    first = f.readline().strip()
                if first.isdigit():
                    return int(first)
            except OSError:
                pass
            time.sleep(0.05)
        raise CdpError(f"chromium wrote no {marker} within {timeout:.0f} s")

    def _json(self, path, method="GET"):
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method)
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read().decode())

    def first_page(self):
        """The page target the browser opened at start (about:blank)."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            pages = [t for t in self._json("/json/list") if t.get("type") == "page"]
            if pages:
                return self._attach(pages[0]["webSocketDebuggerUrl"])
            time.sleep(0.1)
        raise CdpError("chromium shows no page target")

    def new_page(self):
        target = self._json("/json/new?about:blank", method="PUT")
        return self._attach(target["webSocketDebuggerUrl"])

    def _attach(self, ws_url):
        page = Page(ws_url)
        self._pages.append(page)
        return page

    def close(self):
        for p in self._pages:
            p.close()
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self._log.close()
        shutil.rmtree(self._profile, ignore_errors=True)
