#!/usr/bin/env bash
# gcp-storage-emulator (a GCS JSON-API emulator) in its own venv: its dependencies
# (google-crc32c, fs, ...) are none of the project's business.
source "$(dirname "$0")/lib.sh"
VERSION="2026.7.19"
VENV="$CACHE_DIR/venvs/gcp-storage-emulator-$VERSION"
BIN="$VENV/bin/gcp-storage-emulator"
if [ -x "$BIN" ]; then echo "$BIN"; exit 0; fi
PY="${MODELMESH_PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3
step "creating gcp-storage-emulator $VERSION venv in $VENV"
rm -rf "$VENV"
"$PY" -m venv "$VENV" || die "could not create a venv with $PY" "apt-get install -y python3-venv"
"$VENV/bin/pip" install -q "gcp-storage-emulator==$VERSION" >"$CACHE_DIR/gcs-emulator-install.log" 2>&1 \
  || { rm -rf "$VENV"; die "pip install gcp-storage-emulator==$VERSION failed" "check access to PyPI and rerun make deps"; }
echo "$BIN"
