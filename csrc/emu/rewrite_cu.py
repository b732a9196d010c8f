#!/usr/bin/env python3
"""Rewrite the CUDA-only syntax of a .cu file so that a host C++ compiler accepts it
(pyface's CPU emulation of its CUDA backend, see csrc/emu/README.md):

  kern<T><<<g, b, smem, st>>>(args...);          ->  PYEMU_LAUNCH((kern<T>), g, b, smem, st, args...);
  extern __shared__ [__align__(n)] TYPE name[];  ->  PYEMU_DYNAMIC_SHARED(TYPE, name)
  __shared__ TYPE a[N], b[M][K];                 ->  PYEMU_SHARED(TYPE, a, [N]); PYEMU_SHARED(TYPE, b, [M][K]);

Kernel bodies are not touched. Line numbers are kept (a ``#line`` directive names the
original file), so compiler, ASan and UBSan messages point into the .cu source.

Usage: rewrite_cu.py IN.cu OUT.cpp [--line-name NAME]
"""
from __future__ import annotations

import argparse
import re
import sys


def _match_back_template(src: str, end: int) -> int:
    """src[end-1] == '>' closes a template argument list; index of its '<'."""
    depth = 0
    for i in range(end - 1, -1, -1):
        if src[i] == ">":
            depth += 1
        elif src[i] == "<":
            depth -= 1
            if depth == 0:
                return i
    raise ValueError("unbalanced template arguments before <<<")


def _match_paren(src: str, start: int) -> int:
    depth = 0
    for i in range(start, len(src)):
        if src[i] == "(":
            depth += 1
        elif src[i] == ")":
            depth -= 1
            if depth == 0:
                return i
    raise ValueError("unbalanced parentheses in a kernel launch")


def _split_top(s: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for c in s:
        if c in "([<":
            depth += 1
        elif c in ")]>":
            depth -= 1
        if c == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += c
    parts.append(cur)
    return parts


def _keep_lines(old: str, new: str) -> str:
    """``new`` followed by as many newlines as ``old`` spanned (line numbers stay)."""
    return new + "\n" * old.count("\n")


def rewrite_launches(src: str) -> str:
    out, pos = [], 0
    while True:
        k = src.find("<<<", pos)
        if k < 0:
            out.append(src[pos:])
            return "".join(out)
        e = k
        while e > 0 and src[e - 1].isspace():
            e -= 1
        s = _match_back_template(src, e) if src[e - 1] == ">" else e
        while s > 0 and (src[s - 1].isalnum() or src[s - 1] in "_:"):
            s -= 1
        kern = src[s:e]
        cfg_end = src.find(">>>", k)
        cfg = [c.strip() for c in _split_top(src[k + 3:cfg_end])]
        if not 2 <= len(cfg) <= 4:
            raise ValueError(f"launch of {kern}: expected 2 to 4 configuration arguments, got {cfg}")
        cfg += ["0", "nullptr"][len(cfg) - 2:]
        p = cfg_end + 3
        while src[p].isspace():
            p += 1
        if src[p] != "(":
            raise ValueError(f"launch of {kern}: no argument list after >>>")
        q = _match_paren(src, p)
        args = " ".join(src[p + 1:q].split())
        new = f"PYEMU_LAUNCH(({kern}), {', '.join(cfg)}{', ' + args if args else ''})"
        out.append(src[pos:s])
        out.append(_keep_lines(src[s:q + 1], new))
        pos = q + 1


_DYN = re.compile(r"extern\s+__shared__\s+(?:__align__\(\d+\)\s+)?([\w\s:*]+?)\s+(\w+)\s*\[\s*\]\s*;")
_STATIC = re.compile(r"(?<![\w])__shared__\s+([\w:<>\s]+?)\s+(\w+\s*\[[^;]*);")


def rewrite_shared(src: str) -> str:
    src = _DYN.sub(lambda m: _keep_lines(m.group(0), f"PYEMU_DYNAMIC_SHARED({m.group(1).strip()}, {m.group(2)})"),
                   src)

    def static(m):
        typ, decls = m.group(1).strip(), m.group(2)
        parts = []
        for d in _split_top(decls):
            dm = re.fullmatch(r"\s*(\w+)\s*((?:\[[^\]]+\]\s*)*)", d)
            if dm is None or not dm.group(2).strip():
                raise ValueError(f"unsupported __shared__ declarator {d!r}")
            parts.append(f"PYEMU_SHARED({typ}, {dm.group(1)}, {dm.group(2).strip()});")
        return _keep_lines(m.group(0), " ".join(parts))

    src = _STATIC.sub(static, src)
    left = [i for i in range(len(src)) if src.startswith("__shared__", i)]
    if left:
        line = src.count("\n", 0, left[0]) + 1
        raise ValueError(f"line {line}: a __shared__ declaration the rewriter does not understand")
    return src


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src")
    ap.add_argument("out")
    ap.add_argument("--line-name", default=None, help="file name for #line (default: src as given)")
    a = ap.parse_args(argv)
    with open(a.src, encoding="utf-8") as f:
        src = f.read()
    try:
        res = rewrite_shared(rewrite_launches(src))
    except ValueError as exc:
        print(f"{a.src}: {exc}", file=sys.stderr)
        return 1
    name = (a.line_name or a.src).replace("\\", "/").replace('"', "")
    text = f'#line 1 "{name}"\n' + res
    try:  # write only on change: the build does not recompile untouched kernels
        with open(a.out, encoding="utf-8") as f:
            if f.read() == text:
                return 0
    except OSError:
        pass
    with open(a.out, "w", encoding="utf-8") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
