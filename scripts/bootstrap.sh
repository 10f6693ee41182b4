# Sourced by scripts/gateway and scripts/check: make sure .venv exists and holds the
# project with its dev extras, reinstalling only when pyproject.toml changed.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CLAUDE_GATEWAY_VENV:-$root/.venv}"
python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "claude-gateway needs Python 3.11 or newer (set PYTHON=/path/to/python3.11)" >&2
    exit 1
fi
stamp="$VENV/.installed-$(sha256sum "$root/pyproject.toml" | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    echo "Setting up $VENV (first run, or pyproject.toml changed): about a minute." >&2
    if [ ! -x "$VENV/bin/python" ]; then
        echo "[1/3] creating the virtual environment" >&2
        "$python" -m venv "$VENV"
    fi
    echo "[2/3] updating pip" >&2
    "$VENV/bin/python" -m pip install --quiet --upgrade pip >&2
    echo "[3/3] installing claude-gateway and what it needs (claude-agent-sdk brings the" \
         "claude CLI, about 200 MB)" >&2
    # One line per package as it arrives, so a slow network shows as progress.
    "$VENV/bin/python" -m pip install --progress-bar off -e "$root[dev]" 2>&1 \
        | grep --line-buffered -E "^(Collecting|Successfully installed|ERROR)" \
        | sed -u -e 's/^Collecting /  fetching /' >&2
    status=${PIPESTATUS[0]}
    if [ "$status" -ne 0 ]; then
        echo "Installing failed (pip exited with $status); run again to retry." >&2
        exit "$status"
    fi
    rm -f "$VENV"/.installed-*
    touch "$stamp"
    echo "Ready." >&2
fi
export VENV
