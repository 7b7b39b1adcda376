"""`vecjac explore`: the page's embedded data against the builders, the HTML, the CLI, and
the page in a real browser.

The page embeds every stride/padding (and pooling window) variant as JSON; the data are read
back out of the HTML here and compared with ``conv_wrt_input`` / ``conv_wrt_kernel`` /
``pool`` (values) and ``symbolic_conv`` (symbols), and for the appendix with the note's own
entries.  The browser test needs Chromium, chromedriver and Selenium: without them it is
skipped with the reason, and with ``VECJAC_REQUIRE_BROWSER=1`` (set by ``.ci/run``) it fails
instead, so CI cannot skip it silently.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from vecjac import plot
from vecjac.cli import main
from vecjac.direct import conv2d, pool2d
from vecjac.explore import LIMITS, MAX_ENTRIES, explore_data, explore_html
from vecjac.jacobians import conv_wrt_input, conv_wrt_kernel, pool
from vecjac.symbolic import appendix_example, symbolic_conv
from vecjac.vec import unvec

ROOT = Path(__file__).resolve().parent.parent
DATA_SCRIPT = re.compile(r'<script type="application/json" id="vecjac-data">(.*?)</script>', re.S)


# --- reading the page back ------------------------------------------------------------------
def page_data(html: str) -> dict:
    found = DATA_SCRIPT.findall(html)
    assert len(found) == 1, "the page must hold exactly one data block"
    return json.loads(found[0])


def resolve(node, tables):
    """``{"@": k}`` is table ``k``: the page's arrays shared between variants."""
    if isinstance(node, dict):
        if set(node) == {"@"}:
            return tables[node["@"]]
        return {key: resolve(value, tables) for key, value in node.items()}
    if isinstance(node, list):
        return [resolve(value, tables) for value in node]
    return node


def variant(data: dict, key: str) -> dict:
    """A variant with every table resolved and the shared labels/values merged in."""
    V = resolve(data["variants"][key], data["tables"])
    if "error" in V:
        return V
    for name, shared in data["vars"].items():
        V["vars"][name] = {**shared, **V["vars"].get(name, {})}
    return V


def matrix(J: dict, V: dict) -> sp.csr_array:
    """The embedded Jacobian: explicit ``data``, or the gather ``vec(source)[map]``."""
    data = J["data"]
    if data is None:
        data = np.asarray(V["vars"][J["gather"]]["values"], dtype=float)[J["map"]]
    return sp.csr_array((np.asarray(data, dtype=float), J["indices"], J["indptr"]),
                        shape=tuple(J["shape"]))


def symbols(J: dict, V: dict) -> list[list[str]]:
    """The embedded Jacobian as the note writes it: each stored entry's symbol, else "0"."""
    labels = V["vars"][J["gather"]]["labels"]
    n, m = J["shape"]
    cells = [["0"] * m for _ in range(n)]
    for r in range(n):
        for e in range(J["indptr"][r], J["indptr"][r + 1]):
            cells[r][J["indices"][e]] = labels[J["map"][e]]
    return cells


def row_of(csr: dict):
    """Row ``r``'s column indices of an embedded CSR (a Jacobian, or max pooling's windows)."""
    return lambda r: csr["indices"][csr["indptr"][r]:csr["indptr"][r + 1]]


def block(cells, rows: slice, cols: slice):
    return [row[cols] for row in cells[rows]]


def assert_same_csr(embedded: sp.csr_array, built) -> None:
    built = built.matrix
    assert embedded.shape == built.shape
    np.testing.assert_array_equal(embedded.indptr, built.indptr)
    np.testing.assert_array_equal(embedded.indices, built.indices)
    np.testing.assert_array_equal(embedded.data, built.data)  # exactly: a gather, no arithmetic


# --- the appendix, against the note ---------------------------------------------------------
@pytest.fixture(scope="module")
def appendix():
    data = page_data(explore_html())
    return data, variant(data, data["given"])


def test_default_is_the_appendix(appendix):
    data, V = appendix
    assert data["layer"] == "conv" and data["given"] == "1,2,1,1"  # stride (1, 2), padding (1, 1)
    assert V["stride"] == [1, 2] and V["padding"] == [1, 1]
    assert [J["shape"] for J in V["jac"]] == [[12, 12], [12, 4]]  # Z 4x3, A 3x4, beta 2x2
    s = appendix_example()
    assert V["vars"]["in"]["labels"] == s.a_labels and V["vars"]["ker"]["labels"] == s.beta_labels
    assert V["vars"]["out"]["labels"] == s.row_labels


