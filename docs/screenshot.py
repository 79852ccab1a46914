"""The README's picture of `factory report`: the page's top (inputs, contents, runs) and six of
its charts in a grid, shot in headless Chromium (tests/chromium.sh) through playwright.

    python docs/screenshot.py RUN_DIR... --out docs/report.png

docs/report.png was made from three runs of the embedded SmolLM2 teacher: math-cot, knowledge
and an r1-mix of the two (`factory run recipe=...` with the shipped defaults).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CHARTS = ("funnel", "acceptance-source", "lengths", "drops", "outcome", "mix")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="+")
    ap.add_argument("--out", type=Path, default=Path("docs/report.png"))
    a = ap.parse_args()

    from PIL import Image
    from playwright.sync_api import sync_playwright

    from factory.report import build_report

    tmp = Path(tempfile.mkdtemp())
    result = build_report(a.paths, tmp / "report.html")
    names = [next(c for c in result["charts"] if c.startswith(f"{k}-")) for k in CHARTS]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 960, "height": 1000})
        page.goto((tmp / "report.html").as_uri())
        page.locator("main").screenshot(path=str(tmp / "main.png"))
        for n in names:
            page.locator(f"#chart-{n}").screenshot(path=str(tmp / f"{n}.png"))
        browser.close()
    top = Image.open(tmp / "main.png").convert("RGB")
    top = top.crop((0, 0, top.width, 560))
    tiles = [Image.open(tmp / f"{n}.png").convert("RGB") for n in names]
    width = max(t.width for t in tiles)
    rows = [tiles[i : i + 2] for i in range(0, len(tiles), 2)]
    heights = [max(t.height for t in r) for r in rows]
    sheet = Image.new("RGB", (2 * width, top.height + sum(heights)), "white")
    sheet.paste(top, (0, 0))
    y = top.height
    for row, h in zip(rows, heights, strict=True):
        for k, tile in enumerate(row):
            sheet.paste(tile, (k * width, y))
        y += h
    sheet = sheet.resize((sheet.width * 3 // 4, sheet.height * 3 // 4), Image.LANCZOS)
    sheet.quantize(colors=128).save(a.out, optimize=True)
    shutil.rmtree(tmp)
    print(f"{a.out}: {sheet.width}x{sheet.height}")


if __name__ == "__main__":
    main()
