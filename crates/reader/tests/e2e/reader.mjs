// The reader's web UI end to end in headless Chromium, driven by Playwright
// (playwright-core, installed by scripts/test.sh; the system's chromium, no browser
// download). Run by crates/reader/tests/it/webui_playwright.rs against a real server:
//
//   node reader.mjs CONFIG.json
//
// CONFIG names the server (`base`), an administrator account (`user`, `password`), the
// chromium binary, the file to upload, the screenshot directory (SOCKIT_SCREENSHOTS_DIR
// overrides it), where to save a screenshot of a failure, and what the library holds
// (`expect`: titles in each order, the books the steps open, their first sentences).
//
// As a user would: sign in, browse, sort by title and by author, filter, search titles
// and the books' text, follow a hit into an EPUB chapter, turn chapters and pages with
// the buttons and the keys, come back to the saved position, read a CJK TXT, read a PDF
// (page jump, Home/End, fit page / fit width / zoom, the next page fetched ahead), the
// continue-reading row, a shelf, a metadata edit, an upload through "+ Add books" and
// its duplicate, an administrator's delete, signing out. Every step waits for what the
// page shows (Playwright's waits, polled in the page), never for a time.
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";

const cfg = JSON.parse(readFileSync(process.argv[2], "utf8"));
const { base, user, password, expect } = cfg;
const shots = path.resolve(process.env.SOCKIT_SCREENSHOTS_DIR || cfg.shots);
mkdirSync(shots, { recursive: true });
// A hang guard for one wait (a cold PDF render on a loaded machine), not a timing bound.
const HANG = 120_000;

let step = "starting";
const browser = await chromium.launch({ executablePath: cfg.chromium, headless: true, args: ["--no-sandbox"] });
const context = await browser.newContext({ viewport: { width: 1200, height: 800 }, deviceScaleFactor: 1, locale: "en-US" });
const page = await context.newPage();
page.setDefaultTimeout(HANG);
const pageErrors = [];
page.on("pageerror", (e) => pageErrors.push(String(e)));
page.on("console", (m) => { if (m.type() === "error") console.error("browser console:", m.text(), m.location().url); });

// ---- helpers ----

// Waits until `fn(arg)` holds in the page; a timeout names `what` and what the page shows.
async function until(what, fn, arg) {
  try {
    await page.waitForFunction(fn, arg, { timeout: HANG, polling: "raf" });
  } catch (e) {
    throw new Error(`${what}: not seen (${e.message.split("\n")[0]}); the page shows: ${await shown()}`);
  }
}
// What the page shows, for failure messages.
async function shown() {
  return page.evaluate(() => JSON.stringify({
    hash: location.hash, ready: document.body.dataset.ready, notice: document.querySelector("#notice")?.innerText,
    text: (document.querySelector("#view")?.innerText || document.body.innerText).slice(0, 600),
  })).catch((e) => String(e));
}
// Runs `action` (a click, a key…) and waits until the route `hash` has been rendered
// (the page sets body[data-ready] to the hash it finished drawing).
async function navigate(hash, action) {
  await page.evaluate(() => { document.body.dataset.ready = ""; });
  await action();
  await until(`the view of ${hash}`, (h) => document.body.dataset.ready === h, hash);
}
// As `navigate`, for a route known only by its pattern; returns the hash.
async function navigateMatching(re, action) {
  await page.evaluate(() => { document.body.dataset.ready = ""; });
  await action();
  await until(`a view matching ${re}`, (src) => new RegExp(src).test(document.body.dataset.ready || ""), re.source);
  return page.evaluate(() => document.body.dataset.ready);
}
const libraryCards = () => page.locator(".grid:not(.cont) .card");
// Waits until the library grid (not the continue-reading row) shows exactly `titles`.
async function gridShows(titles, what) {
  await until(what, (want) => JSON.stringify([...document.querySelectorAll(".grid:not(.cont) .card .t")].map((e) => e.textContent)) === JSON.stringify(want), titles);
  assert.deepEqual(await libraryCards().locator(".t").allTextContents(), titles, what);
}
async function text(sel) { return (await page.locator(sel).textContent()).trim(); }
async function shot(name) { await page.screenshot({ path: path.join(shots, name), type: "png" }); }
// The answer to the next PUT of a position with page `n` to book `id` (a request sent
// after this call: one sent before it is not taken for it). The page sends positions one
// at a time, in order, so once this one is answered every earlier one was.
async function positionSaved(id, n) {
  const req = await page.waitForRequest((r) => r.url().endsWith(`/api/books/${id}/progress`) && r.method() === "PUT"
    && JSON.parse(r.postData() || "{}").page === n);
  const res = await req.response();
  assert.ok(res && res.ok(), `the position (page ${n}) is saved: ${res && res.status()}`);
}
// Waits for the EPUB frame to show chapter `n` holding `words`.
async function chapterShows(n, words) {
  await until(`EPUB chapter ${n} with “${words}”`, ([n, words]) => {
    const f = document.querySelector("#chapter");
    return f?.dataset.chapter === String(n) && (f.contentDocument?.body?.innerText || "").includes(words);
  }, [n, words]);
  assert.match(await text("#pageinfo"), new RegExp(`^${n} / ${expect.epub_chapters} · \\d+%$`));
}
// Waits for the PDF view to show page `n`, loaded.
async function pdfShows(n) {
  await until(`PDF page ${n}`, (n) => { const i = document.querySelector("#page"); return i?.dataset.page === String(n) && i.complete && i.naturalWidth > 100; }, n);
  assert.equal(await text("#pageinfo"), `${n} / ${expect.pdf_pages}`);
}