def test_appendix_symbols_are_the_notes(appendix):
    _, V = appendix
    s = appendix_example()
    dZ_dA, dZ_dbeta = (symbols(J, V) for J in V["jac"])
    assert dZ_dA == s.dZ_dA and dZ_dbeta == s.dZ_dbeta
    row = s.row_labels.index("z_32")
    assert dZ_dA[row][s.a_labels.index("a_23")] == "beta_12"
    # the note: z_32 = a_22 beta_11 + a_23 beta_12 + a_32 beta_21 + a_33 beta_22
    note = {("a_22", "beta_11"), ("a_23", "beta_12"), ("a_32", "beta_21"), ("a_33", "beta_22")}
    J = V["jac"][0]
    pairs = {(s.a_labels[J["indices"][e]], s.beta_labels[J["map"][e]])
             for e in range(J["indptr"][row], J["indptr"][row + 1])}
    assert pairs == note
    assert {a for a in dZ_dbeta[row] if a != "0"} == {a for a, _ in note}
    assert {b for b in dZ_dA[row] if b != "0"} == {b for _, b in note}
    assert s.Z[2][1] == "a_22 beta_11 + a_23 beta_12 + a_32 beta_21 + a_33 beta_22"


def test_appendix_values_are_the_builders(appendix):
    _, V = appendix
    A = unvec(V["vars"]["in"]["values"], (1, 3, 4))
    K = unvec(V["vars"]["ker"]["values"], (1, 1, 2, 2))
    assert_same_csr(matrix(V["jac"][0], V), conv_wrt_input(K, A.shape, (1, 2), (1, 1)))
    assert_same_csr(matrix(V["jac"][1], V), conv_wrt_kernel(A, K.shape, (1, 2), (1, 1)))
    np.testing.assert_array_equal(V["vars"]["out"]["values"],
                                  conv2d(A, K, None, (1, 2), (1, 1)).transpose(0, 2, 1).ravel())


# --- every variant of several pages, against the builders ------------------------------------
CONV_PAGES = [
    dict(),                                                        # the appendix
    dict(input_size=(4, 5), kernel_size=(3, 2), stride=(2, 1), padding=(0, 2)),
    dict(input_size=(3, 3), kernel_size=2, channels=(2, 3), stride=1, padding=0),
    dict(input_size=(4, 3), kernel_size=(2, 3), channels=(3, 2), stride=(3, 1), padding=(2, 1)),
]
POOL_PAGES = [
    dict(layer="avgpool"),
    dict(layer="avgpool", input_size=(4, 5), kernel_size=(3, 2), channels=2, stride=2,
         padding=(1, 0)),
    dict(layer="maxpool"),
    dict(layer="maxpool", input_size=(5, 4), kernel_size=3, channels=(2, 2), stride=(2, 1),
         padding=(1, 0)),
]


def _check_layout(V: dict, values: np.ndarray, padding) -> None:
    """Every input entry sits where vec says, shifted by the padding."""
    for idx, (c, r, s) in enumerate(V["vars"]["in"]["pos"]):
        assert values[c, r - padding[0], s - padding[1]] == V["vars"]["in"]["values"][idx]


def _check_windows(V: dict, members) -> None:
    """The window drawn for each output holds exactly the input entries of its row."""
    W = V["window"]
    (hk, wk), at = W["size"], W["at"]
    by_cell = {tuple(p): i for i, p in enumerate(V["vars"]["in"]["pos"])}
    for r, (channel, top, left) in enumerate(at):
        blocks = {c for c, _, _ in V["vars"]["in"]["pos"]} if channel < 0 else {channel}
        inside = {by_cell[(c, R, S)] for c in blocks for R in range(top, top + hk)
                  for S in range(left, left + wk) if (c, R, S) in by_cell}
        assert inside == set(members(r)), f"window of row {r}"


