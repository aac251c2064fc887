"""A real headless Chromium (Debian's ``chromium``) for the site's pages, offline.

Each call is one ``chromium --headless=new`` process with its own profile: ``dom``
gives the page's DOM after its scripts ran (``--dump-dom``) and every console
message (``--enable-logging=stderr``: script errors, Content Security Policy
violations, ``console.*``), ``screenshot`` writes a PNG. No network is used: pages
are ``file://`` URLs and their policy forbids anything else.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

TIMEOUT_S = 60
CONSOLE = re.compile(r":CONSOLE[:(\d)]")


def find() -> str | None:
    """The chromium executable, or None when it is not installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass(frozen=True)
class Loaded:
    dom: str
    console: list[str]


class Chromium:
    def __init__(self, exe: str, profiles: Path) -> None:
        self.exe = exe
        self.profiles = profiles
        self.count = 0

    def _run(self, url: str, *flags: str) -> subprocess.CompletedProcess[str]:
        self.count += 1
        profile = self.profiles / f"profile-{self.count}"
        argv = [self.exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--no-default-browser-check", "--disable-extensions", "--hide-scrollbars",
                f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *flags, url]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S,
                              check=False, stdin=subprocess.DEVNULL)
        shutil.rmtree(profile, ignore_errors=True)
        assert done.returncode == 0, f"{argv}: {done.stderr[-3000:]}"
        return done

    def load(self, page: Path, query: str = "") -> Loaded:
        done = self._run(page.resolve().as_uri() + query, "--dump-dom")
        console = [line for line in done.stderr.splitlines() if CONSOLE.search(line)]
        return Loaded(done.stdout, console)

    def screenshot(self, page: Path, png: Path, width: int = 1280, height: int = 2400) -> Path:
        png.parent.mkdir(parents=True, exist_ok=True)
        png.unlink(missing_ok=True)
        done = self._run(page.resolve().as_uri(), f"--screenshot={png}",
                         f"--window-size={width},{height}")
        assert png.is_file(), done.stderr[-3000:]
        return png


@dataclass
class Element:
    tag: str
    attrs: dict[str, str | None]


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[Element] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append(Element(tag, dict(attrs)))


def elements(markup: str) -> list[Element]:
    """Every element of an HTML document (or of a DOM dump), with its attributes."""
    parser = _Elements()
    parser.feed(markup)
    parser.close()
    return parser.found
