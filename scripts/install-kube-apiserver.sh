#!/usr/bin/env bash
# Build kube-apiserver 1.20.2 once from Debian's source package and cache it.
# Debian ships no apiserver binary; Go 1.19 needs reflect2 1.0.2 or the server
# segfaults under load (see shared/reference/real-services.md).
source "$(dirname "$0")/lib.sh"
DEST="$CACHE_DIR/kube-apiserver-1.20.2"
BIN="$DEST/kube-apiserver"
if [ -x "$BIN" ]; then echo "$BIN"; exit 0; fi
apt_ensure golang-go rsync dpkg-dev
if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src' /etc/apt/sources.list; then
  step "adding deb-src for bookworm main"
  # deb822 form with the same Signed-By as the machine's debian.sources, or apt rejects it.
  rm -f /etc/apt/sources.list.d/modelmesh-src.list
  printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    > /etc/apt/sources.list.d/modelmesh-src.sources
  apt-get update -qq || die "apt-get update failed after adding deb-src"
fi
WORK="$CACHE_DIR/build-kube-apiserver"
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK"
step "apt-get source kubernetes (1.20.2)"
apt-get source -qq kubernetes >/dev/null 2>&1 || die "apt-get source kubernetes failed" "check the deb-src entry for bookworm main"
apt-get download -qq golang-github-modern-go-reflect2-dev >/dev/null || die "apt-get download reflect2 failed"
SRC=$(find . -maxdepth 1 -type d -name 'kubernetes-*' | head -1)
[ -n "$SRC" ] || die "kubernetes source directory not found after apt-get source"
dpkg-deb -x golang-github-modern-go-reflect2-dev_*.deb reflect2
R2=$(find reflect2 -type d -path '*github.com/modern-go/reflect2' | head -1)
VEND="$SRC/vendor/github.com/modern-go/reflect2"
cp "$R2"/*.go "$VEND"/
rm -f "$VEND/go_above_17.go" "$VEND/go_below_17.go" "$VEND/go_below_19.go"
cd "$SRC"
mkdir -p .go/src/k8s.io && ln -sfn ../../.. .go/src/k8s.io/kubernetes
step "building kube-apiserver (about 4-8 min on 2 cores)"
GOPATH=$PWD/.go CGO_ENABLED=0 GOFLAGS=-mod=vendor make WHAT=cmd/kube-apiserver >build.log 2>&1 \
  || { tail -30 build.log >&2; die "kube-apiserver build failed (log: $PWD/build.log)"; }
mkdir -p "$DEST"
cp _output/bin/kube-apiserver "$BIN" 2>/dev/null || cp _output/local/bin/linux/*/kube-apiserver "$BIN"
cd / && rm -rf "$WORK"
echo "$BIN"
