#!/usr/bin/env python3
"""Drives the web UI in Debian's headless chromium over the DevTools protocol (a minimal
websocket client, standard library only).

usage: webui_chromium.py BASE_URL PDF_ID TXT_ID SCREENSHOT.png EPUB_ID

Opens the grid, opens a PDF, jumps to a page, reloads (position restored from the
server), reads a TXT page with PgDn, reloads again, reads an EPUB (a link inside chapter 1
opens chapter 2 with its image, the position is restored on reload), and saves a
screenshot of the grid.
Every wait polls a condition in the page with a deadline.
"""
import base64
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

BASE, PDF_ID, TXT_ID, SHOT, EPUB_ID = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
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
        raise AssertionError("timed out waiting for " + what + "; at " + str(self.eval("location.hash + ' ready=' + document.body.dataset.ready")) + "; page: " + str(self.eval("document.body.innerText.slice(0, 500)")))

    def goto(self, url):
        self.call("Page.navigate", url=url)


def api(path):
    return json.load(urllib.request.urlopen(BASE + path, timeout=20))


def api_auth(path):
    """A call as the account step 9 registers (the library needs a login from then on)."""
    req = urllib.request.Request(BASE + path, headers={
        "Authorization": "Basic " + base64.b64encode(b"reader:a long enough password").decode()})
    return json.load(urllib.request.urlopen(req, timeout=20))


