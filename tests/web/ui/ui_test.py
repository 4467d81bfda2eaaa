#!/usr/bin/python3
# The dashboard in a real headless Chromium, against a real agent fed by the load generator.
#
# Run by ctest (tests/web/ui/CMakeLists.txt); by hand:
#   /usr/bin/python3 tests/web/ui/ui_test.py --agent build/agent/plugmon-agent \
#       --loadgen build/bench/plugmon-loadgen --artifacts /tmp/ui-artifacts [--update-readme-screenshot]
# The page's test hooks are described in agent/web/ui/README.md. Every failure names the check and
# where it happened; the run goes on after a failed check where it can, and exits 1 at the end.

import argparse
import atexit
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ in the source tree

SKIP = 77  # ctest SKIP_RETURN_CODE: chromium or python3-websocket missing
try:
    import cdp
except ImportError as e:  # python3-websocket is not installed
    print(f"SKIP: {e} (Debian: python3-websocket)")
    sys.exit(SKIP)

# Names and texts that must show as text. The loadgen appends the plugin's index to the prefix.
XSS_PLUGIN = "<img src=x onerror=window.__xss=1>0"
# In a quoted identifier, which normalisation keeps verbatim (unquoted, `<` and `>` are operators).
XSS_STATEMENT = 'SELECT 1 AS "<script>window.__xss=2</script>"'
ALERT_PLUGIN = "billing-0"
PLUGINS = ["billing-0", "billing-1", XSS_PLUGIN]
ACK_SECRET = "ui-test-oncall-secret"
ACK_COMMENT = "looking into it from the page"
DISCONNECTS = "plugmon_ui_stream_disconnects_total"
RUN_BUDGET = 360  # seconds for the whole run; ctest's TIMEOUT is above it

CSP_RECORDER = """
(() => {
  window.__uiTestCsp = [];
  document.addEventListener('securitypolicyviolation', (e) => {
    window.__uiTestCsp.push({directive: e.violatedDirective, blocked: e.blockedURI,
                           source: e.sourceFile, line: e.lineNumber, sample: e.sample});
  });
})();
"""

# ---- bookkeeping ----

failures = []
passes = []
phase = ["start"]


def check(ok, what, detail=""):
    """Records one assertion; a failure says what failed, where (the phase) and why."""
    tag = f"[{phase[0]}] {what}"
    if ok:
        passes.append(tag)
        print(f"  ok   {tag}", flush=True)
    else:
        failures.append(f"{tag}: {detail}" if detail else tag)
        print(f"  FAIL {tag}: {detail}", flush=True)
    return ok


def begin(name):
    phase[0] = name
    print(f"== {name} ({time.monotonic() - T0:.1f} s)", flush=True)


T0 = time.monotonic()
children = []  # every process started here, each in its own process group


def spawn(args, log_path, env=None):
    log = open(log_path, "wb")
    p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         env=env, start_new_session=True, preexec_fn=cdp.die_with_parent)
    log.close()
    children.append(p)
    return p


def kill_children():
    for p in children:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGCONT)  # a stopped agent cannot handle SIGTERM
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 5
    for p in children:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(timeout=5)


browsers = []


def cleanup():
    for b in browsers:
        try:
            b.close()
        except Exception:
            pass
    browsers.clear()
    kill_children()


atexit.register(cleanup)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))


def watchdog():
    print(f"FAIL [{phase[0]}] the run exceeded its budget of {RUN_BUDGET} s; killing everything",
          flush=True)
    cleanup()
    os._exit(1)


# ---- HTTP helpers ----


def http(port, method, path, body=None, headers=None, timeout=5):
    """(status, headers, body bytes); never raises on an HTTP status."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def get_json(port, path):
    status, _, body = http(port, "GET", path)
    if status != 200:
        raise RuntimeError(f"GET {path}: status {status}: {body[:200]!r}")
    return json.loads(body)


def metric(port, name, labels=""):
    """The sum of a metric's samples whose labels contain `labels` (e.g. 'reason="x"')."""
    _, _, body = http(port, "GET", "/metrics")
    total = None
    for line in body.decode().splitlines():
        if line.startswith(name) and (line[len(name)] in " {") and labels in line:
            total = (total or 0) + float(line.rsplit(" ", 1)[1])
    return total


