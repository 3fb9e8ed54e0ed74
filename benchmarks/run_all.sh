#!/usr/bin/env bash
# Run every benchmark and print its results (markdown tables) to standard output.
# `make bench` calls this with .venv/bin first on PATH. Extra arguments go to each script
# (each ignores the ones it does not know), e.g. `bash benchmarks/run_all.sh --rows 10000` for a
# quick run. `--soak` also runs benchmarks/soak.py (10 minutes at concurrency 32; not by default).
# The HTTP benchmarks and the soak DROP and recreate their PostgreSQL database
# (postgresql+psycopg://postgres@127.0.0.1:5432/lowcode_bench_http unless --database-url is given).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python}"
soak=0
args=()
for arg in "$@"; do
  if [ "$arg" = "--soak" ]; then soak=1; else args+=("$arg"); fi
done
commit="$(git -C "$here/.." rev-parse --short HEAD 2>/dev/null || echo '?')"
run() {
  echo "== benchmarks/$1 (commit $commit)"
  "$python" "$here/$1" ${args[@]+"${args[@]}"}
}
run import_customers.py
run workflow_vs_spiff.py
run reports_nps.py
run rule_eval.py
run http_submit.py
run sql_statements.py
if [ "$soak" = 1 ]; then
  run soak.py
fi
