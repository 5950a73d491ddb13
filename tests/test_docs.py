"""Documentation that is generated from code stays in step with it."""

from __future__ import annotations

import ast

from frontdesk.backend.contract import CallbackResult, LookupResult
from frontdesk.conversation.events import CallbackAnswered, CallerTurn, Greet, ToolCalled
from frontdesk.conversation.intents import RequestCallback
from frontdesk.conversation.receptionist import Receptionist
from frontdesk.conversation.state import STATE_GRAPH, mermaid
from frontdesk.runtime.profile import load_profile
from frontdesk.runtime.profile_features import Handoff, HandoffTarget
from frontdesk.runtime.settings import DEFAULT_PROFILE
from tests.support import ROOT
from tests.test_receptionist import MONDAY_9

ON_CALL = Handoff(
    targets=[
        HandoffTarget.model_validate(
            {
                "name": "On call",
                "number": "+14155550199",
                "hours": "always",
                "use_for": ["request", "emergency"],
            }
        )
    ]
)


def test_the_readme_draws_the_state_graph_the_receptionist_defines():
    assert mermaid() in (ROOT / "README.md").read_text()


def visited(*turns: tuple[str, dict] | str, handoff: bool = False) -> set[str]:
    """The states a new caller's conversation enters, driven by tool calls and lines."""
    profile = load_profile(DEFAULT_PROFILE)
    if handoff:
        profile = profile.model_copy(update={"handoff": ON_CALL})
    receptionist = Receptionist(profile)
    conversation = receptionist.start(call_sid="CA1", from_number="+14155550123")
    events = [Greet(lookup=LookupResult(customer=None))]
    for turn in turns:
        if isinstance(turn, str):
            events.append(CallerTurn(text=turn))
        else:
            events.append(ToolCalled(call_id="c", name=turn[0], arguments=turn[1]))
    for event in events:
        step = receptionist.step(conversation, event, now=MONDAY_9)
        conversation = step.conversation
        for intent in step.intents:
            if isinstance(intent, RequestCallback):
                answer = CallbackAnswered(key=intent.key, result=CallbackResult(callback_id="c"))
                conversation = receptionist.step(conversation, answer, now=MONDAY_9).conversation
    return set(conversation.visited)


def test_the_state_graph_names_exactly_the_states_the_receptionist_enters():
    request = ("record_request", {"service": "plumbing", "description": "sink leaks"})
    caller = ("record_caller", {"name": "Jordan Lee"})
    entered = visited(
        request,
        caller,
        ("record_job", {"address": "12 Oak Street", "zip": "94110", "urgency": "today"}),
        ("prefer_callback", {}),
        ("create_callback", {}),
    )
    entered |= visited(
        request,
        caller,
        ("record_job", {"address": "1 Main Street", "zip": "10001", "urgency": "today"}),
        ("answer_callback_offer", {"accept": False}),
    )
    entered |= visited("I smell gas")
    entered |= visited("I smell gas", handoff=True)
    entered |= visited(("transfer_to_person", {}), handoff=True)
    graph = {state for edge in STATE_GRAPH for state in (edge[0], edge[2])} - {"any state"}

    assert entered == graph


def production_modules() -> dict[str, str]:
    """Every production module, with the first line of its docstring."""
    paths = [ROOT / "main.py", ROOT / "supervisor.py"]
    for package in ("actors", "frontdesk"):
        paths += sorted(p for p in (ROOT / package).rglob("*.py") if p.name != "__init__.py")
    purposes = {}
    for path in paths:
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        purposes[path.relative_to(ROOT).as_posix()] = doc.strip().splitlines()[0] if doc else ""
    return purposes


def readme_layout() -> dict[str, str]:
    """The README's module tree: ``path  purpose`` lines of its Layout block."""
    text = (ROOT / "README.md").read_text()
    block = text.split("## Layout", 1)[1].split("```", 2)[1]
    lines = [line.split(None, 1) for line in block.splitlines() if line.strip()]
    return {parts[0]: parts[1] if len(parts) > 1 else "" for parts in lines}


def test_the_readme_tree_lists_every_production_module_with_its_docstring_purpose():
    modules = production_modules()
    assert all(modules.values()), [path for path, purpose in modules.items() if not purpose]
    assert readme_layout() == modules
