"""The report in a real browser: headless Chromium (Debian's `chromium`) driven by Playwright.

A warehouse with a small generated sample plus a dataset whose every text field
is hostile HTML (tests/report_fixtures.py) is reported; the page is opened from
disk and must: open no dialog, run nothing from the data (each payload would set
window.__pwned), contain no element or attribute the data tried to inject, load
every plot, show the trace texts exactly, and make no network request.

The first report (the sample alone) is screenshotted at 1280 px wide. It is
written to docs/report.png when that file is missing or MEMENTOS_UPDATE_SCREENSHOT=1,
so an ordinary `make test` leaves the committed screenshot alone.

Chromium comes from Debian's package (`make test` installs it when missing);
`playwright install` is never used. Without Chromium this test fails, saying how
to install it: it never skips.
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

from report_fixtures import PAYLOADS, hostile_rows, ingest_hostile
from mementos.warehouse.report import write_report
from mementos.warehouse.trace_view import anchor_for

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parent.parent
SCREENSHOT = REPO / "docs" / "report.png"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SAMPLE_TRACES = 300


def chromium_path() -> str:
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.fail("Chromium is not installed, and the report's browser test needs it. Install Debian's "
                    "package: `apt-get install -y chromium` (as root; `make test` does it when apt-get is "
                    "available), or set CHROMIUM=/path/to/chromium. Do not use `playwright install`.")
    return path


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """(clean report of the sample, hostile report of sample + hostile dataset, hostile trace ids)."""
    from mementos.ingest.pipeline import run_ingest
    from mementos.sample import write_sample

    tmp = tmp_path_factory.mktemp("browser")
    db = tmp / "w.duckdb"
    write_sample(tmp / "sample", SAMPLE_TRACES, seed=3)
    run_ingest(str(tmp / "sample"), db, config="all", name="sample", with_tokens=True, workers=0, progress=False)
    clean = write_report(db, tmp / "clean.html", echo=lambda _: None).out
    ids = ingest_hostile(tmp / "hostile_src", db)
    hostile = write_report(db, tmp / "hostile.html", traces=ids, echo=lambda _: None).out
    return clean, hostile, ids


@contextmanager
def open_page(browser, path: Path, width: int = 1280, height: int = 900):
    """(page, events, url): a page on `path` that records dialogs and every request, and blocks anything but
    the file itself; its browser context is closed after."""
    context = browser.new_context(viewport={"width": width, "height": height}, java_script_enabled=True)
    page = context.new_page()
    events = {"dialogs": [], "requests": [], "blocked": []}
    url = path.resolve().as_uri()

    def on_dialog(dialog):
        events["dialogs"].append(dialog.message)
        dialog.dismiss()

    def on_route(route):
        if route.request.url == url or route.request.url.startswith("data:"):
            route.continue_()
        else:
            events["blocked"].append(route.request.url)
            route.abort()

    page.on("dialog", on_dialog)
    page.on("request", lambda request: events["requests"].append(request.url))
    context.route("**/*", on_route)
    page.goto(url, wait_until="load")
    page.wait_for_timeout(300)  # let anything that would run (onload, onerror) run
    try:
        yield page, events, url
    finally:
        context.close()


def check_images(page) -> list:
    images = page.evaluate("Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
    assert len(images) == 6, images
    assert all(complete and w > 0 and h > 0 for complete, w, h in images), images
    return images


def test_clean_report_loads_and_is_screenshotted(browser, reports, tmp_path):
    clean, _, _ = reports
    with open_page(browser, clean, height=2200) as (page, events, url):
        check_images(page)
        assert events["dialogs"] == []
        assert [u for u in events["requests"] if u != url and not u.startswith("data:")] == []
        assert page.locator("details.trace").count() >= 3  # a typical trace per domain
        assert page.locator("details.trace[open]").count() == 0  # collapsed: one line each
        shot = tmp_path / "report.png"
        page.screenshot(path=str(shot), full_page=False)
        assert shot.stat().st_size > 10_000
        if not SCREENSHOT.exists() or os.environ.get("MEMENTOS_UPDATE_SCREENSHOT") == "1":
            SCREENSHOT.parent.mkdir(exist_ok=True)
            shutil.copyfile(shot, SCREENSHOT)


def test_hostile_text_shows_as_text_and_runs_nothing(browser, reports):
    _, hostile, ids = reports
    with open_page(browser, hostile) as (page, events, url):
        assert events["dialogs"] == []
        assert page.evaluate("typeof window.__pwned") == "undefined"
        # nothing the data tried to inject exists as an element or an attribute
        injected = page.evaluate("""() => ({
            scripts: document.querySelectorAll('script').length,
            svgs: document.querySelectorAll('svg').length,
            iframes: document.querySelectorAll('iframe, object, embed, form, textarea').length,
            bold: document.querySelectorAll('b').length,
            handlers: Array.from(document.querySelectorAll('*')).flatMap(
                e => Array.from(e.attributes).map(a => a.name)).filter(n => n.startsWith('on')),
            links: Array.from(document.querySelectorAll('a')).map(a => a.getAttribute('href'))
                .filter(h => !/^#[a-z0-9-]+$/.test(h)),
            images: Array.from(document.images).map(i => i.getAttribute('src').slice(0, 22))
                .filter(s => s !== 'data:image/png;base64,'),
        })""")
        assert injected == {"scripts": 0, "svgs": 0, "iframes": 0, "bold": 0, "handlers": [], "links": [],
                            "images": []}, injected
        check_images(page)
        # every #link lands on an element of the page
        targets = page.evaluate("Array.from(document.querySelectorAll('a')).map(a => a.getAttribute('href'))"
                                ".filter(h => !document.getElementById(h.slice(1)))")
        assert targets == []
        # the trace views show the exact texts
        for trace_id, row in zip(ids, hostile_rows(len(ids))):
            view = page.locator(f"details.trace:has(#{anchor_for(trace_id)})")
            assert view.count() == 1, trace_id
            assert view.locator("summary").text_content().startswith(trace_id + " · ")
            assert view.locator(".problem").text_content() == row["problem"]
            assert view.locator(".block").all_text_contents() == row["_blocks"]
            assert view.locator(".memento").all_text_contents() == row["_mementos"]
            assert view.locator(".answer").text_content() == row["_answer"]
            stats = view.locator(".stats").first.text_content()
            assert row["domain"] in stats and row["source"] in stats and row["difficulty"] in stats
        body = page.text_content("body")
        for payload in PAYLOADS:
            assert payload in body  # shown as text
        # no network: the only request is the file itself
        assert events["blocked"] == []
        assert [u for u in events["requests"] if u != url and not u.startswith("data:")] == []


@pytest.mark.parametrize("width", [1280, 390])
def test_a_link_to_a_trace_view_opens_it(browser, reports, width):
    clean, _, _ = reports
    with open_page(browser, clean, width=width) as (page, _, _):
        collapsed = page.evaluate("document.documentElement.scrollHeight")
        link = page.locator("a[href^='#trace-']").first
        anchor = link.get_attribute("href")[1:]
        link.click()
        page.wait_for_timeout(200)
        view = page.locator(f"details.trace:has(#{anchor})")
        assert view.evaluate("d => d.open") is True
        assert page.locator(f"#{anchor}").is_visible()
        assert page.evaluate("document.documentElement.scrollHeight") > collapsed


def test_the_page_fits_a_390_px_screen(browser, reports):
    """Wide tables scroll inside their own box and plots scale down: the page itself never scrolls sideways."""
    clean, _, _ = reports
    with open_page(browser, clean, width=390) as (page, _, _):
        page.evaluate("document.querySelectorAll('details.trace').forEach(d => d.open = true)")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        too_wide = page.evaluate("Array.from(document.querySelectorAll('figure img'))"
                                 ".filter(i => i.getBoundingClientRect().right > 390).length")
        assert too_wide == 0


# Each table cell that holds text (not a number: class "n"), with every trace view open: how wide it is
# against 8 characters of its own font ("0" x 8, measured in the cell), and every word of it (separated by
# whitespace or a slash) whose letters land on more than one line.
CELLS = r"""() => {
  document.querySelectorAll('details.trace').forEach(d => d.open = true);
  const narrow = [], broken = [];
  for (const cell of document.querySelectorAll('td:not(.n), th:not(.n)')) {
    if (!cell.textContent.trim()) continue;
    const probe = document.createElement('span');
    probe.textContent = '0'.repeat(8);
    probe.style.cssText = 'position: absolute; visibility: hidden; white-space: nowrap; font: inherit';
    cell.appendChild(probe);
    const eight = probe.getBoundingClientRect().width;
    probe.remove();
    const style = getComputedStyle(cell);
    const width = cell.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    if (width < eight - 0.5) narrow.push(cell.textContent.trim().slice(0, 40));
    const texts = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    for (let node = texts.nextNode(); node; node = texts.nextNode()) {
      for (const word of node.data.matchAll(/[^\s\/]+\/?/g)) {  // a path may wrap after a slash
        const range = document.createRange();
        range.setStart(node, word.index);
        range.setEnd(node, word.index + word[0].length);
        const lines = new Set(Array.from(range.getClientRects()).filter(r => r.width > 0).map(r => Math.round(r.top)));
        if (lines.size > 1) broken.push(word[0]);
      }
    }
  }
  return {narrow, broken};
}"""


@pytest.mark.parametrize("width", [390, 1280])
def test_table_text_is_never_squeezed_or_broken_inside_a_word(browser, reports, width):
    """At 390 px text columns were 26-41 px wide (1-3 characters a line; the card table 4,246 px tall) and at
    1280 px the ingest runs broke `datase|t` and `cl100k_bas|e`: a text cell is at least 8 characters wide
    and wraps at spaces only, the table scrolling sideways in its own box instead."""
    clean, _, _ = reports
    with open_page(browser, clean, width=width) as (page, _, _):
        assert page.locator("td:not(.n)").count() > 100
        assert page.evaluate(CELLS) == {"narrow": [], "broken": []}


def test_each_table_scrolls_in_its_own_box_with_its_first_column_in_view(browser, reports):
    clean, _, _ = reports
    with open_page(browser, clean, width=390) as (page, _, _):
        tables = page.evaluate("""() => Array.from(document.querySelectorAll('table')).map(t => [
            t.parentElement.className, getComputedStyle(t.parentElement).overflowX,
            getComputedStyle(t.querySelector('tr > :first-child')).position])""")
        assert len(tables) >= 9 and {tuple(t) for t in tables} == {("scroll", "auto", "sticky")}
        # the card comparison is wider than the screen: scrolled to its end, its first column stays at the left
        card = page.locator("h2#card ~ .scroll").first
        card.evaluate("box => box.scrollLeft = box.scrollWidth")
        assert card.evaluate("box => box.scrollLeft") > 100
        first = card.locator("td").first.bounding_box()
        assert first["x"] == pytest.approx(card.bounding_box()["x"] + 1, abs=1)  # inside the box's border


def test_printed_blocks_are_not_clipped(browser, reports):
    clean, _, _ = reports
    with open_page(browser, clean) as (page, _, _):
        page.emulate_media(media="print")
        page.evaluate("document.querySelectorAll('details.trace').forEach(d => d.open = true)")
        clipped = page.evaluate("Array.from(document.querySelectorAll('.text'))"
                                ".filter(e => e.scrollHeight > e.clientHeight + 1).length")
        assert clipped == 0
