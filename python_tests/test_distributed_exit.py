"""Issue 16: how a pyface process under torch.distributed ends (pyface.distributed and
docs/torch-gloo-exit-abort.md). Deterministic checks of the mechanism here; the
statistical check is tools/dist_exit_stress.py (the `stress` test below, a CI stage)."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from utils import NEUTRAL_CWD, subprocess_env

REPO = Path(__file__).resolve().parents[1]


def _run(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=subprocess_env(**env), timeout=300, cwd=NEUTRAL_CWD)


# One process, world size 1 (a real gloo group and real gloo worker threads): the
# collectives the abort needs -- inside backward (DDP) and a sharded LPMC loss -- then
# the way pyface ends a job.
_JOB = """
    import torch, torch.distributed as dist
    from pyface.distributed import DistContext, gloo_worker_threads, init_process_group, run_job
    from pyface.nn import LPMCLoss
    from pyface.train.distributed import wrap_model

    def job():
        init_process_group("gloo")  # what setup() does with WORLD_SIZE > 1
        import torch._dynamo  # what pyface's first op does: pins the group unless setup() prevented it
        ctx = DistContext(0, 2, 0, dist.group.WORLD, "gloo")  # wrap_model wraps only "when distributed"
        model = wrap_model(torch.nn.Linear(4, 3), ctx, torch.device("cpu"))
        head = LPMCLoss(5, 3, process_group=dist.group.WORLD)
        for _ in range(3):
            x = torch.randn(6, 4)
            head(model(x), torch.randint(0, 5, (6,)), torch.zeros(6, 3)).backward()
        assert gloo_worker_threads() > 0  # (started with the group or at its first collective)
        return "done"

    print(run_job(job), "threads left", gloo_worker_threads(), flush=True)
"""


def test_run_job_ends_the_process_group_and_its_worker_threads():
    r = _run(_JOB, RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "done threads left 0" in r.stdout, (r.stdout, r.stderr[-2000:])


def test_without_the_early_import_the_group_outlives_destroy():
    # The mechanism: torch.distributed.nn.functional imported after init_process_group
    # binds the group into default arguments, and destroy_process_group then cannot end
    # gloo's worker threads. (If torch fixes this, the test says so; the fix stays harmless.)
    r = _run("""
        import os, torch, torch.distributed as dist
        from pyface.distributed import gloo_worker_threads
        dist.init_process_group("gloo", rank=0, world_size=1)
        import torch.distributed.nn.functional  # after the group exists
        dist.all_reduce(torch.ones(2))
        dist.destroy_process_group()
        import gc; gc.collect()
        print("threads left", gloo_worker_threads())
    """, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "threads left 2" in r.stdout or "threads left 1" in r.stdout, r.stdout


def test_a_failing_rank_exits_at_once_with_code_1():
    r = _run("""
        import torch, torch.distributed as dist
        from pyface.distributed import run_job

        def job():
            dist.init_process_group("gloo", rank=0, world_size=1)
            x = torch.ones(3, requires_grad=True)
            dist.all_reduce(x.detach())
            raise RuntimeError("boom on this rank")

        run_job(job)
        print("not reached")
    """, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()))
    assert r.returncode == 1 and "not reached" not in r.stdout
    assert "RuntimeError: boom on this rank" in r.stderr and "terminate called" not in r.stderr


def test_single_process_errors_propagate():
    from pyface.distributed import run_job

    with pytest.raises(ZeroDivisionError):
        run_job(lambda: 1 / 0)
    assert run_job(lambda a, b=0: a + b, 2, b=3) == 5


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.stress
def test_two_rank_processes_never_abort_at_exit():
    """The statistical check (tools/dist_exit_stress.py): without the fix, 2 ranks on a
    loaded 2-core AMD EPYC aborted in 6/80 sharded-LPMC and 14/80 DDP trials."""
    trials = os.environ.get("PYFACE_STRESS_TRIALS", "40")
    r = subprocess.run([sys.executable, str(REPO / "tools" / "dist_exit_stress.py"), "--trials", trials,
                        "--max-seconds", os.environ.get("PYFACE_STRESS_SECONDS", "900")],
                       capture_output=True, text=True, cwd=str(REPO / "tools"), env=subprocess_env())
    print(r.stdout[-3000:], r.stderr[-3000:])
    assert r.returncode == 0, r.stdout[-3000:]
