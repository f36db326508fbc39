// sockit library web UI: hash routes #/ (grid; #/?sort=&order=&format=&author=&series=&tag=
// &shelf=&q=&page= for a sorted, filtered page; with q, the passages of the books' text that
// match follow the grid), #/book/ID, #/read/ID and #/read/ID/N (PDF pages, TXT pages, EPUB
// chapters in a sandboxed frame; N opens page or chapter N).
// Logins are a server-side session (an HttpOnly cookie): the script never holds a secret.
"use strict";
const $ = (sel) => document.querySelector(sel);
const view = $("#view");
const state = { user: null, admin: false, uploadLimit: 0, authRequired: false, registration: true, zoom: Number(localStorage.getItem("sockit.zoom") || "1"), fit: localStorage.getItem("sockit.fit") || "width" };
// Older versions kept the kosync key here; it is no longer needed.
localStorage.removeItem("sockit.user");

async function api(path, opts = {}) {
  const r = await fetch(path, { credentials: "same-origin", ...opts });
  const body = await r.json().catch(() => ({}));
  if (r.status === 401 && state.authRequired) { location.href = "/login"; }
  if (!r.ok) throw new Error(body.message || r.status + " " + r.statusText);
  return body;
}
function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}
function fmtSize(n) {
  return n > 1 << 20 ? (n / (1 << 20)).toFixed(1) + " MiB" : Math.ceil(n / 1024) + " KiB";
}

// ---- theme and account ----
function applyTheme() { document.body.classList.toggle("dark", localStorage.getItem("sockit.theme") === "dark"); }
$("#theme").onclick = () => { localStorage.setItem("sockit.theme", document.body.classList.contains("dark") ? "light" : "dark"); applyTheme(); };
function showAccount() {
  $("#account").textContent = state.user ? state.user + " (sign out)" : "Sign in";
  $("#register").hidden = !state.registration;
  $("#upload").hidden = !(state.user && state.uploadLimit > 0);
}
async function whoami() {
  const me = await api("/api/me").catch(() => ({}));
  state.user = me.username || null;
  state.authRequired = !!me.auth_required;
  state.registration = me.registration !== false;
  state.admin = !!me.admin;
  state.uploadLimit = Number(me.upload_limit || 0);
}
$("#account").onclick = async () => {
  if (state.user) {
    await api("/api/logout", { method: "POST" }).catch(() => {});
    state.user = null;
    if (state.authRequired) { location.href = "/login"; return; }
    showAccount(); route(); return;
  }
  $("#loginerr").textContent = ""; $("#login").showModal();
};
$("#loginform").addEventListener("submit", async (ev) => {
  const action = ev.submitter && ev.submitter.value;
  if (action !== "login" && action !== "register") return;
  ev.preventDefault();
  const f = new FormData($("#loginform"));
  try {
    const u = await api("/api/" + action, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ username: f.get("username"), password: f.get("password") }) });
    state.user = u.username;
    $("#login").close(); await whoami(); showAccount(); route();
  } catch (e) { $("#loginerr").textContent = e.message; }
});

// ---- notices: what an upload or a deletion did ----
function notice(html) {
  const n = $("#notice");
  n.innerHTML = `<button id="noticeclose" title="Close">✕</button><div id="noticetext">${html}</div>`;
  n.hidden = false;
  $("#noticeclose").onclick = () => (n.hidden = true);
}

