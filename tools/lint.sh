#!/usr/bin/env bash
# Lint: ruff (configured in pyproject.toml) over the Python sources and clang-format
# (.clang-format) over csrc. Versions pinned so that every machine agrees:
#   pip install ruff==0.17.6 clang-format==19.1.7
set -euo pipefail
cd "$(dirname "$0")/.."
ruff check .
# shellcheck disable=SC2046
clang-format --dry-run --Werror $(git ls-files 'csrc/*.cpp' 'csrc/*.h' 'csrc/*.cu' 'csrc/*.cuh')
echo "lint: ruff and clang-format clean"
