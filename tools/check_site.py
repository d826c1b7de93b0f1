#!/usr/bin/env python
"""Open every page of the built site in headless Chromium and report what a reader would find broken.

    python tools/check_site.py [_docs]          # prints one line per problem; exit 1 if any

For every page: no console error or failed request, nothing loaded from another host, every internal link
(file and #anchor) and image resolves, no raw TeX left in the text, and every formula typeset by MathJax
without a TeX error. The search page must find each of `SEARCH_TERMS`. Screenshots go to `<site>/_screens/`.
Chromium is driven by Playwright (its own browser downloads are not needed: it starts the system's Chromium).
"""
import argparse, contextlib, functools, html.parser, os, re, shutil, sys, threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

SEARCH_TERMS = {"MDRGCN": "model.html", "RobustDecoupleLoss": "losses.html"}
SCREENS = {"index.html": ["index.png", ("full", "index_full.png")],
           "losses.html": ["losses.png", ("the-three-terms", "losses_equations.png")]}
_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# Text left outside code once MathJax has run: $$, \tag, \begin..., \( \[ (Sphinx's math delimiters), or a
# $...$ span holding a TeX command.
RAW_TEX = re.compile(r"\$\$|\\(?:tag|begin|end)\b|\\[()\[\]]|\$[^$\n]{0,200}?\\[A-Za-z]+[^$\n]{0,200}?\$")

# Run in the page: the visible prose (code, MathJax output and scripts left out), the math elements Sphinx
# wrote, MathJax's containers and error nodes, broken images, and every link/image target.
_PAGE_JS = r"""async () => {
  const math = document.querySelectorAll('.math').length;
  let mj = typeof window.MathJax !== 'undefined' && !!(window.MathJax.startup && window.MathJax.startup.promise);
  if (mj) { try { await window.MathJax.startup.promise; } catch (e) { mj = false; } }
  const skip = 'pre, code, script, style, textarea, mjx-container, .highlight, .linenos';
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const parts = [];
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (!el || el.closest(skip)) continue;
    parts.push(n.textContent);
  }
  const imgs = [...document.images];
  return {
    text: parts.join(' '), math, mathjax: mj,
    typeset: document.querySelectorAll('mjx-container').length,
    merror: [...document.querySelectorAll('mjx-merror')].map(e => e.textContent).slice(0, 3),
    badImages: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute('src')),
    links: [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href')),
    images: imgs.map(i => i.getAttribute('src')),
  };
}"""


def find_chromium():
    "The system's Chromium (env CHROMIUM overrides), or None."
    if os.environ.get("CHROMIUM"): return os.environ["CHROMIUM"] if Path(os.environ["CHROMIUM"]).exists() else None
    return next((p for p in map(shutil.which, _BROWSERS) if p), None)


@contextlib.contextmanager
def serve(site: Path):
    "Serve `site` on a free port of 127.0.0.1 (Sphinx's search fetches pages, which file:// forbids)."
    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *a): pass
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    t = threading.Thread(target=httpd.serve_forever, daemon=True); t.start()
    try: yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally: httpd.shutdown(); httpd.server_close()


class _Ids(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(); self.ids = set()
    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if k in ("id", "name") and v: self.ids.add(v)


@functools.lru_cache(maxsize=None)
def _ids(path: Path) -> frozenset:
    p = _Ids(); p.feed(path.read_text(errors="replace")); return frozenset(p.ids)


def pages_of(site: Path) -> list:
    "Every HTML page of the site (MathJax's and the theme's assets left out)."
    return sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html")
                  if p.relative_to(site).parts[0] not in ("_static", "_screens", "_downloads", "_sources"))


def _resolve(site: Path, page: str, ref: str):
    "The file and fragment an internal `ref` on `page` points at; None for another host, mailto: etc."
    u = urlsplit(ref)
    if u.scheme or u.netloc: return None
    base = (site / page).parent
    path = (base / unquote(u.path)).resolve() if u.path else (site / page).resolve()
    if path.is_dir(): path = path / "index.html"
    return path, unquote(u.fragment)


def check_links(site: Path, page: str, links, images) -> list:
    "Internal links and images of `page` that point at no file, or at an anchor the target page lacks."
    out, site = [], site.resolve()
    for kind, refs in (("link", links), ("image", images)):
        for ref in dict.fromkeys(refs):
            r = _resolve(site, page, ref)
            if r is None: continue
            path, frag = r
            if site not in path.parents and path != site: out.append(f"{page}: {kind} {ref!r} leaves the site"); continue
            if not path.exists(): out.append(f"{page}: dead {kind} {ref!r} (no {path.relative_to(site)})"); continue
            if frag and path.suffix == ".html" and frag not in _ids(path):
                out.append(f"{page}: {kind} {ref!r}: no #{frag} in {path.relative_to(site)}")
    return out


