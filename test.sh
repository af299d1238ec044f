#!/usr/bin/env bash
# The whole test suite: installs the dev dependencies into .venv, then lint, types, layer
# contracts and pytest. Extra arguments go to pytest (e.g. ./test.sh tests/config -x).
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[dev]'
.venv/bin/ruff check pymailsrv tests bench
.venv/bin/mypy pymailsrv
.venv/bin/lint-imports
exec .venv/bin/python -m pytest "$@"
