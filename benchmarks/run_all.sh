#!/usr/bin/env bash
# Run every benchmark and print its results (markdown tables) to standard output.
# `make bench` calls this with .venv/bin first on PATH. Extra arguments go to each script,
# e.g. `bash benchmarks/run_all.sh --rows 10000` for a quick run.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python}"
echo "== benchmarks/import_customers.py (commit $(git -C "$here/.." rev-parse --short HEAD 2>/dev/null || echo '?'))"
"$python" "$here/import_customers.py" "$@"
echo "== benchmarks/workflow_vs_spiff.py (commit $(git -C "$here/.." rev-parse --short HEAD 2>/dev/null || echo '?'))"
"$python" "$here/workflow_vs_spiff.py" "$@"
echo "== benchmarks/reports_nps.py (commit $(git -C "$here/.." rev-parse --short HEAD 2>/dev/null || echo '?'))"
"$python" "$here/reports_nps.py" "$@"
