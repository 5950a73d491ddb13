"""Documentation that is generated from code stays in step with it."""

from __future__ import annotations

import re

from frontdesk.conversation.flow import STATE_GRAPH, mermaid
from tests.support import ROOT

NODES = {
    "greeting",
    "identify",
    "collect_job",
    "book",
    "callback",
    "out_of_area",
    "emergency",
    "wrap_up",
}


def test_the_readme_draws_the_state_graph_the_flow_defines():
    assert mermaid() in (ROOT / "README.md").read_text()


def test_the_state_graph_names_exactly_the_states_the_flow_enters():
    flow = (ROOT / "frontdesk" / "conversation" / "flow.py").read_text()
    entered = set(re.findall(r'self\._node\(\s*"(\w+)"', flow))
    entered |= set(re.findall(r'enter_state\("(\w+)"\)', flow))
    graph = {state for edge in STATE_GRAPH for state in (edge[0], edge[2])} - {"any state"}

    assert entered == graph == NODES
