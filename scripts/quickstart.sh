#!/usr/bin/env bash
# `make quickstart`: install what `modelmesh local` needs (the project venv, MLServer in its own
# venv under ~/.cache/modelmesh, LightGBM for the second example), generate the example models
# and their InferenceService YAML into the config dir, then run `modelmesh local` in the
# foreground. Ctrl-C stops it and every process it started.
#
#   MODELMESH_LOCAL_DIR    config dir (default: examples/local in this checkout)
#   MODELMESH_SKIP_INSTALL set to use the existing .venv as it is (no pip install -e .)
#   any other setting of `modelmesh local` as its env var, or as arguments:
#   make quickstart ARGS="--instances 2"
source "$(dirname "$0")/lib.sh"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
CONFIG_DIR="${MODELMESH_LOCAL_DIR:-$ROOT/examples/local}"

if [ -z "${MODELMESH_SKIP_INSTALL:-}" ]; then
  bash scripts/bootstrap.sh quickstart
fi
[ -x .venv/bin/python ] || die ".venv is missing" "run make quickstart (without MODELMESH_SKIP_INSTALL)"
MLSERVER_VENV="$(bash scripts/install-mlserver.sh)"
if ! "$MLSERVER_VENV/bin/python" -c "import mlserver_lightgbm" 2>/dev/null; then
  step "adding LightGBM to the MLServer venv (the second example model)"
  "$MLSERVER_VENV/bin/pip" install "mlserver-lightgbm==1.7.1" >"$CACHE_DIR/mlserver-lightgbm-install.log" 2>&1 \
    || printf 'warning: pip install mlserver-lightgbm==1.7.1 failed (log: %s); only the sklearn example will be served\n' \
      "$CACHE_DIR/mlserver-lightgbm-install.log" >&2
fi

step "example models and their InferenceService YAML in $CONFIG_DIR"
mkdir -p "$CONFIG_DIR"
"$MLSERVER_VENV/bin/python" scripts/quickstart_models.py "$CONFIG_DIR" >/dev/null \
  || die "generating the example models failed" "check that $MLSERVER_VENV has scikit-learn (rm -rf it and rerun)"

step "starting modelmesh local (Ctrl-C stops it and everything it started)"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
exec .venv/bin/python -m modelmesh.cli local --config-dir "$CONFIG_DIR" "$@"