// ---- the steps ----

async function run() {
  // 1. A library with accounts asks who you are first; signing in opens the grid.
  step = "sign in";
  await page.goto(base + "/");
  await page.getByLabel("User").fill(user);
  await page.getByLabel("Password").fill(password);
  const [signedIn] = await Promise.all([
    page.waitForResponse((r) => r.url() === base + "/login" && r.request().method() === "POST"),
    page.getByRole("button", { name: "Sign in", exact: true }).click(),
  ]);
  assert.equal(signedIn.status(), 303, "the sign-in form is accepted");
  // The answer sends the browser back to the library, whose page then draws the grid.
  await until("the library after signing in", () => document.body.dataset.ready === "#/");
  assert.equal(page.url(), base + "/");
  assert.equal(await text("#account"), `${user} (sign out)`);

  // 2. Browse: one card per book, sorted by title, every cover drawn.
  step = "browse the library";
  await gridShows(expect.by_title, "the library sorted by title");
  assert.equal(await text(".controls .hint"), `${expect.by_title.length} books`);
  await until("every cover", () => [...document.querySelectorAll(".card img")].every((i) => i.complete && i.naturalWidth > 0));
  const ids = Object.fromEntries(await page.$$eval(".grid:not(.cont) .card", (cs) => cs.map((c) => [c.querySelector(".t").textContent, Number(c.dataset.id)])));
  const [epub, pdf, txt] = [ids[expect.epub], ids[expect.pdf], ids[expect.txt]];
  assert.ok(epub && pdf && txt, `the EPUB, PDF and TXT are in the grid: ${JSON.stringify(ids)}`);
  await shot("reader-library.png");

  // 3. Sort by author (books without one last, in either direction), reverse, back to
  //    titles and reverse them; the order of the cards is what the user checks.
  step = "sort";
  await navigate("#/?sort=author", () => page.locator("#sort").selectOption("author"));
  await gridShows(expect.by_author, "the library sorted by author");
  await navigate("#/?sort=author&order=desc", () => page.locator("#order").click());
  await gridShows(expect.by_author_desc, "the library sorted by author, Z to A");
  assert.equal(await text("#order"), "↓");
  await navigate("#/?sort=title", () => page.locator("#sort").selectOption("title"));
  await gridShows(expect.by_title, "the library sorted by title again");
  await navigate("#/?sort=title&order=desc", () => page.locator("#order").click());
  await gridShows([...expect.by_title].reverse(), "the library sorted by title, Z to A");

  // 4. Filter by format: only the PDFs, each badged so.
  step = "filter by format";
  await navigate("#/?sort=title&order=desc&format=pdf", () => page.locator("#format").selectOption("pdf"));
  await gridShows(expect.pdfs_desc, "the PDFs, Z to A");
  assert.deepEqual(await libraryCards().locator(".badge").allTextContents(), expect.pdfs_desc.map(() => "pdf"));
  await navigate("#/", () => page.locator("#home").click());

  // 5. Search: the box filters the grid by title and lists the passages of the text.
  step = "search by title";
  await navigate("#/?q=network", () => page.locator("#search").fill("network"));
  await gridShows(["The Network Reader"], "the book whose title matches");
  assert.equal(await text(".controls .hint"), "1 book");
  await until("passages of the PDF's text", () => /^20 of \d+ passages$/.test(document.querySelector("#hitinfo")?.textContent || ""));
  assert.deepEqual([...new Set(await page.locator("#hitlist .hit b").allTextContents())], ["The Network Reader"]);
  assert.ok(await page.locator("#morehits").isVisible(), "“More passages” is offered");

  step = "search a word no book has";
  await navigate("#/?q=xylophone", () => page.locator("#search").fill("xylophone"));
  assert.equal(await text(".empty"), "No books match “xylophone”.");
  await until("no passage", () => (document.querySelector("#hitinfo")?.textContent || "").startsWith("No passage of the books' text matches “xylophone”"));

  step = "search CJK text";
  await navigate("#/?q=" + encodeURIComponent("故事"), () => page.locator("#search").fill("故事"));
  await gridShows(expect.cjk_titles, "the CJK books whose titles hold 故事");
  await until("CJK passages", () => /^20 of \d+ passages$/.test(document.querySelector("#hitinfo")?.textContent || ""));
  for (const m of await page.locator("#hitlist .hit mark").allTextContents()) assert.equal(m, "故事");
  await shot("reader-search.png");

  // 6. Full text: a word only in chapter 2 of the EPUB; its hit opens chapter 2.
  step = "full-text search into an EPUB chapter";
  const [ch1, ch2, ch3] = expect.chapter_text;
  await navigate("#/?q=stairs", () => page.locator("#search").fill("stairs"));
  assert.equal(await text(".empty"), "No books match “stairs”.");
  await until("the one passage with “stairs”", () => document.querySelector("#hitinfo")?.textContent === "1 of 1 passage");
  const hit = page.locator("#hitlist .hit a");
  assert.equal(await hit.getAttribute("href"), `#/read/${epub}/2`);
  assert.equal(await hit.locator(".where").textContent(), "chapter 2");
  const marks = await hit.locator(".snippet mark").allTextContents();
  assert.ok(marks.length > 0 && marks.every((m) => m.toLowerCase() === "stairs"), `the snippet marks the word: ${marks}`);
  assert.equal(await hit.locator("b").textContent(), expect.epub);
  await navigate(`#/read/${epub}/2`, () => hit.click());
  assert.equal(new URL(page.url()).hash, `#/read/${epub}/2`);
  await chapterShows(2, ch2);
  assert.equal(await page.locator("#toc option:checked").textContent(), "The Stairs");
  await until("the image inside the book", (w) => { const d = document.querySelector("#chapter").contentDocument; return d.images.length === 1 && d.images[0].complete && d.images[0].naturalWidth === w; }, expect.image_width);
  assert.equal(await page.evaluate(() => document.querySelector("#chapter").contentDocument.querySelectorAll("script").length), 0);
  await shot("reader-epub.png");

  // 7. Turn chapters: buttons, arrow keys, a link inside the chapter, the contents menu.
  step = "turn EPUB chapters";
  await page.locator("#next").click();
  await chapterShows(3, ch3);
  // The end of the last chapter is on screen: the book is read to its end.
  assert.equal(await text("#pageinfo"), `3 / ${expect.epub_chapters} · 100%`);
  await page.keyboard.press("ArrowLeft");
  await chapterShows(2, ch2);
  await page.locator("#prev").click();
  await chapterShows(1, ch1);
  await page.keyboard.press("ArrowRight");
  await chapterShows(2, ch2);
  await page.keyboard.press("ArrowLeft");
  await chapterShows(1, ch1);
  // A click inside the chapter puts the keyboard there: the keys still turn chapters.
  await page.frameLocator("#chapter").getByRole("link", { name: expect.chapter_link, exact: true }).click();
  await chapterShows(2, ch2);
  await page.keyboard.press("ArrowRight");
  await chapterShows(3, ch3);
  await page.locator("#toc").selectOption({ label: "The Sea" });
  await chapterShows(1, ch1);
  const epubSaved = positionSaved(epub, 2);
  await page.locator("#toc").selectOption({ label: "The Stairs" });
  await chapterShows(2, ch2);
  await epubSaved;
  // The book page shows the saved chapter; "Continue reading" and a reload return to it.
  step = "return to the saved EPUB chapter";
  await navigate(`#/book/${epub}`, () => page.locator("#back").click());
  assert.match(await page.locator("dt:text-is('Position') + dd").textContent(), /^chapter 2 \(\d+%\)$/);
  await navigate(`#/read/${epub}`, () => page.getByRole("button", { name: "Continue reading", exact: true }).click());
  await chapterShows(2, ch2);
  await navigate(`#/read/${epub}`, () => page.reload());
  await chapterShows(2, ch2);

  // 8. A CJK TXT: PgDn turns the page, the text is the server's page, the theme key, a
  //    reload keeps page and theme.
  step = "read a CJK TXT";
  await navigate("#/", () => page.locator("#home").click());
  await navigate(`#/book/${txt}`, () => libraryCards().filter({ hasText: expect.txt }).click());
  assert.equal(await text("h2"), expect.txt);
  await navigate(`#/read/${txt}`, () => page.getByRole("button", { name: "Read", exact: true }).click());
  await until("TXT page 1", () => document.querySelector("#text")?.dataset.page === "1");
  assert.equal(await text("#pageinfo"), `1 / ${expect.txt_pages}`);
  const txtSaved = positionSaved(txt, 2);
  await page.keyboard.press("PageDown");
  await until("TXT page 2", () => document.querySelector("#text")?.dataset.page === "2");
  assert.equal(await text("#pageinfo"), `2 / ${expect.txt_pages}`);
  const page2 = await (await page.request.get(`${base}/api/books/${txt}/text/2`)).json();
  assert.equal(await page.locator("#text").textContent(), page2.text);
  assert.match(page2.text, /老和尚/);
  await txtSaved;
  await page.keyboard.press("d");
  assert.ok(await page.evaluate(() => document.body.classList.contains("dark")), "d turns the page dark");
  await navigate(`#/read/${txt}`, () => page.reload());
  await until("the restored TXT page", () => document.querySelector("#text")?.dataset.page === "2");
  assert.ok(await page.evaluate(() => document.body.classList.contains("dark")), "dark after a reload");
  await page.keyboard.press("d");
  assert.ok(!(await page.evaluate(() => document.body.classList.contains("dark"))), "d turns it light again");

  // 9. A PDF: opened from the grid, the next page fetched as soon as one is shown (so
  //    turning shows the image already fetched), keys, a page jump, the fit modes.
  step = "read a PDF";
  await navigate("#/", () => page.locator("#home").click());
  await navigate(`#/book/${pdf}`, () => libraryCards().filter({ hasText: expect.pdf }).click());
  const ahead2 = page.waitForRequest((r) => r.url().includes(`/api/books/${pdf}/page/2?`));
  await navigate(`#/read/${pdf}`, () => page.getByRole("button", { name: "Read", exact: true }).click());
  await pdfShows(1);
  const prefetched2 = (await ahead2).url();
  const ahead3 = page.waitForRequest((r) => r.url().includes(`/api/books/${pdf}/page/3?`));
  await page.keyboard.press("ArrowRight");
  await pdfShows(2);
  assert.equal(await page.locator("#page").evaluate((i) => i.src), prefetched2, "page 2 is the image fetched ahead");
  await ahead3;
  await page.keyboard.press("End");
  await pdfShows(expect.pdf_pages);
  await page.keyboard.press("Home");
  await pdfShows(1);
  await page.keyboard.press("PageDown");
  await pdfShows(2);
  await page.keyboard.press("PageUp");
  await pdfShows(1);
  await page.locator("#next").click();
  await pdfShows(2);
  await page.locator("#prev").click();
  await pdfShows(1);
  await page.locator("#jump").fill("5");
  await page.locator("#jump").press("Enter");
  await pdfShows(5);
  // After a jump the keys turn pages again. Positions are saved in order, so once the
  // last one is answered the server holds page 5.
  await page.keyboard.press("ArrowRight");
  await pdfShows(6);
  const pdfSaved = positionSaved(pdf, 5);
  await page.keyboard.press("ArrowLeft");
  await pdfShows(5);
  await pdfSaved;
  step = "PDF fit modes";
  await page.keyboard.press("f");
  await until("fit page: the whole page in the window", () => {
    const i = document.querySelector("#page");
    return document.querySelector("#fit").value === "page" && i.complete && i.dataset.page === "5" && i.getBoundingClientRect().bottom <= innerHeight + 1 && i.getBoundingClientRect().top >= 0;
  });
  await shot("reader-pdf.png");
  await page.keyboard.press("w");
  await until("fit width", () => document.querySelector("#fit").value === "width" && Math.abs(document.querySelector("#page").getBoundingClientRect().width - (document.querySelector("#view").clientWidth - 20)) <= 2);
  const wide = await page.locator("#page").evaluate((i) => i.getBoundingClientRect().width);
  await page.keyboard.press("-");
  await until("zoomed out", (wide) => document.querySelector("#fit").value === "custom" && document.querySelector("#page").getBoundingClientRect().width < wide - 10, wide);
  await page.keyboard.press("w");
  await until("fit width again", () => document.querySelector("#fit").value === "width");
  await navigate(`#/read/${pdf}`, () => page.reload());
  await pdfShows(5);

  // 10. The continue-reading row: the three books just read, in the server's order (the
  //     latest position first; positions carry whole seconds, so these may tie).
  step = "continue reading";
  await navigate("#/", () => page.locator("#home").click());
  await until("the continue-reading row", (n) => document.querySelectorAll(".grid.cont .card").length === n, 3);
  const row = await page.locator(".grid.cont .card .t").allTextContents();
  assert.deepEqual([...row].sort(), [expect.pdf, expect.txt, expect.epub].sort());
  const latest = (await (await page.request.get(`${base}/api/continue`)).json()).books.map((i) => i.book.title);
  assert.deepEqual(row, latest);

  // 11. A shelf: created, filled from the book page, shown, deleted.
  step = "shelves";
  page.once("dialog", (d) => d.accept("Favourites"));
  const shelfHash = await navigateMatching(/^#\/\?shelf=\d+$/, () => page.locator("#newshelf").click());
  assert.equal(await page.locator("#shelf option:checked").textContent(), "Favourites (0)");
  assert.equal(await text(".empty"), "No books here.");
  await navigate("#/", () => page.locator("#shelf").selectOption({ label: "All books" }));
  await navigate(`#/book/${txt}`, () => libraryCards().filter({ hasText: expect.txt }).click());
  const shelved = page.waitForResponse((r) => r.request().method() === "PUT" && r.url().endsWith(`/books/${txt}`) && r.ok());
  await page.getByLabel("Favourites").check();
  await shelved;
  await navigate("#/", () => page.locator("#home").click());
  await navigate(shelfHash, () => page.locator("#shelf").selectOption({ label: "Favourites (1)" }));
  await gridShows([expect.txt], "the shelf's book");
  page.once("dialog", (d) => d.accept());
  await navigate("#/", () => page.locator("#delshelf").click());
  assert.deepEqual(await page.locator("#shelf option").allTextContents(), ["All books"]);

  // 12. Metadata: edited on the book page, shown there, its tag a filter of the grid.
  step = "edit metadata";
  await navigate(`#/book/${txt}`, () => libraryCards().filter({ hasText: expect.txt }).click());
  await page.getByRole("button", { name: "Edit metadata", exact: true }).click();
  await page.getByLabel("Title").fill("Mountain Temple Tales");
  await page.getByLabel("Tags").fill("folk, mountains");
  await page.getByRole("button", { name: "Save", exact: true }).click();
  await until("the edited title", () => document.querySelector("h2")?.textContent === "Mountain Temple Tales");
  assert.equal(await page.locator("dt:text-is('Tags') + dd").textContent(), "folk, mountains");
  await navigate("#/?tag=folk", () => page.getByRole("link", { name: "folk", exact: true }).click());
  await gridShows(["Mountain Temple Tales"], "the books tagged folk");
  assert.equal(await text(".chip"), "tag: folk ✕");
  await navigate("#/", () => page.locator(".chip").click());

  // 13. Upload through "+ Add books" (the file chooser): the new book's page opens and
  //     the library holds it; the same file again is a duplicate, named with a link.
  step = "upload";
  const books = expect.by_title.length;
  const uploaded = path.basename(cfg.upload);
  const chooser = page.waitForEvent("filechooser");
  await page.getByRole("button", { name: "+ Add books", exact: true }).click();
  const newHash = await navigateMatching(/^#\/book\/\d+$/, async () => (await chooser).setFiles(cfg.upload));
  const newId = Number(newHash.split("/").pop());
  assert.equal(await text("h2"), expect.upload_title);
  assert.equal(await text("#noticetext"), `Added ${expect.upload_title} (${uploaded})`);
  await navigate("#/", () => page.locator("#home").click());
  assert.equal(await text(".controls .hint"), `${books + 1} books`);
  assert.equal(await libraryCards().filter({ hasText: expect.upload_title }).getAttribute("data-id"), String(newId));
  step = "upload a duplicate";
  await page.locator("#uploadfile").setInputFiles(cfg.upload);
  await until("the duplicate notice", () => (document.querySelector("#noticetext")?.textContent || "").includes("already in the library"));
  assert.equal(await text("#noticetext"), `${uploaded}: this file is already in the library as “${expect.upload_title}” (${uploaded}, book ${newId}). Open it`);
  assert.equal(await page.locator("#noticetext a").getAttribute("href"), `#/book/${newId}`);
  await until("the library after the duplicate", (n) => document.querySelector(".controls .hint")?.textContent === `${n} books`, books + 1);
  await shot("reader-upload.png");

  // 14. An administrator deletes the uploaded book from its page.
  step = "delete";
  await navigate(`#/book/${newId}`, () => page.getByRole("link", { name: "Open it", exact: true }).click());
  page.once("dialog", (d) => d.accept());
  await navigate("#/", () => page.getByRole("button", { name: "Delete", exact: true }).click());
  assert.equal(await text("#noticetext"), `Deleted ${expect.upload_title} (${uploaded}).`);
  assert.equal(await text(".controls .hint"), `${books} books`);
  assert.equal(await libraryCards().filter({ hasText: expect.upload_title }).count(), 0);

  // 15. Signing out returns to the sign-in page.
  step = "sign out";
  await page.locator("#account").click();
  await page.waitForURL(base + "/login");
  await page.getByRole("button", { name: "Sign in", exact: true }).waitFor();
}

// ---- the run ----

try {
  await run();
  assert.deepEqual(pageErrors, [], "uncaught errors in the page");
  console.log("web UI end to end: ok");
} catch (e) {
  console.error(`web UI end to end failed at: ${step}`);
  console.error(e);
  if (cfg.failure_shot) await page.screenshot({ path: cfg.failure_shot }).then(() => console.error(`the page then: ${cfg.failure_shot}`), () => {});
  process.exitCode = 1;
} finally {
  await browser.close();
}