// ---- upload: each file is the raw body of POST /api/books?name=FILE ----
$("#upload").onclick = () => $("#uploadfile").click();
$("#uploadfile").addEventListener("change", async (ev) => {
  const files = [...ev.target.files];
  ev.target.value = "";
  if (files.length) await uploadFiles(files);
});
async function uploadFiles(files) {
  const lines = [];
  let last = null;
  notice(`Uploading ${files.length} file${files.length === 1 ? "" : "s"}…`);
  for (const f of files) {
    if (f.size > state.uploadLimit) {
      lines.push(`<li class="err">${esc(f.name)}: larger than this server's limit of ${fmtSize(state.uploadLimit)}</li>`);
      continue;
    }
    try {
      const r = await fetch("/api/books?" + new URLSearchParams({ name: f.name }), { method: "POST", credentials: "same-origin", headers: { "content-type": "application/octet-stream" }, body: f });
      const body = await r.json().catch(() => ({}));
      if (r.status === 201) { last = body.id; lines.push(`<li>Added <a href="#/book/${body.id}">${esc(body.title)}</a> (${esc(body.path)})</li>`); }
      else if (r.status === 409 && body.book) lines.push(`<li>${esc(f.name)}: ${esc(body.message)}. <a href="#/book/${body.book}">Open it</a></li>`);
      else lines.push(`<li class="err">${esc(f.name)}: ${esc(body.message || r.status + " " + r.statusText)}</li>`);
    } catch (e) { lines.push(`<li class="err">${esc(f.name)}: ${esc(e.message)}</li>`); }
  }
  notice(`<ul>${lines.join("")}</ul>`);
  if (files.length === 1 && last) location.hash = "#/book/" + last;
  else route();
}