def check_page(pw_page, base: str, site: Path, page: str) -> list:
    "Load one page and return its problems."
    problems, host = [], urlsplit(base).netloc
    errors, failed, foreign = [], [], []
    on_console = lambda m: m.type == "error" and errors.append(m.text)
    on_error = lambda e: errors.append(str(e))
    on_failed = lambda r: failed.append(f"{r.url} ({r.failure})")
    on_response = lambda r: r.status >= 400 and failed.append(f"{r.url} (HTTP {r.status})")
    def on_route(route):
        if urlsplit(route.request.url).netloc in (host, "") or route.request.url.startswith(("data:", "blob:", "about:")):
            return route.continue_()
        foreign.append(route.request.url); return route.abort()
    pw_page.on("console", on_console); pw_page.on("pageerror", on_error)
    pw_page.on("requestfailed", on_failed); pw_page.on("response", on_response)
    pw_page.route("**/*", on_route)
    try:
        pw_page.goto(base + page, wait_until="load", timeout=30_000)
        info = pw_page.evaluate(_PAGE_JS)
        pw_page.wait_for_timeout(50)
    finally:
        pw_page.unroute("**/*")
        for ev, f in (("console", on_console), ("pageerror", on_error), ("requestfailed", on_failed), ("response", on_response)):
            pw_page.remove_listener(ev, f)
    problems += [f"{page}: console error: {e[:200]}" for e in errors]
    problems += [f"{page}: request failed: {f[:200]}" for f in failed if urlsplit(f).netloc == host]
    problems += [f"{page}: loads from another host: {u[:200]}" for u in foreign]
    if info["math"] and not info["mathjax"]:
        problems.append(f"{page}: {info['math']} formulas but MathJax is missing (not loaded or failed)")
    elif info["typeset"] < info["math"]:
        problems.append(f"{page}: MathJax typeset {info['typeset']} of {info['math']} formulas")
    problems += [f"{page}: TeX error in a formula: {m[:120]!r}" for m in info["merror"]]
    for m in list(RAW_TEX.finditer(info["text"]))[:3]:
        a, b = max(0, m.start() - 60), m.end() + 60
        problems.append(f"{page}: raw TeX in the text: …{info['text'][a:b]!r}…")
    problems += [f"{page}: image does not load: {s!r}" for s in info["badImages"]]
    problems += check_links(site, page, info["links"], info["images"])
    return problems


def check_search(pw_page, base: str, terms=SEARCH_TERMS) -> list:
    "The search page finds each term, with the expected page among its results."
    problems = []
    for term, expect in terms.items():
        pw_page.goto(f"{base}search.html?q={term}", wait_until="load")
        try:
            pw_page.wait_for_function("document.querySelectorAll('#search-results ul.search li').length > 0 "
                                      "|| /did not match|no results/i.test((document.querySelector('#search-results') || {}).innerText || '')",
                                      timeout=20_000)
        except Exception as e: problems.append(f"search.html: no answer for {term!r} ({type(e).__name__})"); continue
        try:                               # results are listed one by one; Sphinx says when the last one is in
            pw_page.wait_for_function("/Search finished|did not match/i.test((document.querySelector('#search-results') || {}).innerText || '')",
                                      timeout=30_000)
        except Exception as e: problems.append(f"search.html: the search for {term!r} did not finish ({type(e).__name__})"); continue
        hits = pw_page.eval_on_selector_all("#search-results ul.search li a", "as => as.map(a => a.getAttribute('href'))")
        text = pw_page.inner_text("#search-results")
        problems += [f"search.html: raw TeX in the results for {term!r}: …{text[max(0, m.start() - 60):m.end() + 60]!r}…"
                     for m in list(RAW_TEX.finditer(text))[:3]]
        if not hits: problems.append(f"search.html: {term!r} found nothing")
        elif not any(h.split("#")[0].split("?")[0].endswith(expect) for h in hits):
            problems.append(f"search.html: {term!r} did not list {expect} (got {hits[:5]})")
    return problems


def screenshots(pw_page, base: str, site: Path, screens=SCREENS) -> list:
    out = site / "_screens"; out.mkdir(exist_ok=True)
    written = []
    for page, shots in screens.items():
        if not (site / page).exists(): continue
        pw_page.goto(base + page, wait_until="load")
        pw_page.evaluate("() => window.MathJax && MathJax.startup && MathJax.startup.promise")
        for shot in shots:
            anchor, name = shot if isinstance(shot, tuple) else (None, shot)
            if anchor and anchor != "full":
                pw_page.evaluate(f"() => {{ const e = document.getElementById({anchor!r}); if (e) e.scrollIntoView(); }}")
            pw_page.wait_for_timeout(300)
            pw_page.screenshot(path=str(out / name), full_page=anchor == "full"); written.append(out / name)
    return written


def check_site(site, pages=None, search=True, shots=True, chromium=None) -> list:
    "All problems found on `pages` (default: every page) of the site in folder `site`."
    from playwright.sync_api import sync_playwright
    site = Path(site).resolve()
    chromium = chromium or find_chromium()
    if not chromium: raise RuntimeError("no Chromium found (apt-get install chromium)")
    pages = pages_of(site) if pages is None else list(pages)
    problems = []
    with serve(site) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        try:
            ctx = browser.new_context(viewport={"width": 1400, "height": 1000}, service_workers="block")
            pg = ctx.new_page()
            for page in pages: problems += check_page(pg, base, site, page)
            if search: problems += check_search(pg, base)
            if shots: screenshots(pg, base, site)
        finally: browser.close()
    return problems


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("site", nargs="?", default=str(Path(__file__).resolve().parents[1] / "_docs"))
    a = ap.parse_args(argv)
    problems = check_site(a.site)
    for p in problems: print(p)
    n = len(pages_of(Path(a.site)))
    print(f"{n} pages checked: " + (f"{len(problems)} problems" if problems else "no problems"))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
