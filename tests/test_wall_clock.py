"""Time is injectable everywhere: product code reads the time only through icao_pki.clock."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PRODUCT = ("icao_pki", "cvc", "lifecycle_api", "schedules", "fixtures")
WALL_CLOCK = re.compile(r"\b(datetime\.(now|utcnow|today)\(|date\.today\(|time\.time\(\)|time\.gmtime\(\)|time\.localtime\(\))")


def test_no_wall_clock_reads_outside_the_clock() -> None:
    offenders = []
    for package in PRODUCT:
        for path in sorted((REPO / package).rglob("*.py")):
            if path == REPO / "icao_pki" / "clock.py":
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                if WALL_CLOCK.search(line):
                    offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert offenders == [], "read the time through a Clock instead:\n" + "\n".join(offenders)


def test_the_scan_finds_a_wall_clock_read() -> None:
    assert WALL_CLOCK.search("stamp = datetime.now(timezone.utc)")
    assert WALL_CLOCK.search("t0 = time.time()")
    assert not WALL_CLOCK.search("clock.now()")
