"""The fault-injection table of issue 21: every case of python_tests/fault_cases.py run
against a pyface source tree, as JSON; and the before/after markdown table from two
such runs.

    python tools/fault_table.py run --tree . --out after.json            # this tree
    python tools/fault_table.py run --tree /tmp/old --out before.json    # e.g. git archive <commit>
    python tools/fault_table.py table before.json after.json [--label-before main@713f0c2]

A tree needs its built extension (pyface/_C*.so). Each case runs the tree's own
``python -m pyface`` in subprocesses against a world built by that tree's command lines.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def run(tree: Path, out: Path, only: list[str] | None) -> None:
    os.environ["PYFACE_FAULT_TREE"] = str(tree.resolve())
    sys.path.insert(0, str(tree.resolve()))
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python_tests"))
    import fault_cases as F

    results = {"tree": str(tree), "cases": {}}
    with tempfile.TemporaryDirectory(prefix="pyface-faults-") as tmp:
        t0 = time.monotonic()
        try:
            w = F.World(Path(tmp)).build()
        except RuntimeError as exc:
            results["world_error"] = str(exc)
            out.write_text(json.dumps(results, indent=1))
            raise
        results["world_seconds"] = time.monotonic() - t0
        for cid, (command, fault, what) in F.CASES.items():
            if only and cid not in only:
                continue
            t = time.monotonic()
            try:
                o = F.run_case(cid, w)
                row = {"rc": o.rc, "message": o.message, "checks": o.checks, "notes": o.notes, "ok": o.ok}
            except Exception as exc:  # noqa: BLE001 - a case that crashes the harness is a result too
                row = {"rc": None, "message": f"harness: {type(exc).__name__}: {exc}", "checks": {}, "notes": [],
                       "ok": False}
            row.update(command=command, fault=fault, what=what, seconds=round(time.monotonic() - t, 1))
            results["cases"][cid] = row
            print(f"{cid:32} {'ok  ' if row['ok'] else 'FAIL'} {row['seconds']:6.1f}s  {row['message'][:110]}",
                  flush=True)
            out.write_text(json.dumps(results, indent=1))
        results["seconds"] = time.monotonic() - t0
    out.write_text(json.dumps(results, indent=1))


def _cell(row: dict | None) -> str:
    if row is None:
        return "(not run)"
    msg = row["message"].replace("|", "\\|").replace("\n", " ")
    if len(msg) > 140:
        msg = msg[:137] + "..."
    bad = [k for k, v in row["checks"].items() if not v]
    state = "**ok**" if row["ok"] else "fails: " + ", ".join(bad)
    return f"exit {row['rc']}; {state}; `{msg}`" if msg else f"exit {row['rc']}; {state}"


def table(before: Path, after: Path, label_before: str, label_after: str) -> str:
    b, a = json.loads(before.read_text()), json.loads(after.read_text())
    lines = [f"| case | command | fault | {label_before} | {label_after} |", "|---|---|---|---|---|"]
    for cid, row in a["cases"].items():
        lines.append(f"| {cid}: {row['what']} | {row['command']} | {row['fault']} | {_cell(b['cases'].get(cid))} | "
                     f"{_cell(row)} |")
    ok_b = sum(r["ok"] for r in b["cases"].values())
    ok_a = sum(r["ok"] for r in a["cases"].values())
    lines.append("")
    lines.append(f"{label_before}: {ok_b} of {len(b['cases'])} cases meet every check; {label_after}: {ok_a} of "
                 f"{len(a['cases'])} ({a.get('seconds', 0):.0f} s for the whole run, world included).")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--tree", type=Path, default=Path(__file__).resolve().parents[1])
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--only", nargs="*", default=None)
    t = sub.add_parser("table")
    t.add_argument("before", type=Path)
    t.add_argument("after", type=Path)
    t.add_argument("--label-before", default="before")
    t.add_argument("--label-after", default="after")
    args = p.parse_args(argv)
    if args.cmd == "run":
        run(args.tree, args.out, args.only)
    else:
        print(table(args.before, args.after, args.label_before, args.label_after))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
