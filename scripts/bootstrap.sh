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
    echo "Setting up $VENV (first run, or pyproject.toml changed)..." >&2
    [ -x "$VENV/bin/python" ] || "$python" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip >&2
    "$VENV/bin/python" -m pip install --quiet -e "$root[dev]" >&2
    rm -f "$VENV"/.installed-*
    touch "$stamp"
fi
export VENV
