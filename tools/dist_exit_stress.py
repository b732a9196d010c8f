"""Stress test of how pyface's torch.distributed processes end (issue 16).

Each trial starts RANKS gloo processes (TCP store on the loopback, as torchrun sets it up)
that do a few training steps through pyface's own distributed code and then end the
way a pyface job ends (``pyface.distributed.setup`` ... ``run_job``), then interpreter
exit. A trial fails when any rank exits non-zero; "terminate called" in a
rank's stderr marks the abort this tool was written for (a gloo worker thread releasing
a work that holds a Python object after interpreter finalization began).

Scenarios: ``lpmc`` -- pyface.nn.LPMCLoss with its class centres sharded over the group
(collectives inside backward); ``ddp`` -- a small net wrapped by
pyface.train.distributed.wrap_model (DDP's gradient all-reduces inside backward).

    python tools/dist_exit_stress.py --trials 100 --max-seconds 900           # both scenarios
    python tools/dist_exit_stress.py --scenario lpmc --ranks 2 --trials 40 --json out.json

Exit code 0 when every trial passed, 1 otherwise. Run it against the pyface under test
(the installed package, or PYTHONPATH=<repo> after tools/dev_build.sh), not from a
folder that shadows it.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import time


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _steps(scenario: str, iters: int) -> None:
    """One rank's job (its frame holds the model, DDP and loss, as a pyface job does)."""
    import torch

    from pyface.distributed import setup
    from pyface.train.distributed import wrap_model

    ctx, device = setup(torch.device("cpu"))
    rank = ctx.rank
    torch.manual_seed(7)
    g = torch.Generator().manual_seed(rank)
    if scenario == "lpmc":
        from pyface.nn import LPMCLoss

        head = LPMCLoss(37, 16, process_group=ctx.group, chunk_size=4)
        for _ in range(iters):
            n = 5 + rank
            x = torch.randn(n, 16, generator=g).requires_grad_()
            loss = head(x, torch.randint(0, 37, (n,), generator=g), torch.randn(n, 3, generator=g) * 30)
            loss.backward()
    elif scenario == "ddp":
        net = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
        model = wrap_model(net, ctx, device)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for _ in range(iters):
            x = torch.randn(8, 16, generator=g)
            loss = model(x).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    else:
        raise SystemExit(f"unknown scenario {scenario!r}")


def worker(scenario: str, iters: int) -> None:
    """A rank ends the way `pyface train` ends one: pyface.distributed.run_job."""
    import torch

    from pyface.distributed import run_job

    torch.set_num_threads(1)
    run_job(_steps, scenario, iters)


def trial(scenario: str, ranks: int, iters: int, timeout: float) -> dict:
    port = _free_port()
    procs = []
    for r in range(ranks):
        env = dict(os.environ, RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE=str(ranks), MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=str(port), OMP_NUM_THREADS="1")
        procs.append(subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker", scenario,
                                       "--iters", str(iters)], env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, text=True))
    codes, aborted, errors = [], False, []
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            _, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate()
            err = (err or "") + "\n[timed out]"
        codes.append(p.returncode)
        if "terminate called" in (err or ""):
            aborted = True
        if p.returncode != 0:
            errors.append((err or "").strip().splitlines()[-3:])
    return {"codes": codes, "ok": all(c == 0 for c in codes), "abort": aborted, "stderr_tail": errors}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenario", choices=["lpmc", "ddp", "both"], default="both")
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--iters", type=int, default=5, help="training steps per rank and trial")
    ap.add_argument("--trials", type=int, default=60, help="trials per scenario (fewer if --max-seconds ends first)")
    ap.add_argument("--max-seconds", type=float, default=600.0, help="wall-clock bound of the whole run")
    ap.add_argument("--json", help="write the summary here")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.worker, args.iters)
        return 0
    import pyface

    scenarios = ["lpmc", "ddp"] if args.scenario == "both" else [args.scenario]
    t0 = time.monotonic()
    stats = {s: {"trials": 0, "failed": 0, "aborts": 0, "examples": []} for s in scenarios}
    i = 0
    while time.monotonic() - t0 < args.max_seconds and any(stats[s]["trials"] < args.trials for s in scenarios):
        s = scenarios[i % len(scenarios)]  # interleaved, so both see the same machine load
        i += 1
        if stats[s]["trials"] >= args.trials:
            continue
        left = args.max_seconds - (time.monotonic() - t0)
        r = trial(s, args.ranks, args.iters, timeout=max(60.0, left))
        st = stats[s]
        st["trials"] += 1
        st["failed"] += not r["ok"]
        st["aborts"] += r["abort"]
        if not r["ok"]:
            print(f"[{s} trial {st['trials']}] exit codes {r['codes']}{' (abort)' if r['abort'] else ''}: "
                  f"{r['stderr_tail']}", flush=True)
            if len(st["examples"]) < 3:
                st["examples"].append(r)
    summary = {"pyface": os.path.dirname(pyface.__file__), "cpu": _cpu_model(), "cores": os.cpu_count(),
               "ranks": args.ranks, "iters": args.iters, "seconds": round(time.monotonic() - t0, 1),
               "scenarios": stats}
    for s, st in stats.items():
        print(f"{s}: {st['failed']}/{st['trials']} trials failed ({st['aborts']} aborts) -- {summary['cpu']}, "
              f"{summary['cores']} cores, {args.ranks} ranks")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)
    return 0 if all(st["failed"] == 0 for st in stats.values()) and all(st["trials"] for st in stats.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
