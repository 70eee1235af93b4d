"""The HTML report drawn by a real headless Chromium and its PDF rasterised by pdftoppm: the
charts are checked in the pixels, by the fixed colours reports/charts.py draws them in."""

from __future__ import annotations

import random
import shutil
import subprocess
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import Engine

from reports import browser, charts, html, layout, periods, report, topics_store
from reports.report import Snapshot
from tests.unit.report_helpers import bj, call, store, store_calls, ticket_world

NOW = datetime(2026, 12, 1, 2, tzinfo=UTC)


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return int(hex_colour[1:3], 16), int(hex_colour[3:5], 16), int(hex_colour[5:7], 16)


def colour_counts(png: Path) -> Counter[str]:
    """Pixels within a small distance of each chart colour (anti-aliased edges are left out)."""
    wanted = {name: _rgb(value) for name, value in (("blue", charts.BLUE), ("green", charts.GREEN),
                                                      ("red", charts.RED), ("orange", charts.ORANGE))}
    out: Counter[str] = Counter()
    with Image.open(png) as img:
        rgb = img.convert("RGB")
        for n, colour in rgb.getcolors(maxcolors=rgb.width * rgb.height) or []:
            assert isinstance(colour, tuple)
            r, g, b = colour[:3]
            for name, (wr, wg, wb) in wanted.items():
                if abs(r - wr) + abs(g - wg) + abs(b - wb) <= 24:
                    out[name] += n
    return out


def month(db: Engine, seed: int = 7) -> None:
    rnd = random.Random(seed)
    rows = []
    for day in range(1, 31):
        for _ in range(rnd.randint(15, 30)):
            outcome = "answered" if rnd.random() < 0.95 else "abandoned"
            rows.append(call(bj(2026, 11, day, rnd.choice([8, 9, 10, 14, 15, 16]), rnd.randint(0, 59)), outcome,
                             rnd.uniform(0, 40), queue=rnd.choice(["main", "tax"]), surveyed=outcome == "answered",
                             rating=rnd.choice([1, 2, 3, None]) if outcome == "answered" else None))
    store_calls(db, rows)
    ticket_world(db)


def snapshot(db: Engine, key: str = "2026-11") -> Snapshot:
    p = periods.parse(key)
    r = report.build(db, p, report.ReportOptions(), NOW)
    r.topics = topics_store.hot_topics(db, p.start_utc, p.end_utc, p.previous().start_utc, p.previous().end_utc)
    return r.snapshot()


@pytest.fixture(scope="module")
def chromium() -> str:
    try:
        binary = browser.find()
    except browser.BrowserError:
        pytest.fail("chromium is not installed: `make test-deps` installs it (Debian's chromium package)")
    if shutil.which("pdftoppm") is None:
        pytest.fail("pdftoppm is not installed: `make test-deps` installs poppler-utils")
    return binary


def render(snap: Snapshot, folder: Path) -> tuple[Counter[str], Counter[str], str]:
    """(colours on screen, colours on the PDF's first page, the PDF's text)."""
    page_file, pdf = folder / "report.html", folder / "report.pdf"
    layout.write_html(snap, page_file)
    browser.screenshot(page_file, folder / "screen.png", height=2400)
    layout.write_pdf(snap, pdf)
    subprocess.run(["pdftoppm", "-r", "60", "-f", "1", "-l", "1", "-png", str(pdf), str(folder / "page")], check=True)
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, check=True).stdout
    return colour_counts(folder / "screen.png"), colour_counts(folder / "page-1.png"), text.decode()


def test_the_month_report_draws_its_charts_on_screen_and_in_the_pdf(chromium: str, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"  # Chromium keeps crash settings and caches under $HOME unless told otherwise
    monkeypatch.setenv("HOME", str(home))
    with store("sqlite", tmp_path) as db:
        month(db)
        snap = snapshot(db)
    screen, page, text = render(snap, tmp_path)
    # The daily answer-rate line (blue) and 15-second line (orange), the daily and hourly bars
    # (green: answered), the 95% line (red, dashed) on screen; the first PDF page holds the
    # daily charts. Thresholds are far below what a drawn chart gives and far above stray text.
    assert screen["blue"] > 3000 and screen["green"] > 5000, screen
    assert screen["orange"] > 300 and screen["red"] > 200, screen
    assert page["green"] > 1000 and page["blue"] > 200 and page["red"] > 50, page
    # The text is real text in a CJK font (a missing font prints boxes and no such words).
    assert "运行报告" in text and "接通率" in text and "2026年11月" in text
    assert not list(tmp_path.glob(".*")), "the PDF's temporary files are removed"
    assert {(tmp_path / f).stat().st_mode & 0o777 for f in ("report.pdf", "report.html")} == {0o640}
    assert not home.exists(), "Chromium wrote under $HOME"


def test_a_month_with_no_calls_draws_no_bars_and_says_so(chromium: str, tmp_path: Path) -> None:
    with store("sqlite", tmp_path) as db:
        snap = snapshot(db)
    screen, _, text = render(snap, tmp_path)
    assert screen["green"] < 50 and screen["blue"] < 50, screen  # the check above can fail
    assert "—" in text


def test_a_frozen_snapshot_lays_out_exactly_as_the_live_one(tmp_path: Path) -> None:
    with store("sqlite", tmp_path) as db:
        month(db)
        snap = snapshot(db)
    again = Snapshot.from_json(snap.as_json())
    assert html.render(layout.page(again)) == html.render(layout.page(snap))


def test_the_answer_rate_card_shows_a_miss_of_the_target_in_red(tmp_path: Path) -> None:
    with store("sqlite", tmp_path) as db:
        store_calls(db, [call(bj(2026, 11, 3, 9), "answered"), call(bj(2026, 11, 3, 9), "abandoned", 30.0)])
        snap = snapshot(db)
    page = html.render(layout.page(snap))
    card = page.split('data-key="calls.answer_rate"')[0].rsplit("<div", 1)[1]
    assert "fail" in card  # 1 of 2: 50.00% < 95%
    page_met = html.render(layout.page(snap, target=0.5))
    assert "fail" not in page_met.split('data-key="calls.answer_rate"')[0].rsplit("<div", 1)[1]
