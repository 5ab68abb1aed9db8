#!/usr/bin/env bash
# MLServer 1.7.1 in its own venv: it pins protobuf < 7, which the project's
# generated stubs cannot use, so it never shares the project's venv.
source "$(dirname "$0")/lib.sh"
VENV="$CACHE_DIR/venvs/mlserver-1.7.1"
if [ -x "$VENV/bin/mlserver" ] && "$VENV/bin/python" -c "import mlserver_sklearn" 2>/dev/null; then echo "$VENV"; exit 0; fi
PY="${MODELMESH_PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3
step "creating MLServer 1.7.1 venv in $VENV"
rm -rf "$VENV"
"$PY" -m venv "$VENV" || die "could not create a venv with $PY" "apt-get install -y python3-venv"
LOG="$CACHE_DIR/mlserver-install.log"
{ "$VENV/bin/pip" install --upgrade pip && "$VENV/bin/pip" install "mlserver==1.7.1" "mlserver-sklearn==1.7.1"; } >"$LOG" 2>&1 \
  || { tail -20 "$LOG" >&2; rm -rf "$VENV"; die "pip install mlserver==1.7.1 mlserver-sklearn==1.7.1 failed (log: $LOG)" "check access to PyPI and rerun make test"; }
echo "$VENV"