def wait_until(fn, timeout, interval=0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() >= deadline:
            return value
        time.sleep(interval)


# ---- the agent and its load ----


class Agent:
    """One agent on 127.0.0.1:<free port>, with its own runtime, state and log."""

    def __init__(self, binary, workdir, name, extra_config=""):
        self.dir = os.path.join(workdir, name)
        os.makedirs(os.path.join(self.dir, "rt"))
        os.makedirs(os.path.join(self.dir, "alerts"))
        with open(os.path.join(self.dir, "rules.toml"), "w") as f:
            # An error ratio over 2 s windows of the one plugin the load makes fail: fires in seconds.
            f.write('[[rule]]\nname = "PluginErrorRatioHigh"\nkind = "error_ratio"\n'
                    f'select = {{ plugin = "{ALERT_PLUGIN}" }}\ngroup_by = ["plugin"]\n'
                    'over = "2s"\nmin_samples = 20\n'
                    '  [rule.levels.warning]\n  above = 0.2\n'
                    '  [rule.annotations]\n  summary = "{{ labels.plugin }} fails"\n')
        tokens = os.path.join(self.dir, "tokens.toml")
        fd = os.open(tokens, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write('[[token]]\nname = "oncall"\nscopes = ["ack"]\n'
                    f'sha256 = "{hashlib.sha256(ACK_SECRET.encode()).hexdigest()}"\n')
        self.config = os.path.join(self.dir, "agent.toml")
        with open(self.config, "w") as f:
            f.write(f'flush_interval = "1s"\nslow_query_threshold = "20ms"\n'
                    f'alert_rules = "{self.dir}/rules.toml"\n'
                    f'alert_state_dir = "{self.dir}/alerts"\ntokens_file = "{tokens}"\n'
                    + extra_config)
        self.runtime = os.path.join(self.dir, "rt")
        self.log = os.path.join(self.dir, "agent.log")
        self.proc = spawn([binary, "--config", self.config, "--runtime-dir", self.runtime,
                           "--listen", "127.0.0.1:0"], self.log)
        self.port = None
        pattern = re.compile(r"HTTP on http://127\.0\.0\.1:(\d+)/metrics")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and self.proc.poll() is None:
            m = pattern.search(open(self.log, errors="replace").read())
            if m:
                self.port = int(m.group(1))
                break
            time.sleep(0.05)
        if self.port is None:
            raise RuntimeError(f"agent {name} did not start (status {self.proc.poll()}): "
                               + open(self.log, errors="replace").read()[-2000:])
        self.origin = f"http://127.0.0.1:{self.port}"

    def loadgen(self, binary, name, args):
        env = dict(os.environ, PLUGMON_RUNTIME_DIR=self.runtime)
        return spawn([binary, "--wait-attached", "10s", "--quiet", *args],
                     os.path.join(self.dir, f"{name}.log"), env=env)

    def log_tail(self, n=1500):
        return open(self.log, errors="replace").read()[-n:]

    def stop(self):
        """SIGTERM, and wait for the agent to exit (SIGKILL after 10 s)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# ---- raw SSE clients ----


class SseReader(threading.Thread):
    """A normal stream client: reads /api/v1/ui/stream and records each event's arrival time."""

    def __init__(self, port):
        super().__init__(daemon=True, name="sse-reader")
        self.port = port
        self.times = []  # monotonic arrival time of each `event: snapshot`
        self.ids = []
        self.status = None
        self.headers = ""
        self.error = None
        self._stop = False
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.sendall(f"GET /api/v1/ui/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                          "Accept: text/event-stream\r\n\r\n".encode())

    def run(self):
        try:
            f = self.sock.makefile("rb")
            status_line = f.readline().decode()
            self.status = int(status_line.split()[1])
            head = []
            while True:
                line = f.readline()
                if line in (b"\r\n", b""):
                    break
                head.append(line.decode().strip())
            self.headers = "\n".join(head)
            chunked = "transfer-encoding: chunked" in self.headers.lower()
            pending = b""
            while not self._stop:
                if chunked:
                    size = int(f.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        break
                    data = f.read(size)
                    f.readline()
                else:
                    data = f.read1(65536)
                    if not data:
                        break
                pending += data
                while b"\n\n" in pending:
                    event, pending = pending.split(b"\n\n", 1)
                    fields = dict(l.split(b": ", 1) for l in event.split(b"\n") if b": " in l)
                    if fields.get(b"event") == b"snapshot":
                        self.times.append(time.monotonic())
                        if b"id" in fields:
                            self.ids.append(int(fields[b"id"]))
        except Exception as e:  # a timeout or a closed stream: the checks look at times
            if not self._stop:
                self.error = repr(e)

    def stop(self):
        self._stop = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def max_gap(self, since=0.0):
        t = [x for x in self.times if x >= since]
        return max((b - a for a, b in zip(t, t[1:])), default=None)


def stalled_stream(port):
    """A stream client with a tiny receive buffer that never reads."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: fixes the window
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    s.sendall(f"GET /api/v1/ui/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
              "Accept: text/event-stream\r\n\r\n".encode())
    return s


# ---- the page ----


def open_page(browser):
    page = browser.new_page()
    for domain in ("Page", "Runtime", "Log", "Network"):
        page.call(f"{domain}.enable")
    page.call("Page.addScriptToEvaluateOnNewDocument", {"source": CSP_RECORDER})
    return page


def body_data(page, key):
    return page.evaluate(f"document.body ? document.body.dataset.{key} ?? null : null")


def seq(page):
    v = body_data(page, "seq")
    return int(v) if v not in (None, "") else None


def seq_advances(page, wait=2.5):
    first = seq(page)
    time.sleep(wait)
    second = seq(page)
    return first, second, first is not None and second is not None and second > first


def describe_console(page, levels=("error", "warning")):
    """Console calls, log entries and exceptions, each as one line."""
    out = []
    for _, m, p in page.events_named("Runtime.consoleAPICalled"):
        if p.get("type") in ("error", "warning", "warn", "assert"):
            args = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
            out.append(f"console.{p['type']}: {args}")
    for _, m, p in page.events_named("Log.entryAdded"):
        e = p.get("entry", {})
        if e.get("level") in levels:
            out.append(f"log {e.get('level')} ({e.get('source')}): {e.get('text')} {e.get('url', '')}")
    return out


def exceptions(page):
    return [p.get("exceptionDetails", {}).get("exception", {}).get("description")
            or p.get("exceptionDetails", {}).get("text")
            for _, _, p in page.events_named("Runtime.exceptionThrown")]


def requests_of(page):
    return [p.get("request", {}).get("url", "")
            for _, _, p in page.events_named("Network.requestWillBeSent")]


def responses_of(page):
    return [(p.get("response", {}).get("url", ""), p.get("response", {}).get("status"))
            for _, _, p in page.events_named("Network.responseReceived")]


def csp_violations(page):
    try:
        return page.evaluate("window.__uiTestCsp || ['the recorder is missing']")
    except cdp.CdpError as e:
        return [f"could not read the recorder: {e}"]


def css_string(text):
    return json.dumps(text)


def has_plugin_row(page, name):
    return page.evaluate(
        f"!!document.querySelector('[data-plugin=\"' + CSS.escape({css_string(name)}) + '\"]')")


def page_hygiene(page, origin, where):
    """CSP, console, exceptions, requests: the checks that hold for the page's whole life."""
    # The recorders saw the page at all (else every check below would pass on nothing).
    urls = requests_of(page)
    check(any(u.startswith(origin + "/ui/") for u in urls)
          and any(u.startswith(origin + "/api/v1/ui/") for u in urls)
          and page.evaluate("Array.isArray(window.__uiTestCsp)"),
          f"the recorders saw the page's requests and the CSP recorder is installed ({where})",
          f"{len(urls)} requests recorded")
    v = csp_violations(page)
    check(not v, f"no CSP violation ({where})", json.dumps(v)[:800])
    ex = exceptions(page)
    check(not ex, f"no uncaught exception ({where})", " | ".join(map(str, ex))[:800])
    c = describe_console(page)
    check(not c, f"no console error or warning ({where})", " | ".join(c)[:1200])
    foreign = [u for u in requests_of(page)
               if not (u.startswith(origin + "/") or u == origin or u.startswith("data:"))]
    check(not foreign, f"every request same-origin ({where})", " ".join(foreign)[:800])
    missing = [f"{u} {s}" for u, s in responses_of(page) if s == 404]
    check(not missing, f"no request answered 404 ({where})", " ".join(missing)[:800])


def markup_is_text(page, where):
    """No element came from the markup in the data, and none of it ran."""
    r = page.evaluate("""(() => ({
        xss: typeof window.__xss,
        imgs: document.querySelectorAll('img[src="x"], [onerror]').length,
        foreignScripts: Array.from(document.scripts).filter(
            s => !s.src || new URL(s.src).origin !== location.origin).length,
        scriptsWithXss: Array.from(document.querySelectorAll('script')).filter(
            s => (s.textContent || '').includes('__xss')).length,
    }))()""")
    check(r["xss"] == "undefined", f"window.__xss stays undefined ({where})", f"typeof = {r['xss']}")
    check(r["imgs"] == 0, f"no <img src=x>/[onerror] element made from data ({where})",
          f"{r['imgs']} such elements")
    check(r["foreignScripts"] == 0 and r["scriptsWithXss"] == 0,
          f"no <script> element made from data ({where})", json.dumps(r))


def visible_heading(text):
    """An expression: some shown h1/h2 reads exactly text."""
    return (f"Array.from(document.querySelectorAll('h1, h2')).some(h => "
            f"h.getClientRects().length > 0 && h.textContent.trim() === {css_string(text)})")


# ---- phases ----


VISIBLE_CHARTS = ("Array.from(document.querySelectorAll('canvas[data-chart]'))"
                  ".filter(c => c.getClientRects().length > 0)")


def phase_overview(page, agent, artifacts, statement_text):
    begin("overview")
    page.navigate(agent.origin + "/ui/", timeout=15)
    t = time.monotonic()
    ready = page.wait_for("document.body && document.body.dataset.ready === '1'", 10)
    check(ready, "body[data-ready=1] within 10 s of navigation to /ui/",
          f"data-ready={body_data(page, 'ready')!r} after {time.monotonic() - t:.1f} s")
    first, second, grew = seq_advances(page)
    check(grew, "live updates advance body[data-seq] over 2.5 s", f"data-seq {first} -> {second}")
    for name in PLUGINS:
        found = page.wait_for(
            f"!!document.querySelector('[data-plugin=\"' + CSS.escape({css_string(name)}) + '\"]')",
            15)
        check(found, f"plugin row [data-plugin={name!r}] shown")
    check(page.wait_for(f"document.body.textContent.includes({css_string(XSS_PLUGIN)})", 5),
          "plugin name with markup shown as text (body.textContent)", XSS_PLUGIN)
    markup_is_text(page, "overview")
    # The statement with markup: on the overview's statements table, else on its plugin's page.
    shown = page.wait_for(f"document.body.textContent.includes({css_string(statement_text)})", 8)
    where = "overview"
    # The markup plugin's own page: its name in the heading, as text.
    page.evaluate(f"location.hash = '#/plugins/' + encodeURIComponent({css_string(XSS_PLUGIN)})")
    check(page.wait_for(visible_heading(XSS_PLUGIN), 5),
          "the markup plugin's page (#/plugins/<encoded name>) shows its name as a heading's text")
    if not shown:
        shown = page.wait_for(
            f"document.body.textContent.includes({css_string(statement_text)})", 8)
        where = "plugin page"
    markup_is_text(page, "markup plugin's page")
    page.evaluate("location.hash = ''")
    page.wait_for("!document.querySelector('[data-plugin]') || "
                  "document.querySelector('[data-plugin]').getClientRects().length > 0", 3)
    check(shown, "SQL statement with markup shown as text (body.textContent)",
          f"{statement_text!r} not found on the overview nor on the plugin's page")
    if shown:
        print(f"       (statement text found on the {where})")
    # The favicon: declared, same-origin, served; /favicon.ico too (browsers ask for it).
    icon = page.evaluate("""(async () => {
        const l = document.querySelector('link[rel~="icon"]');
        if (!l) return {declared: false};
        const r = await fetch(l.href);
        return {declared: true, href: l.href, status: r.status,
                type: r.headers.get('content-type')};
    })()""", await_promise=True)
    check(icon.get("declared") and icon.get("href", "").startswith(agent.origin + "/")
          and icon.get("status") == 200 and "image" in (icon.get("type") or ""),
          "favicon: <link rel=icon> same-origin, served 200 as an image", json.dumps(icon))
    status, headers, _ = http(agent.port, "GET", "/favicon.ico")
    check(status == 200, "GET /favicon.ico answers 200", f"status {status}")
    # Charts get a few points, so the screenshot is worth committing.
    charts = page.wait_for(VISIBLE_CHARTS + ".length > 0 && " + VISIBLE_CHARTS +
                           ".every(c => +c.dataset.points >= 5)", 10)
    check(charts, "every chart shown (canvas[data-chart]) has data-points >= 5",
          json.dumps(page.evaluate(VISIBLE_CHARTS + ".map(c => [c.dataset.chart, c.dataset.points])")))
    page.screenshot(os.path.join(artifacts, "overview.png"))


def phase_plugin_page(page, agent, artifacts):
    begin("per-plugin page")
    page.evaluate(f"location.hash = '#/plugins/' + encodeURIComponent({css_string(ALERT_PLUGIN)})")
    time.sleep(0.3)
    check(page.wait_for(visible_heading(ALERT_PLUGIN), 5),
          f"#/plugins/{ALERT_PLUGIN} shows a heading naming the plugin")
    others = page.evaluate("Array.from(document.querySelectorAll('[data-plugin]'))"
                           ".filter(e => e.getClientRects().length > 0).map(e => e.dataset.plugin)")
    check(all(o == ALERT_PLUGIN for o in others),
          f"#/plugins/{ALERT_PLUGIN} shows no other plugin's row", json.dumps(others))
    first, second, grew = seq_advances(page, 2.0)
    check(grew, "data-seq advances on the per-plugin page", f"{first} -> {second}")
    page.screenshot(os.path.join(artifacts, f"plugin-{ALERT_PLUGIN}.png"))
    page.evaluate("location.hash = ''")
    page.wait_for("document.body.dataset.ready === '1'", 5)


# The page's controls for the token and the ack (agent/web/ui/assets/index.html and app.js).
# The README's stable hooks cover data, not controls: these are the page's element ids, with a
# data-* spelling first should the page grow one.
TOKEN_OPEN = "[data-token-button], #token-button"
TOKEN_INPUT = "[data-token-input], #token-input"
TOKEN_SUBMIT = "#token-form button[type=submit]"
ACK_BUTTON = "button[data-action=ack]"
ACK_COMMENT_INPUT = "[data-ack-comment], #ack-comment"
ACK_SUBMIT = "#ack-form button[type=submit]"


def q(selector, scope="document"):
    """A JavaScript expression for the first element matching selector inside scope, or null."""
    return f"(({scope}) ? ({scope}).querySelector({css_string(selector)}) : null)"


def shown(page, element):
    return page.evaluate(f"(() => {{ const e = {element}; "
                         f"return !!e && e.getClientRects().length > 0; }})()")


def type_into(page, element, text):
    """Focuses the field and types text as the keyboard would (Input.insertText)."""
    ok = page.evaluate(f"""(() => {{
        const el = {element};
        if (!el) return false;
        el.focus();
        el.select && el.select();
        return document.activeElement === el;
    }})()""")
    if ok:
        page.call("Input.insertText", {"text": text})
    return ok


def click(page, element):
    """Clicks the element's centre with the mouse (Input.dispatchMouseEvent)."""
    box = page.evaluate(f"""(() => {{
        const el = {element};
        if (!el) return null;
        el.scrollIntoView({{block: 'center'}});
        const r = el.getBoundingClientRect();
        return r.width > 0 ? {{x: r.x + r.width / 2, y: r.y + r.height / 2}} : null;
    }})()""")
    if not box:
        return False
    for kind in ("mousePressed", "mouseReleased"):
        page.call("Input.dispatchMouseEvent", {"type": kind, "x": box["x"], "y": box["y"],
                                               "button": "left", "clickCount": 1})
    return True


def ack_button(page, row):
    """The Ack control inside the alert's row: a data-* hook if the page has one, else the button
    whose text starts with Ack (reported as a missing hook). (expression, hooked)"""
    if shown(page, q(ACK_BUTTON, row)):
        return q(ACK_BUTTON, row), True
    by_text = (f"(({row}) ? Array.from(({row}).querySelectorAll('button'))"
               f".find(b => /^\\s*ack/i.test(b.textContent)) || null : null)")
    return (by_text, False) if shown(page, by_text) else (None, False)


def phase_ack(page, agent):
    begin("ack from the page")
    fp = wait_until(lambda: next((a["fingerprint"] for a in get_json(agent.port, "/api/v1/alerts")
                                  ["alerts"] if a.get("state") == "firing"), None), 30)
    if not check(fp, f"an alert fires for {ALERT_PLUGIN} (GET /api/v1/alerts)",
                 json.dumps(get_json(agent.port, "/api/v1/alerts"))[:600]):
        return
    row = q(f"[data-alert={json.dumps(fp)}]")
    if not check(page.wait_for(f"!!{row}", 10), f"alert row [data-alert=\"{fp}\"] shown"):
        return
    # The token, once per tab: the header's button opens the token dialog.
    if not check(click(page, q(TOKEN_OPEN)), f"token button ({TOKEN_OPEN}) shown"):
        return
    token_input = q(TOKEN_INPUT)
    check(page.wait_for(f"!!{token_input} && {token_input}.getClientRects().length > 0", 3),
          f"the token dialog opens ({TOKEN_INPUT} shown)")
    check(type_into(page, token_input, ACK_SECRET), f"token input ({TOKEN_INPUT}) takes focus")
    check(click(page, q(TOKEN_SUBMIT)), f"token dialog's submit ({TOKEN_SUBMIT}) clicked")
    check(page.wait_for(f"!{token_input} || {token_input}.getClientRects().length === 0", 3),
          "the token dialog closes")
    button, hooked = ack_button(page, row)
    if not check(button, "an Ack button inside the alert row"):
        return
    check(hooked, f"the Ack button carries its hook ({ACK_BUTTON})")
    check(click(page, button), "Ack clicked")
    comment = q(ACK_COMMENT_INPUT)
    check(page.wait_for(f"!!{comment} && {comment}.getClientRects().length > 0", 3),
          f"the ack dialog opens ({ACK_COMMENT_INPUT} shown)")
    check(type_into(page, comment, ACK_COMMENT), f"comment input ({ACK_COMMENT_INPUT}) takes focus")
    check(click(page, q(ACK_SUBMIT)), f"ack dialog's submit ({ACK_SUBMIT}) clicked")
    acked = wait_until(lambda: (get_json(agent.port, f"/api/v1/alerts/{fp}").get("ack") or {}), 10)
    check(acked.get("comment") == ACK_COMMENT,
          f"GET /api/v1/alerts/{fp} shows the ack with the page's comment",
          json.dumps(get_json(agent.port, f"/api/v1/alerts/{fp}"))[:600])
    check(acked.get("by") == "oncall", "the ack is by the token the page was given (oncall)",
          json.dumps(acked))
    check(page.wait_for(f"({row}) && ({row}).textContent.includes({css_string(ACK_COMMENT)})", 5),
          f"the alert row [data-alert=\"{fp}\"] shows the ack's comment within 5 s")
    # The token went in a header, never in a URL.
    leaked = [u for u in requests_of(page) if ACK_SECRET in u]
    check(not leaked, "the token appears in no request URL", " ".join(leaked))


def phase_stalled_stream(agent):
    begin("stalled stream client")
    reason = 'reason="write_timeout"'
    before = metric(agent.port, DISCONNECTS, reason) or 0.0
    reader = SseReader(agent.port)
    reader.start()
    stalled = stalled_stream(agent.port)
    start = time.monotonic()
    dropped = wait_until(lambda: (metric(agent.port, DISCONNECTS, reason) or 0)
                         > before, 90, 1.0)
    took = time.monotonic() - start
    check(dropped, f"the stalled client is dropped within 90 s "
          f"({DISCONNECTS}{{reason=\"write_timeout\"}} grew)",
          f"still {metric(agent.port, DISCONNECTS, reason)} after {took:.0f} s")
    if dropped:
        print(f"       (dropped after {took:.1f} s)")
    time.sleep(3)  # the normal client goes on after the drop too
    stopped = time.monotonic()
    reader.stop()
    stalled.close()
    check(reader.status == 200 and "text/event-stream" in reader.headers.lower(),
          "the normal client's stream answers 200 text/event-stream",
          f"status {reader.status}, headers {reader.headers!r}")
    gap = reader.max_gap(start + 1.0)
    print(f"       (normal client: {len(reader.times)} events, largest gap {gap or 0:.2f} s)")
    check(len(reader.times) >= int(took) and gap is not None and gap <= 1.5,
          "the normal client kept a once-a-second rhythm (no gap over 1.5 s)",
          f"{len(reader.times)} events in {took + 3:.0f} s, largest gap {gap}, error {reader.error}")
    check(reader.times and stopped - reader.times[-1] <= 1.5,
          "the normal client still receives events after the drop",
          f"last event {stopped - reader.times[-1] if reader.times else None} s before the end")
    check(reader.ids == sorted(set(reader.ids)) and len(reader.ids) == len(reader.times),
          "the normal client's event ids strictly increase", str(reader.ids[:40]))


def phase_staleness(page, agent):
    begin("SIGSTOP / SIGCONT")
    page.wait_for("document.body.dataset.staleness === 'live'", 5)
    check(body_data(page, "staleness") == "live", "data-staleness is live before SIGSTOP",
          repr(body_data(page, "staleness")))
    mark = time.monotonic()
    os.kill(agent.proc.pid, signal.SIGSTOP)
    try:
        amber = page.wait_for("document.body.dataset.staleness === 'amber' || "
                              "document.body.dataset.staleness === 'red'", 15)
        t_amber = time.monotonic() - mark
        check(amber, "data-staleness turns amber after SIGSTOP",
              f"still {body_data(page, 'staleness')!r} after {t_amber:.0f} s")
        red = page.wait_for("document.body.dataset.staleness === 'red'", 20)
        t_red = time.monotonic() - mark
        check(red, "data-staleness turns red after SIGSTOP",
              f"still {body_data(page, 'staleness')!r} after {t_red:.0f} s")
        print(f"       (amber after {t_amber:.1f} s, red after {t_red:.1f} s)")
    finally:
        os.kill(agent.proc.pid, signal.SIGCONT)
    mark = time.monotonic()
    live = page.wait_for("document.body.dataset.staleness === 'live'", 10)
    t_live = time.monotonic() - mark
    check(live and t_live <= 5, "data-staleness is live again within 5 s of SIGCONT",
          f"{body_data(page, 'staleness')!r} after {t_live:.1f} s")
    print(f"       (live {t_live:.1f} s after SIGCONT)")
    first, second, grew = seq_advances(page, 2.5)
    check(grew, "data-seq advances again after SIGCONT", f"{first} -> {second}")
    check(body_data(page, "streamState") == "open", "the page streams again after SIGCONT",
          f"data-stream-state={body_data(page, 'streamState')!r}")


def phase_hidden_tab(page, agent):
    """A tab hidden for over 30 s releases its stream and takes it back when shown. Drives the
    page's own hook (window.__plugmonTest: setHidden, advance), since headless Chromium never
    hides a tab by itself."""
    begin("hidden tab releases its stream")
    if not check(page.evaluate("typeof window.__plugmonTest?.setHidden === 'function' && "
                               "typeof window.__plugmonTest?.advance === 'function'"),
                 "window.__plugmonTest.setHidden/advance exist"):
        return
    clients = lambda: metric(agent.port, "plugmon_ui_stream_clients")
    before = clients()
    page.evaluate("window.__plugmonTest.setHidden(true); window.__plugmonTest.advance(31000)")
    released = wait_until(lambda: clients() == before - 1, 5)
    check(released, "hidden for 31 s: plugmon_ui_stream_clients drops by one",
          f"{before} -> {clients()}, data-stream-state={body_data(page, 'streamState')!r}")
    page.evaluate("window.__plugmonTest.setHidden(null)")
    back = wait_until(lambda: clients() == before, 3)
    check(back and page.wait_for("document.body.dataset.streamState === 'open'", 3),
          "shown again: the stream is back within 3 s",
          f"{clients()} clients, data-stream-state={body_data(page, 'streamState')!r}")
    first, second, grew = seq_advances(page, 2.5)
    check(grew, "data-seq advances after the tab is shown again", f"{first} -> {second}")


def phase_stream_cap(browser, agent_binary, workdir):
    begin("stream cap (ui_max_streams = 1)")
    agent = Agent(agent_binary, workdir, "capped", "ui_max_streams = 1\n")
    holder = SseReader(agent.port)
    holder.start()
    if not wait_until(lambda: holder.times, 5):
        check(False, "the Python client holds the only stream", f"status {holder.status}")
    status, headers, _ = http(agent.port, "GET", "/api/v1/ui/stream")
    check(status == 503 and "Retry-After" in headers,
          "a second stream gets 503 with Retry-After", f"status {status}, headers {headers}")
    # The snapshot says the only stream is taken (it counts the streams when it is built).
    check(wait_until(lambda: get_json(agent.port, "/api/v1/ui/snapshot")["status"]
                     ["stream_clients"] == 1, 5),
          "the snapshot shows the stream taken (status.stream_clients = 1)")
    page = open_page(browser)
    page.navigate(agent.origin + "/ui/", timeout=15)
    check(page.wait_for("document.body.dataset.ready === '1'", 10), "the page is ready")
    polling = page.wait_for("document.body.dataset.streamState === 'polling'", 15)
    check(polling, "the page falls back to polling (data-stream-state=polling)",
          f"data-stream-state={body_data(page, 'streamState')!r}")
    first, second, grew = seq_advances(page, 5.0)
    check(grew, "data-seq advances while polling", f"{first} -> {second}")
    # The page knew the stream was taken and never asked for it: not even a 503 in the console.
    page_hygiene(page, agent.origin, "capped agent")
    holder.stop()
    page.close()


def phase_switches(browser, agent_binary, workdir):
    """ui = false removes the dashboard and nothing else; ui_read_only hides every action."""
    begin("switches (ui = false, ui_read_only = true)")
    off = Agent(agent_binary, workdir, "ui-off", "ui = false\n")
    try:
        for path in ("/ui/", "/ui/app.js", "/api/v1/ui/snapshot", "/api/v1/ui/stream"):
            status, _, _ = http(off.port, "GET", path)
            check(status == 404, f"ui = false: GET {path} answers 404", f"status {status}")
        status, _, body = http(off.port, "GET", "/metrics")
        check(status == 200 and b"plugmon_ui_" not in body,
              "ui = false: /metrics still served, without plugmon_ui_* families", f"status {status}")
    finally:
        off.stop()
    ro = Agent(agent_binary, workdir, "ui-read-only", "ui_read_only = true\n")
    try:
        check(get_json(ro.port, "/api/v1/ui/snapshot")["agent"]["read_only"] is True,
              "ui_read_only: the snapshot says read_only")
        page = open_page(browser)
        page.navigate(ro.origin + "/ui/", timeout=15)
        check(page.wait_for("document.body.dataset.ready === '1'", 10), "read-only page is ready")
        visible = page.evaluate("Array.from(document.querySelectorAll('.act, [data-action]'))"
                                ".filter(e => e.getClientRects().length > 0).length")
        check(visible == 0, "ui_read_only: no action control is shown (token, ack, silences)",
              f"{visible} shown")
        page_hygiene(page, ro.origin, "read-only agent")
        page.close()
    finally:
        ro.stop()


def phase_canary(browser, agent):
    """Each detector the hygiene checks rely on sees a deliberate offence in a page of its own."""
    begin("detectors see deliberate offences")
    page = open_page(browser)
    page.navigate(agent.origin + "/ui/", timeout=15)
    page.wait_for("document.body.dataset.ready === '1'", 10)
    page.evaluate("""(() => {
        try { document.createElement('div').innerHTML = '<b>canary</b>'; } catch (e) {}
        new Image().src = 'http://canary.invalid/x.png';
        console.warn('canary warning');
        setTimeout(() => { throw new Error('canary exception'); }, 0);
    })()""")
    time.sleep(1.0)
    v = csp_violations(page)
    check(any("trusted-types" in (x.get("directive") or "") for x in v if isinstance(x, dict))
          and any("img-src" in (x.get("directive") or "") for x in v if isinstance(x, dict)),
          "the CSP recorder sees an innerHTML assignment and an image from another origin",
          json.dumps(v)[:600])
    check(any("canary exception" in str(e) for e in exceptions(page)),
          "Runtime.exceptionThrown is recorded", str(exceptions(page))[:400])
    check(any("canary warning" in c for c in describe_console(page)),
          "console warnings are recorded", " | ".join(describe_console(page))[:400])
    check(any(u.startswith("http://canary.invalid/") for u in requests_of(page)),
          "a request to another origin is recorded", " ".join(requests_of(page))[:400])
    page.close()


def phase_readme_screenshot(browser, args, workdir):
    """The README's picture: an agent with ordinary plugin names and a minute of varied load."""
    begin("README screenshot")
    agent = Agent(args.agent, workdir, "readme")
    loads = [("billing-", ["--mix", "mixed", "--rate", "300", "--error-ratio", "0.3",
                           "--statements", "3", "--alloc-bytes", "4096"]),
             ("search-", ["--mix", "record", "--rate", "150", "--query-ns", "2000000",
                          "--statements", "2", "--slow-every", "50", "--slow-duration", "30ms"]),
             ("checkout-", ["--mix", "mixed", "--rate", "80", "--error-ratio", "0.01",
                            "--alloc-bytes", "65536", "--statements", "1"])]
    for prefix, extra in loads:
        agent.loadgen(args.loadgen, prefix.rstrip("-"),
                      ["--plugins", "1", "--plugin-prefix", prefix, "--duration", "600s", *extra])
    page = open_page(browser)
    page.navigate(agent.origin + "/ui/", timeout=15)
    page.wait_for("document.body.dataset.ready === '1'", 10)
    time.sleep(45)  # the charts fill in (one point a second) and the alert fires
    check(page.wait_for(VISIBLE_CHARTS + ".every(c => +c.dataset.points >= 30)", 10),
          "the charts have points for the picture")
    docs = os.path.join(REPO, "docs")
    os.makedirs(docs, exist_ok=True)
    page.screenshot(os.path.join(docs, "dashboard.png"))
    print(f"wrote {os.path.join(docs, 'dashboard.png')}")
    page.close()


def statement_from_api(agent):
    """The markup statement as the agent shows it (normalised: literals to ?)."""
    def find():
        for path in ("/api/v1/ui/statements?window=5m", "/api/v1/slow-queries"):
            try:
                body = get_json(agent.port, path)
            except Exception:
                continue
            for s in body.get("statements", body.get("top", [])):
                if s.get("plugin") == XSS_PLUGIN and "<script>" in s.get("statement", ""):
                    return s["statement"]
        return None
    return wait_until(find, 20, 0.5)


def main():
    ap = argparse.ArgumentParser(description="The dashboard in a headless Chromium.")
    ap.add_argument("--agent", required=True, help="the plugmon-agent binary")
    ap.add_argument("--loadgen", required=True, help="the plugmon-loadgen binary")
    ap.add_argument("--artifacts", default="artifacts", help="where screenshots and logs go")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--update-readme-screenshot", action="store_true",
                    help=f"also write the overview to {REPO}/docs/dashboard.png")
    ap.add_argument("--skip", default="", help="comma-separated phases to skip: stall,stop,hidden,cap")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    if not os.access(args.chromium, os.X_OK):
        print(f"SKIP: {args.chromium} is not installed (Debian: chromium)")
        return SKIP
    timer = threading.Timer(RUN_BUDGET, watchdog)
    timer.daemon = True
    timer.start()
    artifacts = os.path.abspath(args.artifacts)
    os.makedirs(artifacts, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="plugmon-ui-test-")
    print(f"work directory {workdir}, artifacts {artifacts}", flush=True)
    agent = None
    try:
        begin("agent and load")
        agent = Agent(args.agent, workdir, "main")
        # billing-0 fails 40 % of its queries (the alert); the other plugin names carry markup.
        agent.loadgen(args.loadgen, "billing",
                      ["--plugins", "2", "--plugin-prefix", "billing-", "--mix", "mixed",
                       "--alloc-bytes", "4096", "--rate", "300", "--duration", "600s",
                       "--statements", "3", "--error-ratio", "0.4"])
        agent.loadgen(args.loadgen, "markup",
                      ["--plugins", "1", "--plugin-prefix", XSS_PLUGIN[:-1], "--mix", "record",
                       "--rate", "100", "--duration", "600s", "--slow-every", "20",
                       "--slow-duration", "50ms", f"--statement-text={XSS_STATEMENT}"])
        statement_text = statement_from_api(agent)
        if not check(statement_text, "the agent reports the markup statement (API)",
                     "no statement with <script> for the markup plugin"):
            statement_text = XSS_STATEMENT
        browser = cdp.Browser(args.chromium, log_path=os.path.join(artifacts, "chromium.log"))
        browsers.append(browser)
        page = open_page(browser)
        phase_overview(page, agent, artifacts, statement_text)
        phase_plugin_page(page, agent, artifacts)
        phase_ack(page, agent)
        begin("page hygiene")
        page_hygiene(page, agent.origin, "main agent, before SIGSTOP")
        if "stall" not in skip:
            phase_stalled_stream(agent)
        if "stop" not in skip:
            phase_staleness(page, agent)
            ex = exceptions(page)
            check(not ex, "no uncaught exception through SIGSTOP/SIGCONT", " | ".join(map(str, ex)))
            v = csp_violations(page)
            check(not v, "no CSP violation through SIGSTOP/SIGCONT", json.dumps(v)[:800])
            noise = describe_console(page)
            if noise:
                print("       console through SIGSTOP (not counted):\n         "
                      + "\n         ".join(noise[:10]))
        if "hidden" not in skip:
            phase_hidden_tab(page, agent)
        if "cap" not in skip:
            phase_stream_cap(browser, args.agent, workdir)
        if "switches" not in skip:
            phase_switches(browser, args.agent, workdir)
        phase_canary(browser, agent)
        if args.update_readme_screenshot:
            phase_readme_screenshot(browser, args, workdir)
    except Exception:
        failures.append(f"[{phase[0]}] the run stopped: {traceback.format_exc()}")
        print(failures[-1], flush=True)
    finally:
        if agent is not None and failures:
            print(f"--- agent log (tail) ---\n{agent.log_tail()}")
        cleanup()
        timer.cancel()
        # The logs of the agents and the load are kept beside the screenshots when a check failed.
        if failures:
            shutil.copytree(workdir, os.path.join(artifacts, "logs"), dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("*.sock", "rt"))
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\n{len(passes)} checks passed, {len(failures)} failed, {time.monotonic() - T0:.0f} s")
    for f in failures:
        print(f"FAIL {f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
