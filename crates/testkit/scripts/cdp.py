"""Headless Debian chromium driven over the DevTools protocol, standard library only: a
minimal WebSocket client, a page handle (call, eval, wait) and a launcher. Shared by the
crates' browser tests (they put this directory on sys.path).

Every wait polls a condition with a deadline (DEADLINE_S).
"""
import base64
import contextlib
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import urllib.request

DEADLINE_S = 60


class WebSocket:
    def __init__(self, url):
        m = re.match(r"ws://([^/:]+):(\d+)(/.*)", url)
        host, port, path = m.group(1), int(m.group(2)), m.group(3)
        self.s = socket.create_connection((host, port), timeout=DEADLINE_S)
        key = base64.b64encode(os.urandom(16)).decode()
        self.s.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.s.recv(1)
            assert chunk, "websocket handshake failed"
            head += chunk
        assert b" 101 " in head.split(b"\r\n")[0], head

    def _exact(self, n):
        data = b""
        while len(data) < n:
            chunk = self.s.recv(n - len(data))
            assert chunk, "devtools closed"
            data += chunk
        return data

    def send(self, text):
        payload = text.encode()
        header = bytearray([0x81])
        n = len(payload)
        if n < 126:
            header.append(0x80 | n)
        elif n < 65536:
            header.append(0x80 | 126)
            header += struct.pack(">H", n)
        else:
            header.append(0x80 | 127)
            header += struct.pack(">Q", n)
        mask = os.urandom(4)
        header += mask
        self.s.sendall(bytes(header) + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def recv(self):
        message = b""
        while True:
            b0, b1 = self._exact(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._exact(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._exact(8))[0]
            data = self._exact(n)
            if b0 & 0x0F in (0x9, 0xA):  # ping/pong: ignore
                continue
            message += data
            if b0 & 0x80:
                return message.decode()


class Page:
    def __init__(self, ws):
        self.ws, self.next_id = ws, 0

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        for _ in range(100000):
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                assert "error" not in msg, msg
                return msg["result"]
        raise AssertionError("no answer to " + method)

    def eval(self, expr):
        r = self.call("Runtime.evaluate", expression=expr, awaitPromise=True, returnByValue=True)
        assert "exceptionDetails" not in r, r
        return r["result"].get("value")

    def wait(self, expr, what):
        end = time.time() + DEADLINE_S
        while time.time() < end:
            try:
                if self.eval(expr):
                    return
            except AssertionError:
                pass
            time.sleep(0.05)
        where = self.eval("location.href + ' ready=' + (document.body && document.body.dataset.ready)")
        page = self.eval("document.body ? document.body.innerText.slice(0, 500) : ''")
        raise AssertionError(f"timed out waiting for {what}; at {where}; page: {page}")

    def goto(self, url):
        self.call("Page.navigate", url=url)


@contextlib.contextmanager
def chromium_page(url="about:blank"):
    """Starts headless chromium on `url` and yields a Page on it; stops chromium after."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "chromium is not installed: install the Debian package chromium (scripts/test.sh does)"
    profile = tempfile.mkdtemp(prefix="sockit-chromium-")
    proc = subprocess.Popen([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                             "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage", "--disable-sync",
                             f"--user-data-dir={profile}", "--remote-debugging-port=0", "--window-size=1280,860",
                             "--hide-scrollbars", url],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        ws_url = None
        end = time.time() + DEADLINE_S
        while time.time() < end and ws_url is None:
            line = proc.stderr.readline()
            if not line and proc.poll() is not None:
                raise AssertionError("chromium exited")
            m = re.search(r"DevTools listening on (ws://\S+)", line)
            if m:
                ws_url = m.group(1)
        assert ws_url, "chromium did not start its DevTools endpoint"
        port = re.match(r"ws://[^:]+:(\d+)/", ws_url).group(1)
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=20))
        page_ws = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
        p = Page(WebSocket(page_ws))
        p.call("Page.enable")
        p.call("Runtime.enable")
        yield p
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(profile, ignore_errors=True)