// ---- grid: sort, filters, shelves, pages, continue reading ----
let searchTimer = null;
$("#search").addEventListener("input", () => { clearTimeout(searchTimer); searchTimer = setTimeout(() => { location.hash = hashFor({ ...gridParams(), q: $("#search").value.trim(), page: "" }); }, 200); });
const FILTERS = ["sort", "order", "format", "author", "series", "tag", "shelf", "q", "page"];
function gridParams() {
  const h = location.hash.startsWith("#/?") ? location.hash.slice(3) : "";
  const p = new URLSearchParams(h);
  const o = {};
  for (const k of FILTERS) if (p.get(k)) o[k] = p.get(k);
  return o;
}
function hashFor(o) {
  const p = new URLSearchParams();
  for (const k of FILTERS) if (o[k]) p.set(k, o[k]);
  const q = p.toString();
  return q ? "#/?" + q : "#/";
}
function cards(books) {
  return books.map((b) => `
    <div class="card" data-id="${b.id}" title="${esc(b.title)}">
      <img loading="lazy" src="${b.thumb_url}" alt="">
      <div class="t">${esc(b.title)}</div>
      <div class="m"><span class="badge ${b.error ? "bad" : ""}">${b.format}</span> ${b.pages ?? "?"} ${b.format === "epub" ? "ch" : "p"} · ${fmtSize(b.size)}</div>
    </div>`).join("");
}
async function grid() {
  const o = gridParams();
  if (document.activeElement !== $("#search")) $("#search").value = o.q || "";
  const per = 60;
  const page = Math.max(1, Number(o.page) || 1);
  const query = new URLSearchParams({ ...o, page, per_page: per });
  const [data, shelves] = await Promise.all([api("/api/books?" + query), api("/api/shelves").catch(() => ({ shelves: [] }))]);
  const plain = !o.format && !o.author && !o.series && !o.tag && !o.shelf && !o.q && page === 1;
  const cont = plain ? await api("/api/continue").catch(() => ({ books: [] })) : { books: [] };
  const opt = (v, label, cur) => `<option value="${esc(v)}"${String(cur || "") === String(v) ? " selected" : ""}>${esc(label)}</option>`;
  const chips = ["author", "series", "tag"].filter((k) => o[k]).map((k) => `<button class="chip" data-clear="${k}" title="Remove this filter">${k}: ${esc(o[k])} ✕</button>`).join("");
  const shelf = shelves.shelves.find((x) => String(x.id) === o.shelf);
  const pages = Math.max(1, Math.ceil(data.total / per));
  view.innerHTML = `<div class="controls">
      <label>Sort <select id="sort">${opt("title", "Title", o.sort || "title")}${opt("author", "Author", o.sort)}${opt("added", "Recently added", o.sort)}${opt("read", "Last read", o.sort)}${opt("series", "Series", o.sort)}</select></label>
      <button id="order" title="Reverse the order">${o.order === "desc" ? "↓" : o.order === "asc" ? "↑" : "⇅"}</button>
      <label>Format <select id="format">${opt("", "All", o.format)}${opt("pdf", "PDF", o.format)}${opt("epub", "EPUB", o.format)}${opt("txt", "TXT", o.format)}</select></label>
      <label>Shelf <select id="shelf">${opt("", "All books", o.shelf)}${shelves.shelves.map((x) => opt(x.id, `${x.name} (${x.books})`, o.shelf)).join("")}</select></label>
      <button id="newshelf" title="Create a shelf">+ Shelf</button>
      ${shelf ? `<button id="delshelf" title="Delete this shelf (not its books)">Delete shelf</button>` : ""}
      ${chips}<span class="spacer"></span><span class="hint">${data.total} book${data.total === 1 ? "" : "s"}</span></div>
    ${cont.books.length ? `<h3 class="row">Continue reading</h3><div class="grid cont">${cards(cont.books.map((i) => i.book))}</div><h3 class="row">Library</h3>` : ""}
    ${data.books.length ? `<div class="grid">${cards(data.books)}</div>` : `<p class="empty">No books${o.q ? " match “" + esc(o.q) + "”" : plain ? " yet: put PDF, EPUB or TXT files in the books folder" : " here"}.</p>`}
    ${pages > 1 ? `<div class="pager"><button id="pprev"${page <= 1 ? " disabled" : ""}>‹ Previous</button> <span id="pinfo">page ${page} / ${pages}</span> <button id="pnext"${page >= pages ? " disabled" : ""}>Next ›</button></div>` : ""}
    ${o.q ? `<section id="texthits"><h3 class="row">In the text</h3><ol id="hitlist" class="hits"></ol><p id="hitinfo" class="hint">Searching…</p><button id="morehits" hidden>More passages</button></section>` : ""}`;
  const go = (change) => (location.hash = hashFor({ ...o, page: "", ...change }));
  $("#sort").onchange = (e) => go({ sort: e.target.value, order: "" });
  $("#order").onclick = () => go({ order: o.order === "desc" ? "asc" : o.order === "asc" ? "desc" : (["added", "read"].includes(o.sort) ? "asc" : "desc") });
  $("#format").onchange = (e) => go({ format: e.target.value });
  $("#shelf").onchange = (e) => go({ shelf: e.target.value });
  $("#newshelf").onclick = async () => {
    const name = prompt("Name of the new shelf");
    if (!name) return;
    try { const s = await api("/api/shelves", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ name }) }); go({ shelf: String(s.id) }); } catch (e) { alert(e.message); }
  };
  if ($("#delshelf")) $("#delshelf").onclick = async () => {
    if (!confirm(`Delete the shelf “${shelf.name}”? Its books stay in the library.`)) return;
    await api("/api/shelves/" + shelf.id, { method: "DELETE" }).catch((e) => alert(e.message));
    go({ shelf: "" });
  };
  view.querySelectorAll(".chip").forEach((c) => (c.onclick = () => go({ [c.dataset.clear]: "" })));
  if ($("#pprev")) { $("#pprev").onclick = () => go({ page: String(page - 1) }); $("#pnext").onclick = () => go({ page: String(page + 1) }); }
  view.querySelectorAll(".card").forEach((c) => (c.onclick = () => (location.hash = "#/book/" + c.dataset.id)));
  if (o.q) await textHits(o.q, 0);
}

