"""The ``pyface`` command line."""
from __future__ import annotations

import argparse
import sys


def _bench(args) -> int:
    from pyface import benchmarks
    from pyface.benchmarks import _harness as H

    names = args.names or benchmarks.available()
    for name in names:
        mod = benchmarks.load(name)
        sub = argparse.ArgumentParser(prog=f"pyface bench {name}")
        mod.add_arguments(sub)
        bench_args, _ = sub.parse_known_args(args.rest)
        bench_args.quick, bench_args.device = args.quick, args.device
        result = mod.run(bench_args)
        if args.out_dir:
            path = H.write_json(args.out_dir, name + ("-quick" if args.quick else ""), result)
            print(f"results: {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pyface", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("bench", help="microbenchmark kernels against their PyTorch references")
    b.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    b.add_argument("--quick", action="store_true", help="small sizes, a minute or two on a laptop CPU")
    b.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    b.add_argument("--out-dir", default="bench/results", help="where JSON results go ('' to skip)")
    b.set_defaults(func=_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    args.rest = rest
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
