"""``pyface bench``."""
from __future__ import annotations

from pyface.cli.command import Command, StrictParser, command, unknown_options
from pyface.errors import UsageError
from pyface.registry import did_you_mean


@command
class Bench(Command):
    name = "bench"
    help = "microbenchmark kernels against their PyTorch references"
    description = ("Microbenchmarks of each kernel against its PyTorch reference (pyface.benchmarks). A "
                   "benchmark's own options (e.g. `pyface bench lpmc --batch 128`) go after the names; every "
                   "option must be known to at least one of the selected benchmarks.")
    extra_options = True  # the selected benchmarks' options, checked in run()

    def add_arguments(self, p):
        p.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
        p.add_argument("--quick", action="store_true", help="small sizes, a minute or two on a laptop CPU")
        p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
        p.add_argument("--out-dir", default="bench/results", help="where JSON results go ('' to skip)")

    def run(self, args) -> int:
        from pyface import benchmarks
        from pyface.benchmarks import _harness as H

        available = benchmarks.available()
        names = args.names or available
        # the options first (a value of an unknown option lands among the names)
        parsers = {}
        for name in [n for n in names if n in available] or available:
            sub = StrictParser(prog=f"pyface bench {name}", add_help=False)
            benchmarks.load(name).add_arguments(sub)
            parsers[name] = sub
        known = sorted({s for p in parsers.values() for s in p.option_strings()})
        unknown = unknown_options(args.rest, known)
        if unknown:
            general = ["--quick", "--device", "--out-dir"]
            raise UsageError(f"unknown option {unknown[0]}{did_you_mean(unknown[0], known + general)} (options of "
                             f"{', '.join(parsers)}: {', '.join(known) or 'none'})")
        for n in names:
            if n not in available:
                raise UsageError(f"unknown benchmark {n!r}{did_you_mean(n, available)}; benchmarks: "
                                 + ", ".join(available))
        parsed, left_over = {}, None
        for name, sub in parsers.items():
            parsed[name], left = sub.parse_known_args(args.rest)
            left_over = set(left) if left_over is None else left_over & set(left)
        if left_over:
            raise UsageError("unexpected argument(s) " + " ".join(repr(t) for t in sorted(left_over)))
        for name in names:
            bench_args = parsed[name]
            bench_args.quick, bench_args.device = args.quick, args.device
            result = benchmarks.load(name).run(bench_args)
            if args.out_dir:
                # a benchmark with several modes names its file per mode ("label-scaling")
                path = H.write_json(args.out_dir, result.pop("result_name", name) + ("-quick" if args.quick else ""),
                                    result)
                print(f"results: {path}")
        return 0
