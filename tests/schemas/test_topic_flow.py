"""The catalogue's producers/consumers match what the agents really read and write."""

import re
from pathlib import Path

import pytest

from schemas import topics

PROCESSORS = Path(__file__).resolve().parents[2] / "processors"
AGENT_FILES = sorted(p for p in PROCESSORS.glob("*.py") if "@app.agent(" in p.read_text())


@pytest.mark.parametrize("path", AGENT_FILES, ids=lambda p: p.stem)
def test_agent_topics_are_declared_in_the_catalogue(path):
    source = path.read_text()
    agent = path.stem
    assert agent in topics.COMPONENTS, f"{agent} is not a catalogue component"
    for const in re.findall(r"@app\.agent\(topics\.([A-Z_]+)", source):
        assert agent in getattr(topics, const).consumers, f"{agent} reads {const} but is not listed as a consumer"
    for const in set(re.findall(r"publish\(catalogue\.([A-Z_]+)", source)):
        assert agent in getattr(topics, const).producers, f"{agent} writes {const} but is not listed as a producer"
