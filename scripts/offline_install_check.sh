#!/usr/bin/env bash
# Prove that lowcode-engine installs and runs on a machine with no internet.
#
#   scripts/offline_install_check.sh            # wheelhouse in ./wheelhouse
#   WHEELHOUSE=/media/usb/wheelhouse PYTHON=python3.11 scripts/offline_install_check.sh
#   scripts/offline_install_check.sh --wheelhouse-only   # the connected half only (Dockerfile)
#
# Connected half (needs PyPI): `pip download` of the pinned dependencies of pyproject.toml
# (wheels only) and `pip wheel` of the project itself, into $WHEELHOUSE.
# Isolated half (no index at all, and every HTTP(S) proxy pointed at a closed port): a fresh
# venv, `pip install --no-index --find-links $WHEELHOUSE lowcode-engine`, then `lowcode --help`,
# `lowcode migrate` on a new SQLite file and `lowcode load examples/bank`, run outside the
# source tree. The Dockerfile's builder and runtime stages run the same two halves.
#
# Wheels match the platform and Python version of $PYTHON: build the wheelhouse with the same
# OS, architecture and Python minor version as the isolated machine. Prints a final line
# starting with PASS, or FAIL and exits non-zero.
set -euo pipefail

only_wheelhouse=0
case "${1:-}" in
  --wheelhouse-only) only_wheelhouse=1 ;;
  "") ;;
  *) echo "usage: $0 [--wheelhouse-only]" >&2; exit 2 ;;
esac

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
WHEELHOUSE=${WHEELHOUSE:-$repo/wheelhouse}
mkdir -p "$WHEELHOUSE"
WHEELHOUSE=$(cd "$WHEELHOUSE" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/lowcode-offline.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'echo "FAIL: offline install check failed (see above)" >&2' ERR

step() { printf '\n== %s ==\n' "$*"; }

# ---- connected half ------------------------------------------------------------------------
step "connected: pinned dependencies of pyproject.toml"
"$PYTHON" - "$work/requirements.txt" <<'PY'
import sys
import tomllib

with open("pyproject.toml", "rb") as handle:
    dependencies = tomllib.load(handle)["project"]["dependencies"]
unpinned = [d for d in dependencies if "==" not in d]
if unpinned:
    sys.exit(f"unpinned dependencies in pyproject.toml: {unpinned}")
with open(sys.argv[1], "w", encoding="utf-8") as handle:
    handle.write("\n".join(dependencies) + "\n")
print(f"{len(dependencies)} pinned dependencies")
PY

step "connected: pip download -> $WHEELHOUSE"
"$PYTHON" -m pip download --disable-pip-version-check --quiet --only-binary=:all: \
    --dest "$WHEELHOUSE" -r "$work/requirements.txt"

step "connected: pip wheel . (the project itself)"
"$PYTHON" -m pip wheel --disable-pip-version-check --quiet --no-deps --wheel-dir "$WHEELHOUSE" .
ls "$WHEELHOUSE"/lowcode_engine-*.whl
echo "$(ls "$WHEELHOUSE" | wc -l) files, $(du -sh "$WHEELHOUSE" | cut -f1)"
if [ "$only_wheelhouse" = 1 ]; then
  trap - ERR
  echo "PASS: wheelhouse ready in $WHEELHOUSE (copy it to the isolated machine)"
  exit 0
fi

# ---- isolated half -------------------------------------------------------------------------
# From here on nothing may reach a network: no index, and proxies that go nowhere.
export PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_CONFIG_FILE=/dev/null
export http_proxy=http://127.0.0.1:9 https_proxy=http://127.0.0.1:9
export HTTP_PROXY=$http_proxy HTTPS_PROXY=$https_proxy no_proxy="" NO_PROXY=""
unset LOWCODE_DATABASE_URL PYTHONPATH

step "isolated: fresh venv, pip install --no-index --find-links $WHEELHOUSE lowcode-engine"
"$PYTHON" -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --no-index --find-links "$WHEELHOUSE" lowcode-engine
lowcode="$work/venv/bin/lowcode"

cd "$work"  # outside the source tree: only the installed package is importable
step "isolated: lowcode --help"
"$lowcode" --help >"$work/help.txt"
grep -q "migrate" "$work/help.txt"
head -n 3 "$work/help.txt"

export LOWCODE_DATABASE_URL="sqlite:///$work/check.db"
step "isolated: lowcode migrate ($LOWCODE_DATABASE_URL)"
"$lowcode" migrate

step "isolated: lowcode load examples/bank"
"$lowcode" load "$repo/examples/bank" >"$work/load.txt"
loaded=$(grep -c "new version" "$work/load.txt" || true)
tail -n 4 "$work/load.txt"
[ "$loaded" -gt 0 ] || { echo "no definition was loaded" >&2; false; }

version=$("$work/venv/bin/python" -c "import importlib.metadata as m; print(m.version('lowcode-engine'))")
trap - ERR
echo
echo "PASS: lowcode-engine $version installed from $WHEELHOUSE with --no-index; migrate and load examples/bank ($loaded definitions) worked offline"
