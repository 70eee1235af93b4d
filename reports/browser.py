"""Headless Chromium turns the HTML report into a PDF (and, for the tests, a screenshot).

The PDF is the browser's own print of the page, so it shows what the screen shows; no second
layout engine. Chromium runs with a throwaway profile folder (removed afterwards: it would
otherwise keep a profile under ~/.config; $HOME and $XDG_* point there too) and no network use
beyond the local file. As root,
Chromium refuses to start without --no-sandbox; the page is our own report (no script, no
remote content), so the sandbox is given up only then.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
TIMEOUT = 120.0  # seconds; a year's report prints in a few


class BrowserError(Exception):
    pass


def find() -> str:
    explicit = os.environ.get("HOTLINE_CHROMIUM")
    if explicit:
        return explicit
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    raise BrowserError("找不到 Chromium：请安装 Debian 的 chromium 软件包（apt-get install chromium "
                       "fonts-noto-cjk），或用环境变量 HOTLINE_CHROMIUM 指定浏览器 / Chromium not found")


def _run(html: Path, *args: str) -> None:
    binary = find()
    with tempfile.TemporaryDirectory(prefix="hotline-chromium-") as profile:
        cmd = [binary, "--headless", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
               "--disable-extensions", "--disable-background-networking", "--disable-sync",
               "--hide-scrollbars", f"--user-data-dir={profile}", *args]
        if os.geteuid() == 0:
            cmd.append("--no-sandbox")
        cmd.append(html.resolve().as_uri())
        # Chromium also writes crash-report settings and a dconf cache under $HOME and $XDG_*:
        # point them into the throwaway folder, so that nothing of the run is left anywhere.
        env = {**os.environ, "HOME": profile, "XDG_CONFIG_HOME": f"{profile}/config",
               "XDG_CACHE_HOME": f"{profile}/cache", "XDG_DATA_HOME": f"{profile}/data"}
        try:
            done = subprocess.run(cmd, capture_output=True, timeout=TIMEOUT, check=False, env=env)
        except subprocess.TimeoutExpired as exc:
            raise BrowserError(f"Chromium 在 {TIMEOUT:.0f} 秒内未完成 / Chromium did not finish: {html}") from exc
    if done.returncode != 0:
        tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
        raise BrowserError(f"Chromium 退出码 {done.returncode} / Chromium failed: {' | '.join(tail)}")


def print_pdf(html: Path, pdf: Path) -> None:
    """`html` printed as `pdf` (A4 by the page's @page rule, no header or footer lines)."""
    _run(html, f"--print-to-pdf={pdf}", "--no-pdf-header-footer")
    if not pdf.exists() or pdf.stat().st_size == 0:
        raise BrowserError(f"Chromium 未生成 PDF / no PDF was written: {pdf}")


def screenshot(html: Path, png: Path, width: int = 1000, height: int = 3000) -> None:
    _run(html, f"--screenshot={png}", f"--window-size={width},{height}")
    if not png.exists():
        raise BrowserError(f"Chromium 未生成截图 / no screenshot was written: {png}")