@pytest.mark.parametrize("kwargs", CONV_PAGES, ids=lambda kw: str(kw) or "appendix")
def test_conv_variants_equal_the_builders(kwargs):
    data = page_data(explore_html(**kwargs))
    c_in, c_out = (kwargs.get("channels", 1),) * 2 if isinstance(
        kwargs.get("channels", 1), int) else kwargs["channels"]
    size = kwargs.get("input_size", (3, 4))
    kernel = kwargs.get("kernel_size", (2, 2))
    size, kernel = [(v, v) if isinstance(v, int) else v for v in (size, kernel)]
    A = unvec(data["vars"]["in"]["values"], (c_in,) + tuple(size))
    K = unvec(data["vars"]["ker"]["values"], (c_out, c_in) + tuple(kernel))
    checked = 0
    for key in data["variants"]:
        hs, ws, hp, wp = map(int, key.split(","))
        V = variant(data, key)
        if "error" in V:
            with pytest.raises(ValueError, match=re.escape(V["error"])):
                conv_wrt_input(K, A.shape, (hs, ws), (hp, wp))
            continue
        checked += 1
        J_A, J_K = V["jac"]
        assert_same_csr(matrix(J_A, V), conv_wrt_input(K, A.shape, (hs, ws), (hp, wp)))
        assert_same_csr(matrix(J_K, V), conv_wrt_kernel(A, K.shape, (hs, ws), (hp, wp)))
        Z = conv2d(A, K, None, (hs, ws), (hp, wp))
        np.testing.assert_array_equal(V["vars"]["out"]["values"], Z.transpose(0, 2, 1).ravel())
        _check_layout(V, A, (hp, wp))
        _check_windows(V, row_of(J_A))
        # symbols: block (j, i) of each Jacobian is symbolic_conv's, other kernel blocks zero
        one = c_in == c_out == 1
        dZ_dA, dZ_dK = symbols(J_A, V), symbols(J_K, V)
        hz, wz = Z.shape[1:]
        nz, na, nk = hz * wz, size[0] * size[1], kernel[0] * kernel[1]
        for j in range(c_out):
            for i in range(c_in):
                s = symbolic_conv(size, kernel, (hs, ws), (hp, wp),
                                  a="a" if one else f"a^({i + 1})",
                                  k="beta" if one else f"k^({j + 1},{i + 1})")
                rows = slice(j * nz, (j + 1) * nz)
                assert block(dZ_dA, rows, slice(i * na, (i + 1) * na)) == s.dZ_dA
                for jj in range(c_out):
                    cols = slice((jj * c_in + i) * nk, (jj * c_in + i + 1) * nk)
                    expected = s.dZ_dbeta if jj == j else [["0"] * nk] * nz
                    assert block(dZ_dK, rows, cols) == expected
                z = "z" if one else f"z^({j + 1})"
                assert V["vars"]["out"]["labels"][j * nz:(j + 1) * nz] == [
                    z + label[1:] for label in s.row_labels]
    assert checked >= 20


@pytest.mark.parametrize("kwargs", POOL_PAGES, ids=str)
def test_pool_variants_equal_the_builders(kwargs):
    data = page_data(explore_html(**kwargs))
    kind = kwargs["layer"][:3]
    C = kwargs.get("channels", 1)
    C = C if isinstance(C, int) else C[0]
    size = kwargs.get("input_size", (3, 4))
    I = unvec(data["vars"]["in"]["values"], (C,) + tuple(size))
    assert len(np.unique(I)) == I.size  # distinct values: max pooling has no ties
    checked = 0
    for key in data["variants"]:
        hs, ws, hp, wp, hl, wl = map(int, key.split(","))
        geometry = ((hl, wl), (hs, ws), (hp, wp))
        V = variant(data, key)
        if "error" in V:
            with pytest.raises(ValueError, match=re.escape(V["error"])):
                pool(I, kind, *geometry)
            continue
        checked += 1
        (J,) = V["jac"]
        assert "ker" not in [j["wrt"] for j in V["jac"]]  # pooling: no kernel Jacobian
        embedded = matrix(J, V)
        assert_same_csr(embedded, pool(I, kind, *geometry))
        A = pool2d(I, kind, *geometry)
        np.testing.assert_allclose(V["vars"]["out"]["values"], A.transpose(0, 2, 1).ravel(),
                                   rtol=1e-15)
        _check_layout(V, I, (hp, wp))
        if kind == "avg":
            np.testing.assert_allclose(embedded.data, 1 / (hl * wl), rtol=1e-15)
            s = symbolic_conv(size, (hl, wl), (hs, ws), (hp, wp), a="i", k="p")
            n_out, n_in = len(s.row_labels), size[0] * size[1]
            cells = symbols(J, V)
            for c in range(C):  # block diagonal, every block the same p_uv pattern
                assert block(cells, slice(c * n_out, (c + 1) * n_out),
                             slice(c * n_in, (c + 1) * n_in)) == s.dZ_dA
            _check_windows(V, row_of(J))
        else:  # one switch per row, at the maximum of the window's values
            M = V["members"]
            values = np.asarray(V["vars"]["in"]["values"])
            for r in range(J["shape"][0]):
                inside = row_of(M)(r)
                assert J["indptr"][r + 1] - J["indptr"][r] == 1
                assert J["indices"][J["indptr"][r]] == inside[int(np.argmax(values[inside]))]
            _check_windows(V, row_of(M))
    assert checked >= 20


