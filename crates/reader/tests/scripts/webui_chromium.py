#!/usr/bin/env python3
"""Drives the web UI in Debian's headless chromium over the DevTools protocol (a minimal
websocket client, standard library only).

usage: webui_chromium.py BASE_URL PDF_ID TXT_ID SCREENSHOT.png EPUB_ID UPLOAD_FILE

Opens the grid, opens a PDF, jumps to a page, reloads (position restored from the
server), reads a TXT page with PgDn, reloads again, reads an EPUB (a link inside chapter 1
opens chapter 2 with its image, the position is restored on reload), saves a screenshot
of the grid, searches the books' text (a hit opens its chapter), switches the PDF view
between fit page, fit width and zoom, and uploads a book through the file picker.
Every wait polls a condition in the page with a deadline.
"""
import base64
import json
import os
import sys
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "testkit", "scripts"))
from cdp import chromium_page  # noqa: E402

BASE, PDF_ID, TXT_ID, SHOT, EPUB_ID, UPLOAD = sys.argv[1:7]


def api(path):
    return json.load(urllib.request.urlopen(BASE + path, timeout=20))


def api_auth(path):
    """A call as the account step 9 registers (the library needs a login from then on)."""
    req = urllib.request.Request(BASE + path, headers={
        "Authorization": "Basic " + base64.b64encode(b"reader:a long enough password").decode()})
    return json.load(urllib.request.urlopen(req, timeout=20))


with chromium_page() as p:
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
    # 10. Full-text search from the search box: the grid (titles) and the passages below
    #     it; the hit in chapter 2 opens chapter 2.
    p.goto(BASE + "/#/")
    p.wait("document.body.dataset.ready === '#/'", "the grid again")
    p.eval("{ const q = document.querySelector('#search'); q.value = 'stairs'; q.dispatchEvent(new Event('input')); }")
    p.wait("document.querySelectorAll('#hitlist .hit').length === 1", "the passage with 'stairs'")
    hit = p.eval("(() => { const a = document.querySelector('#hitlist .hit a'); return [a.getAttribute('href'), a.querySelector('.snippet mark')?.textContent, a.querySelector('.where').textContent]; })()")
    assert hit == [f"#/read/{EPUB_ID}/2", "stairs", "chapter 2"], hit
    p.eval("document.querySelector('#hitlist .hit a').click()")
    p.wait(f"document.body.dataset.ready === '#/read/{EPUB_ID}/2' && {frame}?.dataset.chapter === '2' && ({doc}.body?.innerText || '').includes('lighthouse stairs')", "the hit's chapter")
    p.eval("{ const q = document.querySelector('#search'); q.value = 'xylophone'; q.dispatchEvent(new Event('input')); }")
    p.wait("(document.querySelector('#hitinfo')?.textContent || '').startsWith('No passage')", "no passage for an absent word")
    # 11. The PDF view: fit page shows the whole page, fit width the window's width, and
    #     the next page is fetched ahead.
    p.goto(BASE + f"/#/read/{PDF_ID}/2")
    p.wait(f"document.body.dataset.ready === '#/read/{PDF_ID}/2' && document.querySelector('#page')?.dataset.page === '2' && document.querySelector('#page').complete", "PDF page 2 from its link")
    p.eval("document.dispatchEvent(new KeyboardEvent('keydown', {key: 'f', bubbles: true}))")
    p.wait("document.querySelector('#fit').value === 'page' && document.querySelector('#page').complete && document.querySelector('#page').getBoundingClientRect().bottom <= innerHeight + 1", "fit page")
    p.eval("document.dispatchEvent(new KeyboardEvent('keydown', {key: 'w', bubbles: true}))")
    p.wait("document.querySelector('#fit').value === 'width' && Math.abs(document.querySelector('#page').getBoundingClientRect().width - (document.querySelector('#view').clientWidth - 20)) <= 2", "fit width")
    p.eval("document.dispatchEvent(new KeyboardEvent('keydown', {key: '-', bubbles: true}))")
    p.wait("document.querySelector('#fit').value === 'custom'", "zoom")
    p.wait(f"performance.getEntriesByType('resource').some(e => e.name.includes('/api/books/{PDF_ID}/page/3?'))", "the next page fetched ahead")
    # 12. Upload through the file picker: the new book's page opens; a second upload of
    #     the same file says where it already is.
    p.goto(BASE + "/#/")
    p.wait("document.body.dataset.ready === '#/' && !document.querySelector('#upload').hidden", "the upload button")
    picker = p.call("Runtime.evaluate", expression="document.querySelector('#uploadfile')")["result"]["objectId"]
    p.call("DOM.setFileInputFiles", files=[UPLOAD], objectId=picker)
    p.wait("/^#\\/book\\/\\d+$/.test(document.body.dataset.ready) && document.querySelector('h2')?.textContent === 'Harbour Log'", "the uploaded book's page")
    uploaded = api_auth("/api/books?q=Harbour")["books"]
    assert [b["path"] for b in uploaded] == ["Harbour Log.txt"], uploaded
    p.call("DOM.setFileInputFiles", files=[UPLOAD], objectId=picker)
    p.wait("(document.querySelector('#notice')?.textContent || '').includes('already in the library')", "the duplicate notice")
    assert p.eval("document.querySelector('#notice a').getAttribute('href')") == f"#/book/{uploaded[0]['id']}"
    # Dark mode toggles and sticks.
    p.eval("document.querySelector('#theme').click()")
    assert p.eval("document.body.classList.contains('dark')") is True
    print("web UI: ok")
