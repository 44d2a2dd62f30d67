"""`mementos serve` in a real browser: headless Chromium (Debian's `chromium`) driven by Playwright.

At 1280 and 390 px wide: the overview, then a filter chosen in the trace list's form, a trace of the
filtered list, its next trace, and a statement run in the SQL console. On every page: no horizontal
overflow (wide tables scroll in their own box), no console error, and no request to anywhere but the
server on 127.0.0.1 (any other is blocked and recorded).

Screenshots of the list and a trace (1280 px) and of a trace at 390 px are written to docs/serve-*.png
when missing or with MEMENTOS_UPDATE_SCREENSHOT=1, so that an ordinary `make test` leaves them alone.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from test_report_browser import CHROMIUM_ARGS, chromium_path
from test_serve import Server

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from mementos.ingest.pipeline import run_ingest
    from mementos.sample import write_sample
    from mementos.warehouse.engine import build

    tmp = tmp_path_factory.mktemp("serve-browser")
    db = tmp / "w.duckdb"
    write_sample(tmp / "sample", 300, seed=3)
    run_ingest(str(tmp / "sample"), db, config="all", name="sample", with_tokens=True, workers=0, progress=False)
    build(db)
    s = Server(db, tmp / "tmp")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield b
        b.close()


def open_context(browser, server: Server, width: int):
    """A page that records console errors and blocks (and records) every request not to the server."""
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    events = {"errors": [], "blocked": []}

    def on_route(route):
        if route.request.url.startswith(server.url + "/"):
            route.continue_()
        else:
            events["blocked"].append(route.request.url)
            route.abort()

    context.route("**/*", on_route)
    page.on("console", lambda m: events["errors"].append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: events["errors"].append(str(e)))
    return context, page, events


def check(page, events, width: int, what: str) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= width, f"{what} overflows at {width} px"
    assert events == {"errors": [], "blocked": []}, what


def save(page, name: str, full_page: bool = False) -> None:
    target = DOCS / name
    if not target.exists() or os.environ.get("MEMENTOS_UPDATE_SCREENSHOT") == "1":
        DOCS.mkdir(exist_ok=True)
        shot = target.with_suffix(".tmp.png")
        page.screenshot(path=str(shot), full_page=full_page)
        shutil.move(shot, target)


@pytest.mark.parametrize("width", [1280, 390])
def test_overview_filter_trace_next_and_sql(browser, server, width):
    context, page, events = open_context(browser, server, width)
    try:
        page.goto(server.url + "/", wait_until="load")
        assert page.locator("h1").text_content() == "Overview"
        check(page, events, width, "the overview")

        page.click("header nav a[href='/traces']")
        page.select_option("select[name=domain]", "math")
        page.click("#apply")
        page.wait_for_url("**/traces?*domain=math*")
        assert page.locator("h1").text_content().startswith("Traces")
        domains = page.locator("#trace-list tr td:nth-child(2)").all_text_contents()
        assert domains and set(domains) == {"math"}
        check(page, events, width, "the filtered list")
        if width == 1280:
            save(page, "serve-traces.png")

        first = page.locator("#trace-list a[href^='/traces/']").first
        first_id = first.text_content()
        first.click()
        page.wait_for_load_state("load")
        assert page.locator("h1").text_content() == first_id
        assert page.locator(".pair").count() > 1
        check(page, events, width, "a trace")

        page.click("#next")
        page.wait_for_load_state("load")
        second_id = page.locator("h1").text_content()
        assert second_id != first_id and "domain=math" in page.url
        assert page.locator("#previous").get_attribute("href").startswith("/traces/" + first_id.replace(":", "%3A"))
        check(page, events, width, "the next trace")
        save(page, "serve-trace.png" if width == 1280 else "serve-trace-390.png")

        page.click("header nav a[href='/sql']")
        page.fill("textarea[name=sql]", "SELECT domain, count(*) AS traces FROM traces GROUP BY domain ORDER BY domain")
        page.click("#run")
        page.wait_for_load_state("load")
        assert page.locator("#result th").all_text_contents() == ["domain", "traces"]
        assert page.locator("#result tr").count() > 2
        check(page, events, width, "the SQL console")
    finally:
        context.close()
