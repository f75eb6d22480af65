"""The events page stays current with the topic catalogue."""

from __future__ import annotations

from pathlib import Path

from shared.topics import CATALOGUE

DOC = Path(__file__).resolve().parents[3] / "docs" / "events.md"


def test_every_catalogue_topic_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = [name for name in CATALOGUE if f"| `{name}` |" not in text]
    assert not missing, f"docs/events.md lacks rows for {missing}"