def test_page_is_deterministic():
    assert explore_html() == explore_html()


def test_explore_data_is_what_the_page_embeds():
    data = explore_data(layer="maxpool")
    assert page_data(explore_html(layer="maxpool")) == json.loads(json.dumps(data))


def test_committed_example_page_is_current():
    """docs/explore_appendix.html is what explore_html() writes now (rerun
    experiments/explore_page.py after changing the page)."""
    committed = (ROOT / "docs" / "explore_appendix.html").read_text(encoding="utf-8")
    assert committed == explore_html(), "rerun: python experiments/explore_page.py"
    assert (ROOT / "docs" / "explore_appendix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_experiment_script_writes_the_page(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("explore_page",
                                                  ROOT / "experiments" / "explore_page.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--out", str(tmp_path), "--no-png"]) == 0
    assert (tmp_path / "explore_appendix.html").read_text(encoding="utf-8") == explore_html()
    assert "wrote" in capsys.readouterr().out


# --- the HTML itself ------------------------------------------------------------------------
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


class _Checker(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.counts, self.errors = [], {}, []

    def handle_starttag(self, tag, attrs):
        self.counts[tag] = self.counts.get(tag, 0) + 1
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.counts[tag] = self.counts.get(tag, 0) + 1

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


@pytest.mark.parametrize("kwargs", [dict(), dict(channels=(2, 2)), dict(layer="maxpool")],
                         ids=str)
def test_page_is_valid_self_contained_html(kwargs):
    html = explore_html(**kwargs)
    assert html.startswith("<!DOCTYPE html>")
    checker = _Checker()
    checker.feed(html)
    checker.close()
    assert not checker.errors and not checker.stack, (checker.errors, checker.stack)
    assert [checker.counts.get(t) for t in ("html", "head", "body", "title")] == [1, 1, 1, 1]
    # no external resource of any kind: scripts and styles are inline, no fonts, no images
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    assert not re.search(r"\bsrc\s*=", html, re.I) and "<link" not in html.lower()
    assert "@import" not in html and not re.search(r"url\(\s*['\"]?\s*(https?:)?//", html)
    assert "http://" not in html and "https://" not in html
    assert '<meta charset="utf-8">' in html


def test_default_page_is_small():
    assert len(explore_html().encode("utf-8")) < 2 * 2**20


def test_path_writes_the_page(tmp_path):
    out = tmp_path / "page.html"
    html = explore_html(path=out)
    assert out.read_text(encoding="utf-8") == html
    assert plot.explore_html is explore_html  # re-exported


# --- bad input ------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, error, message", [
    (dict(input_size=100), ValueError, "input_size must be at most 8"),
    (dict(input_size=(3, 4, 5)), TypeError, "input_size must be an int or a pair"),
    (dict(kernel_size=(6, 2)), ValueError, "kernel_size must be at most 5"),
    (dict(kernel_size=0), ValueError, "kernel_size must be >= 1"),
    (dict(channels=4), ValueError, "channels must be at most 3"),
    (dict(channels=(1.5, 2)), TypeError, "channels must be an int or a pair"),
    (dict(stride=0), ValueError, "stride must be >= 1"),
    (dict(stride=9), ValueError, "stride must be at most 4"),
    (dict(padding=-1), ValueError, "padding must be >= 0"),
    (dict(layer="foo"), ValueError, "unknown layer 'foo'"),
    (dict(layer=3), ValueError, "unknown layer 3"),
    (dict(kernel_size=5, padding=0), ValueError, "larger than the padded input"),
    (dict(layer="avgpool", channels=(1, 2)), ValueError, "C_in must equal C_out"),
    (dict(layer="maxpool", padding=2), ValueError, "max pooling needs padding <= size // 2"),
    (dict(input_size=8, kernel_size=5, channels=3, stride=1, padding=2), ValueError,
     "stored entries"),
    (dict(path=3), TypeError, "path must be a str or os.PathLike"),
])
def test_bad_arguments_name_the_parameter(kwargs, error, message):
    with pytest.raises(error, match=re.escape(message)):
        explore_html(**kwargs)


