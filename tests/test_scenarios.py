"""Every scenario in scenarios/, end to end: real server, emulators, a Twilio-shaped caller.

Scenarios run concurrently. Those that neither break anything nor book share one world;
each scenario that injects faults (which are world-wide) or books an appointment (two
callers wanting the same first window would rightly collide) gets a world of its own.
"""

from __future__ import annotations

from contextlib import AsyncExitStack

import anyio
import pytest

from emulators.runner import ScenarioResult
from emulators.scenario import all_scenarios, load_scenario
from tests.stack import stack

SCENARIOS = all_scenarios()
ISOLATED = [
    name for name in SCENARIOS if load_scenario(name).faults or load_scenario(name).expect.booked
]


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


SERVER_LOG: list[str] = []
"""Every line the shared server logged while its scenarios ran."""


@pytest.fixture(scope="module")
async def results(tmp_path_factory) -> dict[str, ScenarioResult]:
    done: dict[str, ScenarioResult] = {}
    async with AsyncExitStack() as stacks:
        shared = await stacks.enter_async_context(stack(tmp_path_factory.mktemp("shared")))
        own = {
            name: await stacks.enter_async_context(stack(tmp_path_factory.mktemp(name)))
            for name in ISOLATED
        }

        async def run(name: str) -> None:
            done[name] = await own.get(name, shared).run(load_scenario(name))

        with anyio.fail_after(240):
            async with anyio.create_task_group() as tg:
                for name in SCENARIOS:
                    tg.start_soon(run, name)
        SERVER_LOG[:] = shared.server.lines
    return done


def test_there_are_scenarios_for_everything_the_product_promises():
    assert set(SCENARIOS) >= {
        "returning_customer_books",
        "new_caller_out_of_area",
        "caller_says_nothing",
        "caller_hangs_up_mid_sentence",
        "caller_barges_in",
        "emergency_gas",
        "looping_caller_turn_limit",
        "v2_backend_down",
        "inworld_down",
        "dashboard_down_then_back",
        "caller_asks_price_from_knowledge",
        "caller_asks_something_not_in_knowledge",
    }


@pytest.mark.parametrize("name", SCENARIOS)
@pytest.mark.anyio
async def test_scenario_meets_its_expectations(results, name):
    result = results[name]

    assert result.passed, f"{name}: " + "; ".join(result.failures)


@pytest.mark.anyio
async def test_calls_do_not_repeat_a_warning_about_a_deliberate_choice(results):
    assert len(results) == len(SCENARIOS)
    calls = [line for line in SERVER_LOG if "call started" in line]
    assert len(calls) >= 5
    assert not [line for line in SERVER_LOG if "differs from the recommended default" in line]
