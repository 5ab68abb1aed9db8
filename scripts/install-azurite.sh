#!/usr/bin/env bash
# Azurite (Microsoft's Azure Storage emulator, npm package) under the cache, for the puller's
# azure provider tests. Needs node >= 18 and npm (Debian: nodejs npm).
source "$(dirname "$0")/lib.sh"
VERSION="3.35.0"  # the last release that supports node 20 (Debian has 18, the image 20)
DIR="$CACHE_DIR/azurite-$VERSION"
BIN="$DIR/node_modules/.bin/azurite-blob"
if [ -x "$BIN" ]; then echo "$BIN"; exit 0; fi
command -v npm >/dev/null || apt_ensure nodejs npm
step "installing azurite $VERSION into $DIR (npm)"
mkdir -p "$DIR"
npm install --prefix "$DIR" --no-audit --no-fund --silent "azurite@$VERSION" >/dev/null \
  || { rm -rf "$DIR"; die "npm install azurite@$VERSION failed" "check access to the npm registry and rerun make deps"; }
[ -x "$BIN" ] || die "azurite installed but $BIN is missing" "rm -rf $DIR and rerun make deps"
echo "$BIN"
