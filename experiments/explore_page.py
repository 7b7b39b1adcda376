"""The note's appendix as an interactive page: ``docs/explore_appendix.html`` and its screenshot.

Writes ``explore_appendix.html``, :func:`vecjac.explore.explore_html` with its defaults (the
note's appendix: A 3x4, beta 2x2, padding (1, 1), stride (1, 2); what ``vecjac explore``
writes), and, when Chromium, chromedriver and Selenium are installed, ``explore_appendix.png``:
the page in headless Chromium while the pointer rests on the entry of ``dvecZ/dvecA`` in row
``z_32``, column ``a_23`` (``dz_32/da_23 = beta_12``).  Without them the PNG is skipped and the
script says what is missing (``apt-get install chromium chromium-driver``,
``pip install selenium``).

The page is deterministic (seeded values), so a rerun rewrites the same HTML; the PNG depends
on the browser's fonts.  Default folder: ``docs/`` of this repository.

    python experiments/explore_page.py [--out DIR] [--no-png]
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
from io import BytesIO
from pathlib import Path

from PIL import Image

from vecjac.explore import explore_html
from vecjac.symbolic import appendix_example

DOCS = Path(__file__).resolve().parent.parent / "docs"
WIDTH = 1500  # CSS pixels: the page's panels fit, legible on a projector


def missing_browser_tools() -> list[str]:
    """What a screenshot needs and is not installed."""
    missing = [] if importlib.util.find_spec("selenium") else ["selenium (pip install selenium)"]
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        missing.append("chromium (apt-get install chromium)")
    if not shutil.which("chromedriver"):
        missing.append("chromedriver (apt-get install chromium-driver)")
    return missing


def screenshot(page: Path, png: Path, row: str = "z_32", column: str = "a_23") -> Path:
    """The page in headless Chromium, pointer on the dvecZ/dvecA entry (row, column)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    s = appendix_example()  # the page's labels, in vec order (tests/test_explore.py)
    selector = (f'td[data-j="0"][data-r="{s.row_labels.index(row)}"]'
                f'[data-c="{s.a_labels.index(column)}"]')
    options = Options()
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                     "--disable-dev-shm-usage", f"--window-size={WIDTH},1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        driver.get(page.resolve().as_uri())
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(WIDTH, height + 200)  # the whole page, no scrolling
        inner = driver.execute_script("return window.innerHeight")
        driver.set_window_size(WIDTH, height + 200 - (inner - height))
        ActionChains(driver).move_to_element(driver.find_element(By.CSS_SELECTOR,
                                                                 selector)).perform()
        shot = driver.get_screenshot_as_png()
    finally:
        driver.quit()
    with Image.open(BytesIO(shot)) as image:  # a palette PNG: a third of the size
        image.convert("RGB").quantize(256).save(png, format="PNG", optimize=True)
    return png


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DOCS, help=f"folder (default {DOCS})")
    parser.add_argument("--no-png", action="store_true", help="write the HTML page only")
    args = parser.parse_args(argv)
    if not args.out.is_dir():
        parser.error(f"--out {args.out}: not a folder")
    page = args.out / "explore_appendix.html"
    html = explore_html(path=page)
    print(f"wrote {page} ({len(html.encode()) / 1024:.0f} KB)")
    if args.no_png:
        return 0
    missing = missing_browser_tools()
    if missing:
        print(f"no screenshot: missing {', '.join(missing)}")
        return 0
    png = screenshot(page, args.out / "explore_appendix.png")
    print(f"wrote {png} ({png.stat().st_size / 1024:.0f} KB): pointing at dz_32/da_23")
    return 0


if __name__ == "__main__":
    sys.exit(main())