// ---- full-text hits: book, page or chapter, snippet; each opens the reader there ----
const HITS_PER_PAGE = 20;
// The server's snippets are HTML-escaped with matches in <mark>; any other tag is dropped.
const snippetHtml = (s) => String(s || "").replace(/<(?!\/?mark>)[^>]*>/g, "");
async function textHits(q, offset) {
  const list = $("#hitlist");
  if (!list) return;
  let r;
  try { r = await api("/api/search?" + new URLSearchParams({ q, limit: HITS_PER_PAGE, offset })); }
  catch (e) { $("#hitinfo").textContent = e.message; return; }
  if ($("#hitlist") !== list) return; // the view changed meanwhile
  list.insertAdjacentHTML("beforeend", r.hits.map((h) => `
    <li class="hit"><a href="#/read/${h.book}/${h.location}" data-book="${h.book}" data-location="${h.location}">
      <img loading="lazy" src="/api/books/${h.book}/cover?w=200" alt="">
      <span><b>${esc(h.title)}</b>${h.author ? " · " + esc(h.author) : ""} <span class="badge">${esc(h.format)}</span>
      <span class="where">${esc(h.unit)} ${h.location}</span>
      <span class="snippet">${snippetHtml(h.snippet)}</span></span></a></li>`).join(""));
  const shown = offset + r.hits.length;
  $("#hitinfo").textContent = r.total ? `${shown} of ${r.total} passage${r.total === 1 ? "" : "s"}${r.indexing ? " (still indexing: more may appear)" : ""}`
    : `No passage of the books' text matches “${q}”${r.indexing ? " yet (still indexing)" : ""}.`;
  const more = $("#morehits");
  more.hidden = shown >= r.total;
  more.onclick = () => textHits(q, shown);
}

