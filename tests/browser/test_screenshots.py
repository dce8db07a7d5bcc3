"""The pictures README.md and docs/console.md show are committed, are PNGs of the sizes the browser tests
take them at (a laptop's 1280 px, a phone's 390 px at twice the density), and are each taken by a test."""

from __future__ import annotations

import re
import struct
from pathlib import Path

from tests.browser.support import LAPTOP, PHONE, SCREENSHOTS

ROOT = Path(__file__).resolve().parents[2]
SHOWN = re.compile(r"docs/screenshots/([a-z0-9-]+)\.png|\(screenshots/([a-z0-9-]+)\.png\)")
TAKEN = re.compile(r'screenshot\(\s*\w+,\s*"([a-z0-9-]+)"')


def width(path: Path) -> int:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return int(struct.unpack(">I", head[16:20])[0])


def test_the_documents_show_screenshots_that_the_tests_take() -> None:
    shown = set()
    for doc in (ROOT / "README.md", ROOT / "docs" / "console.md"):
        shown |= {a or b for a, b in SHOWN.findall(doc.read_text())}
    taken = set()
    for source in Path(__file__).parent.glob("test_*.py"):
        taken |= set(TAKEN.findall(source.read_text()))
    assert {"buckets", "bucket", "version", "bucket-phone"} <= shown
    assert shown <= taken, f"shown but taken by no test: {sorted(shown - taken)}"
    committed = {p.stem for p in SCREENSHOTS.glob("*.png")}
    assert committed == taken, (
        f"not committed: {sorted(taken - committed)}; taken by no test: {sorted(committed - taken)}"
    )
    for name in committed:
        expected = PHONE["width"] * 2 if name.endswith("-phone") else LAPTOP["width"]
        assert width(SCREENSHOTS / f"{name}.png") == expected, name
