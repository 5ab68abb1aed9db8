# Shared helpers for the install scripts. Sourced, not executed.
set -euo pipefail
CACHE_DIR="${MODELMESH_CACHE:-$HOME/.cache/modelmesh}"
mkdir -p "$CACHE_DIR"
step() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() {
  printf '\033[31mERROR: %s\033[0m\n' "$1" >&2
  [ $# -gt 1 ] && printf '  how to fix: %s\n' "$2" >&2
  exit 1
}
# Run apt-get install only for packages that are missing; apt-get update at most once.
APT_UPDATED_STAMP="$CACHE_DIR/.apt-updated"
apt_ensure() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null || die "apt-get not found; cannot install ${missing[*]}" "install them with your package manager"
  local SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  step "apt-get install ${missing[*]}"
  if [ ! -f "$APT_UPDATED_STAMP" ] || [ -n "$(find "$APT_UPDATED_STAMP" -mmin +720)" ]; then
    $SUDO apt-get update -qq || die "apt-get update failed" "check network access to the Debian mirror"
    touch "$APT_UPDATED_STAMP"
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null \
    || die "apt-get install ${missing[*]} failed" "run: apt-get update && apt-get install -y ${missing[*]}"
}
