#!/usr/bin/env bash
# Triton 2.51 (CPU, python backend only) from the nvidia-pytriton 0.7.0 wheel. The python
# backend stub links Debian's libpython3.11, so the venv must come from /usr/bin/python3.11.
# Lays out $CACHE_DIR/triton-2.51/{backends,env} and prints the env file path.
source "$(dirname "$0")/lib.sh"
DEST="$CACHE_DIR/triton-2.51"
VENV="$CACHE_DIR/venvs/pytriton-0.7.0"
ENVFILE="$DEST/env"
if [ -f "$ENVFILE" ] && [ -x "$VENV/bin/python" ]; then echo "$ENVFILE"; exit 0; fi
apt_ensure python3.11-venv libpython3.11
[ -x /usr/bin/python3.11 ] || die "/usr/bin/python3.11 missing" "apt-get install -y python3.11"
step "creating pytriton venv (Triton 2.51 binary) in $VENV"
rm -rf "$VENV" "$DEST"
/usr/bin/python3.11 -m venv "$VENV" || die "venv from /usr/bin/python3.11 failed" "apt-get install -y python3.11-venv"
LOG="$CACHE_DIR/triton-install.log"
{ "$VENV/bin/pip" install --upgrade pip && "$VENV/bin/pip" install "nvidia-pytriton==0.7.0"; } >"$LOG" 2>&1 \
  || { tail -20 "$LOG" >&2; rm -rf "$VENV"; die "pip install nvidia-pytriton==0.7.0 failed (log: $LOG)" "check access to PyPI and rerun make test"; }
SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
[ -x "$SITE/pytriton/tritonserver/bin/tritonserver" ] || { rm -rf "$VENV"; die "nvidia-pytriton==0.7.0 did not install a tritonserver binary" "pip install nvidia-pytriton==0.7.0 into a /usr/bin/python3.11 venv"; }
mkdir -p "$DEST"
cp -r "$SITE/pytriton/tritonserver/backends" "$DEST/backends"
STUB="$SITE/pytriton/tritonserver/python_backend_stubs/3.11/triton_python_backend_stub"
[ -f "$STUB" ] || die "python backend stub for 3.11 not found in the pytriton wheel"
cp "$STUB" "$DEST/backends/python/"
chmod +x "$DEST/backends/python/triton_python_backend_stub"
cat > "$ENVFILE.tmp" <<ENV
TRITON_BIN=$SITE/pytriton/tritonserver/bin/tritonserver
TRITON_BACKENDS=$DEST/backends
TRITON_PATH=$VENV/bin
TRITON_LD_LIBRARY_PATH=$SITE/nvidia_pytriton.libs:$SITE/pytriton/tritonserver/lib
ENV
mv "$ENVFILE.tmp" "$ENVFILE"
echo "$ENVFILE"