chromium = shutil.which("chromium") or shutil.which("chromium-browser")
assert chromium, "chromium is not installed (scripts/test.sh installs it)"
profile = tempfile.mkdtemp(prefix="sockit-chromium-")
proc = subprocess.Popen([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                         "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage",
                         f"--user-data-dir={profile}", "--remote-debugging-port=0", "--window-size=1280,860",
                         "--hide-scrollbars", "about:blank"],
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

    books = api("/api/books")["books"]
    # 1. The grid: one card per book, with its title.
    p.goto(BASE + "/#/")
    p.wait(f"document.querySelectorAll('.card').length === {len(books)}", "the cover grid")
    p.wait("[...document.querySelectorAll('.card img')].every(i => i.complete && i.naturalWidth > 0)", "the covers")
    titles = p.eval("[...document.querySelectorAll('.card .t')].map(e => e.textContent)")
    assert sorted(titles) == sorted(b["title"] for b in books), titles
    p.call("Emulation.setDeviceMetricsOverride", width=1280, height=860, deviceScaleFactor=1, mobile=False)
    shot = p.call("Page.captureScreenshot", format="png")
    with open(SHOT, "wb") as f:
        f.write(base64.b64decode(shot["data"]))

    # 2. Open the PDF from the grid, then read it.
    pdf = api(f"/api/books/{PDF_ID}")
    p.eval(f"document.querySelector('.card[data-id=\"{PDF_ID}\"]').click()")
    p.wait(f"document.body.dataset.ready === '#/book/{PDF_ID}' && !!document.querySelector('#read')", "the book page")
    p.eval("document.querySelector('#read').click()")
    p.wait(f"document.body.dataset.ready === '#/read/{PDF_ID}' && document.querySelector('#page')?.dataset.page === '1'", "PDF page 1")
    assert p.eval("document.querySelector('#page').naturalWidth") > 100
    # 3. Jump to a page.
    target = min(5, pdf["pages"])
    p.eval(f"document.querySelector('#jump').value = '{target}'; document.querySelector('#go').click()")
    p.wait(f"document.querySelector('#page')?.dataset.page === '{target}' && document.querySelector('#page').complete", f"PDF page {target}")
    assert p.eval("document.querySelector('#pageinfo').textContent") == f"{target} / {pdf['pages']}"
    # Arrow key: next page.
    p.eval("document.dispatchEvent(new KeyboardEvent('keydown', {key: 'ArrowRight', bubbles: true}))")
    p.wait(f"document.querySelector('#page')?.dataset.page === '{target + 1}'", "the next PDF page")
    p.wait(f"fetch('/api/books/{PDF_ID}/progress').then(r => r.json()).then(j => j.page === {target + 1})", "the saved PDF position")
    # 4. Reload: the position comes back from the server.
    p.call("Page.reload", ignoreCache=True)
    p.wait(f"document.body.dataset.ready === '#/read/{PDF_ID}' && document.querySelector('#page')?.dataset.page === '{target + 1}'", "the restored PDF page")

    # 5. A TXT book: page 1, PgDn to page 2, text as the API serves it.
    p.goto(BASE + f"/#/read/{TXT_ID}")
    p.wait(f"document.body.dataset.ready === '#/read/{TXT_ID}' && document.querySelector('#text')?.dataset.page === '1'", "TXT page 1")
    p.eval("document.dispatchEvent(new KeyboardEvent('keydown', {key: 'PageDown', bubbles: true}))")
    p.wait("document.querySelector('#text')?.dataset.page === '2'", "TXT page 2")
    want = api(f"/api/books/{TXT_ID}/text/2")["text"]
    assert p.eval("document.querySelector('#text').textContent") == want
    p.wait(f"fetch('/api/books/{TXT_ID}/progress').then(r => r.json()).then(j => j.page === 2)", "the saved TXT position")
    p.call("Page.reload", ignoreCache=True)
    p.wait(f"document.body.dataset.ready === '#/read/{TXT_ID}' && document.querySelector('#text')?.dataset.page === '2'", "the restored TXT page")
    # 6. An EPUB: chapter 1 in the sandboxed frame, its link to chapter 2, the image
    #    inside the book, the position through the spine saved and restored.
    frame = "document.querySelector('#chapter')"
    doc = frame + "?.contentDocument"
    p.goto(BASE + f"/#/read/{EPUB_ID}")
    p.wait(f"document.body.dataset.ready === '#/read/{EPUB_ID}' && {frame}?.dataset.chapter === '1' && ({doc}.body?.innerText || '').includes('It begins by the sea.')", "EPUB chapter 1")
    p.eval(f"{doc}.querySelector('a[href^=\"#epub:2\"]').click()")
    p.wait(f"{frame}?.dataset.chapter === '2' && ({doc}.body?.innerText || '').includes('lighthouse stairs')", "EPUB chapter 2 through its link")
    p.wait(f"[...{doc}.images].length === 1 && [...{doc}.images].every(i => i.complete && i.naturalWidth === 8)", "the image inside the book")
    assert p.eval(f"{doc}.querySelectorAll('script').length") == 0
    assert "2 / 3" in p.eval("document.querySelector('#pageinfo').textContent")
    p.wait(f"fetch('/api/books/{EPUB_ID}/progress').then(r => r.json()).then(j => j.page === 2 && j.percentage >= 1 / 3)", "the saved EPUB position")
    p.call("Page.reload", ignoreCache=True)
    p.wait(f"document.body.dataset.ready === '#/read/{EPUB_ID}' && {frame}?.dataset.chapter === '2'", "the restored EPUB chapter")
    p.eval("document.dispatchEvent(new KeyboardEvent('keydown', {key: 'ArrowRight', bubbles: true}))")
    p.wait(f"{frame}?.dataset.chapter === '3'", "EPUB chapter 3 with the arrow key")
    # 7. The library: the continue-reading row, a format filter, a reversed sort.
    p.goto(BASE + "/#/")
    p.wait("document.querySelectorAll('.grid.cont .card').length >= 2", "the continue-reading row")
    cont = [i["book"]["id"] for i in api("/api/continue")["books"]]
    got = p.eval("[...document.querySelectorAll('.grid.cont .card')].map(c => Number(c.dataset.id))")
    assert got == cont, (got, cont)
    p.goto(BASE + "/#/?format=pdf")
    pdfs = api("/api/books?format=pdf")["books"]
    p.wait(f"document.body.dataset.ready === '#/?format=pdf' && document.querySelectorAll('.card').length === {len(pdfs)}", "the PDF filter")
    assert p.eval("[...document.querySelectorAll('.card .badge')].every(b => b.textContent === 'pdf')")
    p.goto(BASE + "/#/?sort=title&order=desc")
    want = [b["id"] for b in api("/api/books?sort=title&order=desc")["books"]]
    p.wait(f"document.body.dataset.ready === '#/?sort=title&order=desc' && document.querySelector('#order')?.textContent === '↓'", "the reversed sort")
    assert p.eval("[...document.querySelectorAll('.grid:not(.cont) .card')].map(c => Number(c.dataset.id))") == want
    # 8. A shelf: made through the API, filled from the book page's checkbox, viewed.
    shelf = p.eval("fetch('/api/shelves', {method: 'POST', headers: {'content-type': 'application/json'}, body: JSON.stringify({name: 'Favourites'})}).then(r => r.json())")
    p.goto(BASE + f"/#/book/{TXT_ID}")
    p.wait(f"document.body.dataset.ready === '#/book/{TXT_ID}' && !!document.querySelector('#shelves input')", "the shelf checkbox")
    p.eval("document.querySelector('#shelves input').click()")
    p.wait(f"fetch('/api/shelves').then(r => r.json()).then(j => j.shelves[0].books === 1)", "the book on the shelf")
    p.goto(BASE + f"/#/?shelf={shelf['id']}")
    p.wait(f"document.body.dataset.ready === '#/?shelf={shelf['id']}' && document.querySelectorAll('.card').length === 1 && document.querySelector('.card').dataset.id === '{TXT_ID}'", "the shelf's books")
    # 9. Metadata editing needs an account: register one, edit the TXT's title and tags.
    p.eval("fetch('/api/register', {method: 'POST', headers: {'content-type': 'application/json'}, body: JSON.stringify({username: 'reader', password: 'a long enough password'})}).then(r => r.status)")
    # A new document (another URL, not a hash change), so the page asks who it is again.
    p.goto(BASE + f"/?signed-in#/book/{TXT_ID}")
    p.wait(f"location.search === '?signed-in' && document.body.dataset.ready === '#/book/{TXT_ID}' && !!document.querySelector('#edit')", "the edit button")
    p.eval("document.querySelector('#edit').click(); const f = document.querySelector('#editform'); f.querySelector('[name=title]').value = 'Mountain Temple Tales'; f.querySelector('[name=tags]').value = 'folk, mountains'; f.requestSubmit()")
    p.wait("document.querySelector('h2')?.textContent === 'Mountain Temple Tales' && document.body.innerText.includes('folk, mountains')", "the edited metadata")
    assert api_auth(f"/api/books/{TXT_ID}")["tags"] == ["folk", "mountains"]
    # Dark mode toggles and sticks.
    p.eval("document.querySelector('#theme').click()")
    assert p.eval("document.body.classList.contains('dark')") is True
    print("web UI: ok")
finally:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    shutil.rmtree(profile, ignore_errors=True)