def test_missing_folder_is_an_error_and_nothing_is_created(tmp_path):
    out = tmp_path / "missing" / "page.html"
    with pytest.raises(ValueError, match="does not exist"):
        explore_html(path=out)
    assert not out.parent.exists()
    with pytest.raises(ValueError, match="is a folder"):
        explore_html(path=tmp_path)


def test_limits_are_as_documented():
    assert LIMITS == {"input_size": 8, "kernel_size": 5, "channels": 3, "stride": 4,
                      "padding": 3}
    assert MAX_ENTRIES == 200_000
    explore_data(input_size=8, kernel_size=3, channels=(2, 2), stride=1, padding=1)  # fits


# --- the command line -----------------------------------------------------------------------
def run_main(argv) -> int:
    """``main``'s exit code, whether it returns it or argparse exits."""
    try:
        return main(argv)
    except SystemExit as exit_:
        return exit_.code


def test_cli_writes_the_default_page(tmp_path, capsys):
    out = tmp_path / "p.html"
    assert main(["explore", "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert out.read_text(encoding="utf-8") == explore_html()


def test_cli_options_reach_the_page(tmp_path, capsys):
    out = tmp_path / "p.html"
    argv = ["explore", "--input", "4", "--kernel", "3", "2", "--channels", "2", "--stride",
            "2", "--padding", "1", "0", "--layer", "maxpool", "--out", str(out)]
    assert main(argv) == 0
    data = page_data(out.read_text(encoding="utf-8"))
    assert data["layer"] == "maxpool" and data["given"] == "2,2,1,0,3,2"
    assert data == page_data(explore_html((4, 4), (3, 2), 2, 2, (1, 0), "maxpool"))


@pytest.mark.parametrize("argv, message", [
    (["--stride", "0"], "--stride must be >= 1"),
    (["--input", "100", "100"], "--input must be at most 8"),
    (["--out", "/missing/dir/p.html"], "--out: folder '/missing/dir' does not exist"),
    (["--layer", "foo"], "invalid choice: 'foo'"),
    (["--stride", "x"], "invalid int value: 'x'"),
    (["--channels", "1", "2", "3"], "--channels takes one or two ints"),
    (["--kernel", "6"], "--kernel must be at most 5"),
    (["--layer", "maxpool", "--channels", "1", "2"], "C_in must equal C_out"),
    (["--out", "page.txt"], "--out must name a .html file"),
])
def test_cli_bad_arguments_exit_2_with_one_line(argv, message, tmp_path, capsys):
    out = [] if "--out" in argv else ["--out", str(tmp_path / "p.html")]
    assert run_main(["explore", *argv, *out]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vecjac explore: error:"), captured.err
    assert message in lines[0] and "Traceback" not in captured.err
    assert not (tmp_path / "p.html").exists() and not os.path.exists("/missing")


def test_cli_help_runs():
    result = subprocess.run([sys.executable, "-m", "vecjac", "explore", "--help"],
                            capture_output=True, text=True, check=True)
    assert "usage: vecjac explore" in result.stdout and "--layer" in result.stdout


# --- in a real browser ----------------------------------------------------------------------
def _browser_or_skip():
    """Chromium and chromedriver paths; skip (or fail, with VECJAC_REQUIRE_BROWSER=1) saying
    what is missing."""
    required = os.environ.get("VECJAC_REQUIRE_BROWSER") == "1"
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    missing = [name for name, path in (("chromium", browser), ("chromedriver", driver))
               if path is None]
    if importlib.util.find_spec("selenium") is None:
        missing.append("selenium")
    if missing:
        reason = ("the browser test needs Chromium and chromedriver (apt-get install chromium "
                  "chromium-driver) and Selenium (pip install selenium); missing: "
                  + ", ".join(missing))
        if required:
            pytest.fail(reason + " (VECJAC_REQUIRE_BROWSER=1 is set)")
        pytest.skip(reason)
    if required:
        import selenium  # noqa: F401  (a broken install is an error here, not a skip)
    else:
        pytest.importorskip("selenium")
    return browser, driver


def _chrome(browser: str, driver: str):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = browser
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1500,1200"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=options)


def test_missing_browser_skips_or_fails_as_told(monkeypatch):
    """Skipped with the reason; a failure when VECJAC_REQUIRE_BROWSER=1 (never a pass)."""
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.delenv("VECJAC_REQUIRE_BROWSER", raising=False)
    with pytest.raises((pytest.skip.Exception, pytest.fail.Exception)) as outcome:
        _browser_or_skip()
    assert outcome.type is pytest.skip.Exception and "missing:" in str(outcome.value)
    monkeypatch.setenv("VECJAC_REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception, match="chromium, chromedriver"):
        _browser_or_skip()


def test_page_in_a_real_browser(tmp_path):
    browser, driver_path = _browser_or_skip()
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    page = tmp_path / "page.html"
    data = page_data(explore_html(path=page))
    V = variant(data, data["given"])
    r = V["vars"]["out"]["labels"].index("z_32")
    c = V["vars"]["in"]["labels"].index("a_23")
    k = V["vars"]["ker"]["labels"].index("beta_12")

    driver = _chrome(browser, driver_path)
    try:
        driver.get(page.resolve().as_uri())  # from disk: file://
        css = driver.find_element
        entry = css(By.CSS_SELECTOR, f'td[data-j="0"][data-r="{r}"][data-c="{c}"]')
        assert entry.text.strip() == "β12"  # the note's symbol, subscript typeset
        ActionChains(driver).move_to_element(entry).perform()

        def classes(selector):
            return css(By.CSS_SELECTOR, selector).get_attribute("class").split()

        assert "focus" in classes(f'td[data-j="0"][data-r="{r}"][data-c="{c}"]')
        assert "focus" in classes(f'td[data-j="1"][data-r="{r}"][data-c="{k}"]')  # dZ/dbeta
        assert "focus" in classes(f'td[data-v="in"][data-i="{c}"]')  # a_23 in padded A
        assert "focus" in classes(f'td[data-v="ker"][data-i="{k}"]')  # beta_12
        assert "focus" in classes(f'td[data-v="out"][data-i="{r}"]')  # z_32
        focused = driver.find_elements(By.CSS_SELECTOR, "td.focus[data-j]")
        assert len(focused) == 2  # the entry and its twin in the other Jacobian
        window = {e.get_attribute("data-i") for e in
                  driver.find_elements(By.CSS_SELECTOR, 'td.win[data-v="in"]')}
        labels = V["vars"]["in"]["labels"]
        assert {labels[int(i)] for i in window} == {"a_22", "a_23", "a_32", "a_33"}
        info = css(By.ID, "info")
        text = info.text
        assert "dz_32/da_23 = beta_12" in text  # the plain line
        assert "\u2202z32/\u2202a23 = \u03b212" in info.get_attribute("textContent")
        driver.save_screenshot(str(tmp_path / "hover_entry.png"))
        assert (tmp_path / "hover_entry.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

        # an output: its row, its window, and rep.2 as the note writes it
        ActionChains(driver).move_to_element(
            css(By.CSS_SELECTOR, f'td[data-v="out"][data-i="{r}"]')).perform()
        assert "z_32 = a_22 beta_11 + a_23 beta_12 + a_32 beta_21 + a_33 beta_22" in css(
            By.ID, "info").text
        row = driver.find_elements(By.CSS_SELECTOR, f'td.rel[data-j="0"][data-r="{r}"]')
        assert len(row) == 4

        # an input: its column and every output it reaches
        ActionChains(driver).move_to_element(
            css(By.CSS_SELECTOR, f'td[data-v="in"][data-i="{c}"]')).perform()
        reached = {V["vars"]["out"]["labels"][int(e.get_attribute("data-i"))] for e in
                   driver.find_elements(By.CSS_SELECTOR, 'td.rel[data-v="out"]')}
        J = V["jac"][0]
        expected = {V["vars"]["out"]["labels"][row] for row in range(J["shape"][0])
                    if c in J["indices"][J["indptr"][row]:J["indptr"][row + 1]]}
        assert reached == expected and "z_32" in reached

        # tap to pin: the selection stays when the pointer leaves the panels
        entry = css(By.CSS_SELECTOR, f'td[data-j="0"][data-r="{r}"][data-c="{c}"]')
        entry.click()
        ActionChains(driver).move_to_element(css(By.ID, "title")).perform()
        assert "dz_32/da_23 = beta_12" in css(By.ID, "info").text

        # another stride: the page switches to that variant's embedded Jacobians
        Select(css(By.CSS_SELECTOR, 'select[data-k="1"]')).select_by_value("1")
        other = variant(data, "1,1,1,1")
        rows = driver.find_elements(By.CSS_SELECTOR, 'table.jac[data-j="0"] th[data-v="out"]')
        assert len(rows) == other["jac"][0]["shape"][0]
        severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not severe, severe
    finally:
        driver.quit()