// ---- book page: metadata, shelves, edit form ----
const filterLink = (k, v) => `<a href="${hashFor({ [k]: v })}">${esc(v)}</a>`;
async function bookPage(id) {
  const b = await api("/api/books/" + id);
  const p = await api(`/api/books/${id}/progress`).catch(() => ({}));
  const shelves = (await api("/api/shelves").catch(() => ({ shelves: [] }))).shelves;
  const authors = (b.author || "").split(", ").filter(Boolean);
  view.innerHTML = `<div class="book">
    <img src="${b.cover_url}" alt="cover">
    <div><h2>${esc(b.title)}</h2>
      <dl><dt>Author</dt><dd>${authors.length ? authors.map((a) => filterLink("author", a)).join(", ") : "—"}</dd>
      <dt>Format</dt><dd>${b.format.toUpperCase()}${b.encoding ? " (" + esc(b.encoding) + ")" : ""}</dd>
      ${b.series ? `<dt>Series</dt><dd>${filterLink("series", b.series)}${b.series_index != null ? " #" + b.series_index : ""}</dd>` : ""}
      ${b.tags && b.tags.length ? `<dt>Tags</dt><dd>${b.tags.map((t) => filterLink("tag", t)).join(", ")}</dd>` : ""}
      ${b.language ? `<dt>Language</dt><dd>${esc(b.language)}</dd>` : ""}
      <dt>${b.format === "epub" ? "Chapters" : "Pages"}</dt><dd>${b.pages ?? "?"}</dd><dt>Size</dt><dd>${fmtSize(b.size)}</dd>
      <dt>File</dt><dd>${esc(b.path)}</dd><dt>kosync id</dt><dd><code>${b.partial_md5}</code></dd>
      ${p.page ? `<dt>Position</dt><dd>${b.format === "epub" ? "chapter" : "page"} ${p.page} (${Math.round(p.percentage * 100)}%)</dd>` : ""}
      ${shelves.length ? `<dt>Shelves</dt><dd id="shelves">${shelves.map((s) => `<label class="shelf"><input type="checkbox" data-shelf="${s.id}"${(b.shelves || []).includes(s.id) ? " checked" : ""}> ${esc(s.name)}</label>`).join(" ")}</dd>` : ""}</dl>
      ${b.description ? `<p class="desc">${esc(b.description)}</p>` : ""}
      ${b.error ? `<p class="err">${esc(b.error)}</p>` : ""}
      <div class="actions">${b.error ? "" : `<button id="read">${p.page ? "Continue reading" : "Read"}</button>`}
        <a href="${b.file_url}" download>Download</a>${b.format === "txt" && b.encoding && b.encoding !== "UTF-8" ? `<a href="${b.file_url}?utf8=1" download>Download as UTF-8</a>` : ""}${state.user ? `<button id="edit">Edit metadata</button>` : ""}${state.admin ? `<button id="delete" class="danger" title="Delete the file from the library (administrators)">Delete</button>` : ""}</div>
      <form id="editform" class="edit" hidden>
        <label>Title <input name="title" required maxlength="500" value="${esc(b.title)}"></label>
        <label>Authors <input name="authors" placeholder="Name, Name" value="${esc(b.author || "")}"></label>
        <label>Series <input name="series" value="${esc(b.series || "")}"></label>
        <label>Number in series <input name="series_index" type="number" step="any" min="0" value="${b.series_index ?? ""}"></label>
        <label>Tags <input name="tags" placeholder="tag, tag" value="${esc((b.tags || []).join(", "))}"></label>
        <p class="hint">Stored in the library's catalog; the book file is not changed.</p>
        <p id="editerr" class="err"></p>
        <menu><button type="button" id="editcancel">Cancel</button> <button id="editsave">Save</button></menu>
      </form></div></div>`;
  const read = $("#read");
  if (read) read.onclick = () => (location.hash = "#/read/" + id);
  if ($("#delete")) $("#delete").onclick = async () => {
    if (!confirm(`Delete “${b.title}” (${b.path}) from the library? The file is removed from the server.`)) return;
    try { await api("/api/books/" + id, { method: "DELETE" }); notice(`Deleted ${esc(b.title)} (${esc(b.path)}).`); location.hash = "#/"; }
    catch (e) { alert(e.message); }
  };
  view.querySelectorAll("#shelves input").forEach((c) => (c.onchange = () =>
    api(`/api/shelves/${c.dataset.shelf}/books/${id}`, { method: c.checked ? "PUT" : "DELETE" }).catch((e) => { c.checked = !c.checked; alert(e.message); })));
  if (!$("#edit")) return;
  $("#edit").onclick = () => { $("#editform").hidden = false; $("#edit").hidden = true; };
  $("#editcancel").onclick = () => { $("#editform").hidden = true; $("#edit").hidden = false; };
  $("#editform").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = new FormData($("#editform"));
    const list = (v) => String(v || "").split(",").map((x) => x.trim()).filter(Boolean);
    const body = { title: f.get("title"), authors: list(f.get("authors")), series: String(f.get("series") || "").trim(), tags: list(f.get("tags")) };
    const idx = String(f.get("series_index") || "").trim();
    if (idx && body.series) body.series_index = Number(idx);
    try {
      await api("/api/books/" + id, { method: "PATCH", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
      await bookPage(id);
    } catch (e) { $("#editerr").textContent = e.message; }
  });
}

