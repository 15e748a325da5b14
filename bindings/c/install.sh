#!/usr/bin/env bash
# Installs libmqlite (shared + static), include/mqlite.h and mqlite.pc under a prefix, so that
# `pkg-config --cflags --libs mqlite` finds them:
#
#   bindings/c/install.sh [PREFIX] [PROFILE]      # defaults: /usr/local, release
#   PKG_CONFIG_PATH=PREFIX/lib/pkgconfig pkg-config --cflags --libs mqlite
#
# Builds with cargo first unless MQLITE_NO_BUILD=1 (the test script has built already).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
prefix="${1:-/usr/local}"
profile="${2:-release}"
case "$profile" in
  release) cargo_flag=(--release) ;;
  debug) cargo_flag=() ;;
  *) echo "profile must be release or debug" >&2; exit 2 ;;
esac
if [[ "${MQLITE_NO_BUILD:-0}" != 1 ]]; then
  (cd "$root" && cargo build --lib "${cargo_flag[@]}")
fi
target="${CARGO_TARGET_DIR:-$root/target}/$profile"
version="$(sed -n 's/^#define MQLITE_VERSION_STRING "\(.*\)"/\1/p' "$root/include/mqlite.h")"
major="${version%%.*}"
mkdir -p "$prefix/lib/pkgconfig" "$prefix/include"
install -m 0755 "$target/libmqlite.so" "$prefix/lib/libmqlite.so.$version"
ln -sf "libmqlite.so.$version" "$prefix/lib/libmqlite.so.$major"
ln -sf "libmqlite.so.$major" "$prefix/lib/libmqlite.so"
install -m 0644 "$target/libmqlite.a" "$prefix/lib/libmqlite.a"
install -m 0644 "$root/include/mqlite.h" "$prefix/include/mqlite.h"
sed -e "s|@PREFIX@|$prefix|" -e "s|@VERSION@|$version|" "$root/bindings/c/mqlite.pc.in" \
  > "$prefix/lib/pkgconfig/mqlite.pc"
echo "installed mqlite $version into $prefix"
