"""The report in a real browser: headless Chromium (Debian's package, tests/chromium.sh) driven
by playwright opens the page from disk with the network cut off, and must show it with no
console message, no page error and no request beyond the file itself; every chart must lay out
at a readable size and draw data marks (coloured shapes, not only axes); a full-page screenshot is taken (and kept beside the
test's files) and must not be blank."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from factory.report import build_report
from tests.factory.test_report import hostile_run, mix_run  # noqa: F401  (module fixtures)
from tests.factory.test_warehouse import inputs  # noqa: F401

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# per chart: its laid-out size, its text labels, and its data marks: filled shapes in a colour
# (not the white or black of backgrounds, axes and ticks, not a legend swatch) with an area on
# screen; an empty chart has axes, labels and a legend but no such mark
MEASURE = """() => Array.from(document.querySelectorAll('figure.chart')).map(f => {
  const svg = f.querySelector('svg');
  const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
  const plain = new Set(['none', 'rgb(255, 255, 255)', 'rgb(0, 0, 0)']);
  const marks = svg ? Array.from(svg.querySelectorAll('path')).filter(p => {
    const r = p.getBoundingClientRect();
    return !plain.has(getComputedStyle(p).fill) && r.width * r.height >= 4
      && !p.closest('g[id*="legend"]');  // a legend's swatches are not data
  }).length : 0;
  return {name: f.dataset.chart, width: box.width, height: box.height, marks: marks,
          texts: svg ? svg.querySelectorAll('text').length : 0};
})"""


@pytest.fixture(scope="module")
def page_file(inputs, mix_run, hostile_run, tmp_path_factory):  # noqa: F811
    math, reverify, published = inputs
    out = tmp_path_factory.mktemp("browser") / "report.html"
    result = build_report([math, reverify, published, mix_run, hostile_run], out)
    return out, result


def _open(path: Path, screenshot: Path):
    from playwright.sync_api import sync_playwright

    assert CHROMIUM, "chromium is not installed: run `bash tests/chromium.sh` (README command 2)"
    messages, requests = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            context = browser.new_context(viewport={"width": 1000, "height": 900}, offline=True)
            page = context.new_page()
            page.on("console", lambda m: messages.append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: messages.append(f"pageerror: {e}"))
            page.on("requestfailed", lambda r: messages.append(f"requestfailed: {r.url}"))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(path.as_uri(), wait_until="load")
            charts = page.evaluate(MEASURE)
            title = page.title()
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return messages, requests, charts, title


def test_the_page_renders_in_chromium(page_file, tmp_path):
    path, result = page_file
    shot = path.parent / "report.png"
    messages, requests, charts, title = _open(path, shot)
    assert messages == []
    assert requests == [path.as_uri()]  # the file itself, nothing else (offline anyway)
    assert title == "factory report"
    assert [c["name"] for c in charts] == result["charts"]  # every chart is on the page
    for c in charts:
        assert c["width"] >= 600 and c["height"] >= 120, c  # laid out at a readable size
        assert c["marks"] >= 1 and c["texts"] >= 3, c  # data drawn, and labelled
    from PIL import Image  # pillow comes with matplotlib

    with Image.open(shot) as image:
        assert image.width == 1000 and image.height > 5000  # the full page, every section
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours and len(colours) > 50  # charts in colour, not a blank page
