// sockit library web UI: hash routes #/ (grid), #/book/ID, #/read/ID.
// Logins are a server-side session (an HttpOnly cookie): the script never holds a secret.
"use strict";
const $ = (sel) => document.querySelector(sel);
const view = $("#view");
const state = { user: null, authRequired: false, registration: true, zoom: Number(localStorage.getItem("sockit.zoom") || "1") };
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
  $("#account").textContent = state.user ? "👤 " + state.user + " (sign out)" : "Sign in";
  $("#register").hidden = !state.registration;
}
async function whoami() {
  const me = await api("/api/me").catch(() => ({}));
  state.user = me.username || null;
  state.authRequired = !!me.auth_required;
  state.registration = me.registration !== false;
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

// ---- grid ----
let searchTimer = null;
$("#search").addEventListener("input", () => { clearTimeout(searchTimer); searchTimer = setTimeout(() => { if (location.hash !== "#/") location.hash = "#/"; else grid(); }, 200); });
async function grid() {
  const q = $("#search").value.trim();
  const data = await api("/api/books" + (q ? "?q=" + encodeURIComponent(q) : ""));
  if (!data.books.length) { view.innerHTML = `<p class="empty">No books${q ? " match “" + esc(q) + "”" : " yet: put PDF or TXT files in the books folder"}.</p>`; return; }
  view.innerHTML = `<div class="grid">${data.books.map((b) => `
    <div class="card" data-id="${b.id}" title="${esc(b.title)}">
      <img loading="lazy" src="${b.thumb_url}" alt="">
      <div class="t">${esc(b.title)}</div>
      <div class="m"><span class="badge ${b.error ? "bad" : ""}">${b.format}</span> ${b.pages ?? "?"} p · ${fmtSize(b.size)}</div>
    </div>`).join("")}</div>`;
  view.querySelectorAll(".card").forEach((c) => (c.onclick = () => (location.hash = "#/book/" + c.dataset.id)));
}

// ---- book page ----
async function bookPage(id) {
  const b = await api("/api/books/" + id);
  const p = await api(`/api/books/${id}/progress`).catch(() => ({}));
  view.innerHTML = `<div class="book">
    <img src="${b.cover_url}" alt="cover">
    <div><h2>${esc(b.title)}</h2>
      <dl><dt>Author</dt><dd>${esc(b.author || "—")}</dd>
      <dt>Format</dt><dd>${b.format.toUpperCase()}${b.encoding ? " (" + esc(b.encoding) + ")" : ""}</dd>
      <dt>Pages</dt><dd>${b.pages ?? "?"}</dd><dt>Size</dt><dd>${fmtSize(b.size)}</dd>
      <dt>File</dt><dd>${esc(b.path)}</dd><dt>kosync id</dt><dd><code>${b.partial_md5}</code></dd>
      ${p.page ? `<dt>Position</dt><dd>page ${p.page} (${Math.round(p.percentage * 100)}%)</dd>` : ""}</dl>
      ${b.error ? `<p class="err">${esc(b.error)}</p>` : ""}
      <div class="actions">${b.error ? "" : `<button id="read">${p.page ? "Continue reading" : "Read"}</button>`}
        <a href="${b.file_url}" download>Download</a></div></div></div>`;
  const read = $("#read");
  if (read) read.onclick = () => (location.hash = "#/read/" + id);
}

// ---- reader ----
const reader = { book: null, page: 1 };
async function openReader(id) {
  const b = await api("/api/books/" + id);
  const p = await api(`/api/books/${id}/progress`).catch(() => ({}));
  reader.book = b;
  reader.page = Math.min(Math.max(p.page || 1, 1), b.pages || 1);
  const pdf = b.format === "pdf";
  view.innerHTML = `<div class="tools">
      <button id="back" title="Library">⟵</button>
      <button id="prev" title="Previous page (←, PgUp)">‹</button>
      <span id="pageinfo"></span>
      <button id="next" title="Next page (→, PgDn)">›</button>
      <input id="jump" type="number" min="1" max="${b.pages}" placeholder="page" title="Go to page (Enter)"> <button id="go">Go</button>
      ${pdf ? `<button id="zoomout" title="Zoom out (-)">−</button><button id="zoomin" title="Zoom in (+)">+</button>` : ""}
      <strong>${esc(b.title)}</strong></div>
    ${pdf ? `<img id="page" class="pdfpage" alt="page">` : `<div id="text"></div>`}<p id="readerr" class="err"></p>`;
  $("#back").onclick = () => (location.hash = "#/book/" + b.id);
  $("#prev").onclick = () => show(reader.page - 1);
  $("#next").onclick = () => show(reader.page + 1);
  $("#go").onclick = () => show(Number($("#jump").value));
  $("#jump").addEventListener("keydown", (e) => { if (e.key === "Enter") show(Number($("#jump").value)); e.stopPropagation(); });
  if (pdf) { $("#zoomin").onclick = () => zoom(1.25); $("#zoomout").onclick = () => zoom(0.8); }
  await show(reader.page, false);
}
function zoom(f) { state.zoom = Math.min(4, Math.max(0.25, state.zoom * f)); localStorage.setItem("sockit.zoom", state.zoom); show(reader.page, false); }
async function show(n, save = true) {
  const b = reader.book;
  if (!b || !Number.isFinite(n) || n < 1 || n > b.pages) return;
  reader.page = n;
  $("#pageinfo").textContent = `${n} / ${b.pages}`;
  $("#jump").value = "";
  $("#readerr").textContent = "";
  try {
    if (b.format === "pdf") {
      const width = Math.round(Math.min(4096, Math.min(view.clientWidth - 20, 900) * state.zoom * (window.devicePixelRatio || 1)));
      const img = $("#page");
      img.style.width = Math.round(width / (window.devicePixelRatio || 1)) + "px";
      await new Promise((ok, fail) => { img.onload = ok; img.onerror = () => fail(new Error("page " + n + " could not be rendered")); img.src = `/api/books/${b.id}/page/${n}?width=${width}`; });
      img.dataset.page = n;
    } else {
      const t = await api(`/api/books/${b.id}/text/${n}`);
      $("#text").textContent = t.text;
      $("#text").dataset.page = n;
      window.scrollTo(0, 0);
    }
  } catch (e) { $("#readerr").textContent = e.message; }
  if (save) {
    api(`/api/books/${b.id}/progress`, { method: "PUT", headers: { "content-type": "application/json" }, body: JSON.stringify({ page: n, percentage: n / b.pages }) })
      .catch((e) => ($("#readerr").textContent = "position not saved: " + e.message));
  }
}
document.addEventListener("keydown", (e) => {
  if (!location.hash.startsWith("#/read/") || !reader.book || e.target.tagName === "INPUT") return;
  const keys = { ArrowRight: 1, ArrowDown: 0, PageDown: 1, " ": 1, ArrowLeft: -1, PageUp: -1 };
  if (e.key in keys && keys[e.key]) { e.preventDefault(); show(reader.page + keys[e.key]); }
  else if (e.key === "Home") show(1);
  else if (e.key === "End") show(reader.book.pages);
  else if (e.key === "+" || e.key === "=") zoom(1.25);
  else if (e.key === "-") zoom(0.8);
  else if (e.key === "d") $("#theme").click();
});

// ---- router ----
async function route() {
  const h = location.hash || "#/";
  let m;
  try {
    if ((m = h.match(/^#\/book\/(\d+)$/))) await bookPage(m[1]);
    else if ((m = h.match(/^#\/read\/(\d+)$/))) await openReader(m[1]);
    else { reader.book = null; await grid(); }
  } catch (e) { view.innerHTML = `<p class="err">${esc(e.message)}</p><p><a href="#/">Back to the library</a></p>`; }
  document.body.dataset.ready = h;
}
window.addEventListener("hashchange", route);
applyTheme();
whoami().then(() => { showAccount(); route(); });
