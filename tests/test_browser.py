"""The interactive page (tds viz --format html) in a real browser: Debian's chromium, driven
headless by Playwright's Python package. Skipped, with the reason, where either is missing."""
from __future__ import annotations

import os
import re
import shutil

import pytest

import tinygrad_ds as tds
from tinygrad_ds.nn import models
from viz.html import render_html, write_html

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DOCS = os.path.join(os.path.dirname(__file__), "..", "docs")


def test_page_is_self_contained():
    page = render_html(tds.trace(models.resnet20(), (1, 3, 32, 32)))
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert "<script src" not in page and "<link" not in page
    assert "dagre" in page and "Copyright" not in page[:200]  # dagre inline, licence in static/


@pytest.fixture(scope="module")
def browser():
    pw = pytest.importorskip("playwright.sync_api", reason="the playwright package is not "
                             "installed (pip install -e '.[dev]')")
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (make test installs it; apt-get install chromium)")
    with pw.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def _open(browser, path):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto("file://" + os.path.abspath(path))
    page.wait_for_function("window.tdsPage && window.tdsPage.ready", timeout=15000)
    return page, errors


def test_resnet20_page_expands_and_lights_paths(browser, tmp_path):
    path = write_html(tds.trace(models.resnet20(), (1, 3, 32, 32)), str(tmp_path / "r20.html"))
    page, errors = _open(browser, path)
    assert errors == []
    assert "512 = 2^9: 9 residual blocks" in page.inner_text("#count")
    # at depth 2 the blocks are collapsed, runs of identical ones folded, each with its skip loop
    assert page.locator("g.node.folded").count() == 3
    assert page.locator("g.node.collapsed path.skip").count() == 5
    before = page.locator("g.node").count()
    # expand one block, then its Residual
    page.locator('g.node[data-label="layer2.0"]').dispatch_event("click")
    page.locator('g.node[data-label="layer2.0.residual"]').dispatch_event("click")
    assert page.locator('g.cluster[data-call]').count() == 5
    assert page.locator("g.node").count() > before
    assert page.locator("path.edge.skip[data-src]").count() == 1  # its skip, now an edge
    # a path through no branch at all: every skip lit, the expanded block's branch dimmed
    page.evaluate("window.tdsPage.lightPath(Array(9).fill(false))")
    assert page.locator("path.edge.skip.lit").count() == 1
    assert page.locator("g.node.dim").count() > 0 and page.locator("g.node.lit").count() > 0
    assert "length 0" in page.inner_text("#path-info")
    page.evaluate("window.tdsPage.randomPath(4)")
    assert "length 4" in page.inner_text("#path-info")
    assert sum(page.evaluate("[...document.querySelectorAll('.choices input')]"
                             ".map(c => c.checked)")) == 4
    page.locator('g.node[data-label="fc"]').dispatch_event("click")  # details of a layer
    assert "fc.weight" in page.inner_text("#details") and "std" in page.inner_text("#details")
    page.fill("#search", "layer3")
    assert page.locator("g.node.match").count() >= 1
    assert errors == []


def test_screenshot_for_the_readme(browser, tmp_path):
    # TDS_UPDATE_DOCS=1 writes it into docs/ (the README shows it); otherwise into tmp_path
    out = os.path.join(DOCS if os.environ.get("TDS_UPDATE_DOCS") else str(tmp_path),
                       "resnet20_page.png")
    path = write_html(tds.trace(models.resnet20(), (1, 3, 32, 32)), str(tmp_path / "r.html"))
    page, errors = _open(browser, path)
    page.locator('g.node[data-label="layer2.0"]').dispatch_event("click")
    page.locator('g.node[data-label="layer2.0.residual"]').dispatch_event("click")
    page.evaluate("window.tdsPage.lightPath([true, false, true, true, false, true, false, "
                  "false, true])")
    page.screenshot(path=out)
    assert errors == [] and os.path.getsize(out) > 20_000


def test_a_page_too_large_starts_collapsed_and_says_so(monkeypatch):
    import viz.html as H

    monkeypatch.setattr(H, "MAX_OPS", 10)
    d = H.page_data(tds.trace(models.resnet20(), (1, 3, 32, 32)), depth=None)
    assert d["depth"] == 1 and "too many to lay out" in d["note"]


def test_forward_and_backward_in_one_view(browser, tmp_path):
    g = tds.trace(models.resnet20(), (1, 3, 32, 32))
    page, errors = _open(browser, write_html(g, str(tmp_path / "fb.html"), show_backward=True))
    assert page.is_checked("#backward")
    grads = page.locator("g.node.bw")
    assert grads.count() > 10 and page.locator('g.node.bw[data-label="\u2207 fc"]').count() == 1
    assert page.locator("path.edge.grad").count() > 10    # the backward's own edges
    assert page.locator("path.edge.saved").count() > 10   # forward value -> rule that reads it
    page.locator('g.node.bw[data-label="\u2207 fc"]').dispatch_event("click")
    details = page.inner_text("#details")
    assert "grad of fc.weight" in details and "reads saved" in details
    page.uncheck("#backward")
    assert page.locator("g.node.bw").count() == 0
    assert errors == []


def test_jupyter_shows_the_page_in_an_iframe():
    from viz.html import Page

    out = Page(tds.trace(models.resnet20(), (1, 3, 32, 32)))._repr_html_()
    assert out.startswith("<iframe srcdoc=") and "tdsPage" in out and "<script" not in out