// ---- reader ----
const reader = { book: null, page: 1 };
async function openReader(id, at = null) {
  const b = await api("/api/books/" + id);
  const p = at ? {} : await api(`/api/books/${id}/progress`).catch(() => ({}));
  reader.book = b;
  reader.page = Math.min(Math.max(at || p.page || 1, 1), b.pages || 1);
  if (b.format === "epub") return openEpub(b, p);
  const pdf = b.format === "pdf";
  view.innerHTML = `<div class="tools">
      <button id="back" title="Library">⟵</button>
      <button id="prev" title="Previous page (←, PgUp)">‹</button>
      <span id="pageinfo"></span>
      <button id="next" title="Next page (→, PgDn)">›</button>
      <input id="jump" type="number" min="1" max="${b.pages}" placeholder="page" title="Go to page (Enter)"> <button id="go">Go</button>
      ${pdf ? `<select id="fit" title="Page size (w: fit width, f: fit page, +/-: zoom)"><option value="width">Fit width</option><option value="page">Fit page</option><option value="custom">Zoom</option></select><button id="zoomout" title="Zoom out (-)">−</button><button id="zoomin" title="Zoom in (+)">+</button>` : ""}
      <strong>${esc(b.title)}</strong></div>
    ${pdf ? `<img id="page" class="pdfpage" alt="page">` : `<div id="text"></div>`}<p id="readerr" class="err"></p>`;
  $("#back").onclick = () => (location.hash = "#/book/" + b.id);
  $("#prev").onclick = () => show(reader.page - 1);
  $("#next").onclick = () => show(reader.page + 1);
  $("#go").onclick = () => show(Number($("#jump").value));
  // Enter jumps and gives the keyboard back to the page, so the arrows turn pages again.
  $("#jump").addEventListener("keydown", (e) => { if (e.key === "Enter") { show(Number($("#jump").value)); $("#jump").blur(); } e.stopPropagation(); });
  if (pdf) {
    $("#zoomin").onclick = () => zoom(1.25); $("#zoomout").onclick = () => zoom(0.8);
    $("#fit").value = state.fit; $("#fit").onchange = (e) => setFit(e.target.value);
  }
  await show(reader.page, false);
}
// PDF page size: fit the width of the window, fit the whole page in it, or a zoom factor
// of a 900 px column. Pages are rendered at the device's pixel ratio, so they stay sharp.
function setFit(mode) {
  state.fit = mode; localStorage.setItem("sockit.fit", mode);
  if ($("#fit")) $("#fit").value = mode;
  show(reader.page, false);
}
function zoom(f) {
  if (state.fit !== "custom") { state.zoom = pdfCssWidth() / Math.min(view.clientWidth - 20, 900); }
  state.zoom = Math.min(4, Math.max(0.25, state.zoom * f)); localStorage.setItem("sockit.zoom", state.zoom);
  setFit("custom");
}
function pdfCssWidth() {
  const avail = Math.max(100, view.clientWidth - 20);
  if (state.fit === "width") return avail;
  if (state.fit === "page") {
    const img = $("#page");
    const aspect = img && img.naturalHeight ? img.naturalWidth / img.naturalHeight : 1 / Math.SQRT2;
    const top = $(".tools") ? $(".tools").getBoundingClientRect().bottom : 100;
    return Math.max(100, Math.min(avail, (innerHeight - top - 16) * aspect));
  }
  return Math.min(avail, 900) * state.zoom;
}
const pdfPageUrl = (b, n, width) => `/api/books/${b.id}/page/${n}?width=${width}`;
let resizeTimer = null;
window.addEventListener("resize", () => {
  if (!reader.book || reader.book.format !== "pdf" || !location.hash.startsWith("#/read/") || state.fit === "custom") return;
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => show(reader.page, false), 200);
});
async function show(n, save = true) {
  const b = reader.book;
  if (!b || !Number.isFinite(n) || n < 1 || n > b.pages) return;
  reader.page = n;
  $("#pageinfo").textContent = `${n} / ${b.pages}`;
  $("#jump").value = "";
  $("#readerr").textContent = "";
  try {
    if (b.format === "pdf") {
      const dpr = window.devicePixelRatio || 1;
      const width = Math.max(16, Math.round(Math.min(4096, pdfCssWidth() * dpr)));
      const img = $("#page");
      img.style.width = Math.round(width / dpr) + "px";
      await new Promise((ok, fail) => { img.onload = ok; img.onerror = () => fail(new Error("page " + n + " could not be rendered")); img.src = pdfPageUrl(b, n, width); });
      img.dataset.page = n;
      window.scrollTo(0, 0);
      // The next page is fetched now, so turning to it shows it at once.
      if (n < b.pages) { const next = new Image(); next.src = pdfPageUrl(b, n + 1, width); reader.prefetched = next.src; }
    } else {
      const t = await api(`/api/books/${b.id}/text/${n}`);
      $("#text").textContent = t.text;
      $("#text").dataset.page = n;
      window.scrollTo(0, 0);
    }
  } catch (e) { $("#readerr").textContent = e.message; }
  if (save) savePosition(b.id, n, n / b.pages);
}
// Positions are saved one request at a time, in order: with quick page turns the last
// page turned is the one the server keeps.
let saving = Promise.resolve();
function savePosition(id, page, percentage) {
  const body = JSON.stringify({ page, percentage });
  saving = saving.then(() => api(`/api/books/${id}/progress`, { method: "PUT", headers: { "content-type": "application/json" }, body }))
    .catch((e) => { if ($("#readerr")) $("#readerr").textContent = "position not saved: " + e.message; });
  return saving;
}
// ---- EPUB: sanitized chapters in a frame that runs no script; progress through the spine ----
async function openEpub(b, p) {
  const toc = await api(`/api/books/${b.id}/toc`);
  reader.chapters = toc.chapters;
  const within = p.percentage != null ? Math.min(Math.max(p.percentage * toc.chapters - (reader.page - 1), 0), 1) : 0;
  view.innerHTML = `<div class="tools">
      <button id="back" title="Library">⟵</button>
      <button id="prev" title="Previous chapter (←)">‹</button>
      <select id="toc" title="Contents">${toc.entries.filter((e) => e.chapter).map((e) =>
        `<option value="${e.chapter}:${esc(e.fragment || "")}">${"\u00a0\u00a0".repeat(e.level)}${esc(e.label)}</option>`).join("")}</select>
      <button id="next" title="Next chapter (→)">›</button>
      <span id="pageinfo"></span><strong>${esc(b.title)}</strong></div>
    <iframe id="chapter" class="epub" sandbox="allow-same-origin" title="chapter"></iframe><p id="readerr" class="err"></p>`;
  $("#back").onclick = () => (location.hash = "#/book/" + b.id);
  $("#prev").onclick = () => showChapter(reader.page - 1);
  $("#next").onclick = () => showChapter(reader.page + 1);
  $("#toc").onchange = (e) => { const [n, f] = e.target.value.split(":"); showChapter(Number(n), f); };
  await showChapter(reader.page, "", within, false);
}
function epubPct() {
  const f = $("#chapter");
  if (!f) return 0;
  // A chapter whose end is on screen is read to its end (so a short last chapter
  // finishes the book); otherwise the share of it scrolled past.
  const span = Math.max(1, f.offsetHeight - innerHeight);
  const within = f.getBoundingClientRect().bottom <= innerHeight ? 1 : Math.min(1, Math.max(0, (scrollY - f.offsetTop + 60) / span));
  return (reader.page - 1 + within) / reader.chapters;
}
function saveEpub() {
  const pct = epubPct();
  $("#pageinfo").textContent = `${reader.page} / ${reader.chapters} · ${Math.round(pct * 100)}%`;
  savePosition(reader.book.id, reader.page, pct);
}
async function showChapter(n, frag = "", within = 0, save = true) {
  const b = reader.book;
  if (!b || !Number.isFinite(n) || n < 1 || n > reader.chapters) return;
  reader.page = n;
  $("#readerr").textContent = "";
  try {
    const c = await api(`/api/books/${b.id}/chapter/${n}`);
    const frame = $("#chapter");
    const dark = document.body.classList.contains("dark");
    const links = c.styles.map((u) => `<link rel="stylesheet" href="${esc(u)}">`).join("");
    await new Promise((ok) => {
      frame.onload = ok;
      frame.srcdoc = `<!doctype html><html><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src 'self'; style-src 'self' 'unsafe-inline'; font-src 'self'">${links}
<style>body{font:18px/1.7 Georgia,"Noto Serif CJK SC",serif;max-width:42em;margin:1em auto;padding:0 1.5em;background:${dark ? "#1d1f23;color:#ddd" : "#fffdf8;color:#222"}}img{max-width:100%;height:auto}</style>
</head><body>${c.html}</body></html>`;
    });
    const doc = frame.contentDocument;
    const fit = () => (frame.style.height = doc.documentElement.scrollHeight + 20 + "px");
    fit();
    [...doc.images].forEach((img) => img.addEventListener("load", fit));
    doc.addEventListener("keydown", readerKeys);
    doc.addEventListener("click", (e) => {
      const a = e.target.closest && e.target.closest("a[href^='#epub:']");
      if (!a) return;
      e.preventDefault();
      const [, ch, f] = a.getAttribute("href").split(":");
      showChapter(Number(ch), f ? decodeURIComponent(f) : "");
    });
    const target = frag && doc.getElementById(frag);
    window.scrollTo(0, target ? frame.offsetTop + target.offsetTop - 60 : frame.offsetTop - 60 + within * Math.max(0, frame.offsetHeight - innerHeight));
    frame.dataset.chapter = n;
    const sel = [...$("#toc").options].find((o) => o.value.startsWith(n + ":"));
    if (sel) $("#toc").value = sel.value;
    $("#pageinfo").textContent = `${n} / ${c.chapters} · ${Math.round(epubPct() * 100)}%`;
  } catch (e) { $("#readerr").textContent = e.message; }
  if (save) saveEpub();
}
let epubScroll = null;
window.addEventListener("scroll", () => {
  if (!reader.book || reader.book.format !== "epub" || !location.hash.startsWith("#/read/")) return;
  clearTimeout(epubScroll);
  // Saved only if the same book is still open: the reader may have left it meanwhile.
  const book = reader.book;
  epubScroll = setTimeout(() => { if (reader.book === book && $("#chapter")) saveEpub(); }, 800);
});

