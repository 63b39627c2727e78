#!/bin/sh
# Installs everything (system packages, a virtualenv with vswitch and its test
# dependencies) and runs the whole test suite. Run as root (namespaces, taps).
set -eu
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q '.[test]'
# The pytest launcher does not put the source tree on sys.path, so the tests
# exercise the installed package (with its compiled fast path).
exec .venv/bin/pytest "$@"
