# Shared by scripts/up and scripts/test: make the project's environment, once.
# Re-running is cheap: installs happen only when pyproject.toml or
# package-lock.json changed since the last run.

ensure_python_env() {
  local py="${PYTHON:-python3}"
  if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "OR Flow needs Python 3.11 or newer as '$py' (set PYTHON=/path/to/python3.11)." >&2
    exit 1
  fi
  if [ ! -x .venv/bin/python ]; then
    echo "==> creating the virtual environment in .venv" >&2
    "$py" -m venv .venv
  fi
  local stamp
  stamp="$(sha256sum pyproject.toml | cut -d' ' -f1)"
  if [ "$(cat .venv/.orflow-stamp 2>/dev/null)" != "$stamp" ]; then
    echo "==> installing Python packages (first run takes a minute)" >&2
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e '.[dev,embedded]'
    echo "$stamp" > .venv/.orflow-stamp
  fi
}

ensure_node_tools() {
  if ! command -v npm >/dev/null 2>&1; then
    echo "==> npm not found: skipping the Node tools (buf lint)" >&2
    return 1
  fi
  local stamp
  stamp="$(sha256sum package-lock.json | cut -d' ' -f1)"
  if [ "$(cat node_modules/.orflow-stamp 2>/dev/null)" != "$stamp" ]; then
    echo "==> installing Node tools (npm ci)" >&2
    npm ci --silent --no-audit --no-fund >/dev/null
    echo "$stamp" > node_modules/.orflow-stamp
  fi
}

# Builds the portal (web-proxy/portal/dist, served by the proxy) when its sources,
# the generated TypeScript or the lockfile changed since the last build.
ensure_portal() {
  local stamp
  stamp="$( (sha256sum package-lock.json buf.gen.yaml
             find web-proxy/portal -path web-proxy/portal/dist -prune -o -type f -print | LC_ALL=C sort | xargs sha256sum
           ) | sha256sum | cut -d' ' -f1)"
  if [ ! -f web-proxy/portal/dist/index.html ] || [ "$(cat web-proxy/portal/dist/.orflow-stamp 2>/dev/null)" != "$stamp" ]; then
    echo "==> building the portal (tsc + vite build)" >&2
    npm run --silent portal:build >/dev/null
    echo "$stamp" > web-proxy/portal/dist/.orflow-stamp
  fi
}