// Reader keys. The chapter frame's document gets them too: after a click in a chapter the
// keyboard is there, and its events do not reach this document.
function readerKeys(e) {
  if (!location.hash.startsWith("#/read/") || !reader.book || e.target.tagName === "INPUT" || e.target.tagName === "SELECT") return;
  if (reader.book.format === "epub") {
    if (e.key === "ArrowRight") showChapter(reader.page + 1);
    else if (e.key === "ArrowLeft") showChapter(reader.page - 1);
    else if (e.key === "d") $("#theme").click();
    return;
  }
  const keys = { ArrowRight: 1, ArrowDown: 0, PageDown: 1, " ": 1, ArrowLeft: -1, PageUp: -1 };
  if (e.key in keys && keys[e.key]) { e.preventDefault(); show(reader.page + keys[e.key]); }
  else if (e.key === "Home") show(1);
  else if (e.key === "End") show(reader.book.pages);
  else if (reader.book.format === "pdf" && (e.key === "+" || e.key === "=")) zoom(1.25);
  else if (reader.book.format === "pdf" && e.key === "-") zoom(0.8);
  else if (reader.book.format === "pdf" && e.key === "w") setFit("width");
  else if (reader.book.format === "pdf" && e.key === "f") setFit("page");
  else if (e.key === "d") $("#theme").click();
}
document.addEventListener("keydown", readerKeys);

// ---- router ----
async function route() {
  const h = location.hash || "#/";
  let m;
  try {
    if ((m = h.match(/^#\/book\/(\d+)$/))) await bookPage(m[1]);
    else if ((m = h.match(/^#\/read\/(\d+)(?:\/(\d+))?$/))) await openReader(m[1], m[2] ? Number(m[2]) : null);
    else { reader.book = null; await grid(); }
  } catch (e) { view.innerHTML = `<p class="err">${esc(e.message)}</p><p><a href="#/">Back to the library</a></p>`; }
  document.body.dataset.ready = h;
}
window.addEventListener("hashchange", route);
applyTheme();
whoami().then(() => { showAccount(); route(); });
