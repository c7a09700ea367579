"""Open a page in headless Chromium (Debian's `chromium`): DOM, console messages, screenshot.

A unique module name (tests/helpers.py is the top-level helpers module)."""
from __future__ import annotations

import pathlib
import re
import shutil
import subprocess
from typing import List, NamedTuple, Optional

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
          "--disable-extensions", "--enable-logging=stderr", "--v=0"]
_CONSOLE = re.compile(r":CONSOLE[:(]")


class Page(NamedTuple):
    dom: str
    console: List[str]     # every console message: our pages have no script, so any is an error


def open_page(path: pathlib.Path, screenshot: Optional[pathlib.Path] = None, timeout: int = 90) -> Page:
    url = pathlib.Path(path).resolve().as_uri()
    dom = subprocess.run([CHROMIUM, *_FLAGS, "--dump-dom", url], capture_output=True, text=True, timeout=timeout)
    console = [line for line in dom.stderr.splitlines() if _CONSOLE.search(line)]
    if screenshot is not None:
        shot = subprocess.run([CHROMIUM, *_FLAGS, "--window-size=1280,2400", f"--screenshot={screenshot}", url],
                              capture_output=True, text=True, timeout=timeout)
        console += [line for line in shot.stderr.splitlines() if _CONSOLE.search(line)]
    return Page(dom.stdout, console)
