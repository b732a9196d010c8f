"""The fault-injection suite (issue 21): every command line through bad config, bad
data, bad checkpoints, kills, a full disk and concurrent runs (the cases and what each
asserts: fault_cases.py; the before/after table: tools/fault_table.py).

Run with ``pytest -m faults python_tests``; CI runs it as its own stage."""
import pytest
from fault_cases import CASES, World, run_case, unshare_works

pytestmark = pytest.mark.faults


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return World(tmp_path_factory.mktemp("faults")).build()


@pytest.mark.parametrize("cid", list(CASES))
def test_fault(world, cid):
    command, fault, what = CASES[cid]
    if fault == "full disk" and not unshare_works():
        pytest.skip("no private tmpfs on this machine (unshare -rm); ENOSPC is covered by test_safety.py")
    o = run_case(cid, world)
    assert o.ok, f"{command} / {fault} / {what}: {o.summary()}"
