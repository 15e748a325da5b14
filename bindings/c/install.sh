#!/usr/bin/env bash
# Installs libmqlite (shared + static), include/mqlite.h and mqlite.pc under a prefix, so that
# `pkg-config --cflags --libs mqlite` finds them and programs linked with them start:
#
#   bindings/c/install.sh [PREFIX] [PROFILE]     # defaults: /usr/local, release
#   bindings/c/install.sh --uninstall [PREFIX]   # removes what an install put there
#
# PROFILE is release (stripped, what ships), profiling (release with symbols, for profilers) or
# debug. It builds with cargo first unless MQLITE_NO_BUILD=1 (when the build was done already).
#
# A system prefix (one the dynamic linker is configured for, such as /usr/local): as root it
# runs ldconfig, and the .pc goes into the prefix's directory on pkg-config's default search
# path, so nothing needs setting. Any other prefix: it prints the two lines that make pkg-config
# and the dynamic linker find it, to run in each shell that builds or runs programs with mqlite:
#   export PKG_CONFIG_PATH=PREFIX/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
#   export LD_LIBRARY_PATH=PREFIX/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
set -euo pipefail
root="$(cd -P "$(dirname "$0")/../.." && pwd)"
uninstall=0
if [[ "${1:-}" == --uninstall ]]; then
  uninstall=1
  shift
fi
prefix="${1:-/usr/local}"
profile="${2:-release}"
case "$profile" in
  release) cargo_flag=(--release) ;;
  profiling) cargo_flag=(--profile profiling) ;;
  debug) cargo_flag=() ;;
  *) echo "install.sh: profile must be release, profiling or debug, not '$profile'" >&2; exit 2 ;;
esac
is_root() { [[ "$(id -u)" == 0 ]]; }
ldconfig_cmd="$(command -v ldconfig || echo /sbin/ldconfig)"
version="$(sed -n 's/^#define MQLITE_VERSION_STRING "\(.*\)"/\1/p' "$root/include/mqlite.h")"
major="${version%%.*}"

# pkg-config's default search path, one directory a line (empty when pkg-config is missing).
pc_path() {
  command -v pkg-config > /dev/null && pkg-config --variable pc_path pkg-config | tr ':' '\n'
  return 0
}
# Is DIR on pkg-config's default search path?
on_pc_path() {
  local d
  while IFS= read -r d; do
    [[ -n "$d" && ( "$d" -ef "$1" || "$d" == "$1" ) ]] && return 0
  done < <(pc_path)
  return 1
}
# The directory for mqlite.pc: PREFIX/lib/pkgconfig, unless pkg-config looks in another
# directory of this prefix but not there (e.g. lib64/pkgconfig or share/pkgconfig on some
# distributions); then that one, so that a system prefix needs no PKG_CONFIG_PATH.
pc_dir() {
  local d
  on_pc_path "$prefix/lib/pkgconfig" && { echo "$prefix/lib/pkgconfig"; return; }
  while IFS= read -r d; do
    [[ "$d/" == "$prefix"/* ]] && { echo "$d"; return; }
  done < <(pc_path)
  echo "$prefix/lib/pkgconfig"
}
# Does the dynamic linker's cache resolve libmqlite.so.MAJOR to the file in PREFIX/lib?
in_ld_cache() {
  local path
  path="$("$ldconfig_cmd" -p 2> /dev/null | sed -n "s|^[[:space:]]*libmqlite\.so\.$major (.*) => ||p" | head -1)"
  [[ -n "$path" && "$path" -ef "$prefix/lib/libmqlite.so.$major" ]]
}

if ((uninstall)); then
  [[ -d "$prefix" ]] || { echo "install.sh: no directory $prefix" >&2; exit 1; }
  prefix="$(cd "$prefix" && pwd)"
  rm -f "$prefix"/lib/libmqlite.so "$prefix"/lib/libmqlite.so.[0-9]* "$prefix/lib/libmqlite.a" \
    "$prefix/include/mqlite.h" "$(pc_dir)/mqlite.pc" "$prefix/lib/pkgconfig/mqlite.pc" \
    "$prefix"/share/doc/mqlite/LICENSE-{MIT,APACHE}
  rmdir "$prefix/share/doc/mqlite" 2> /dev/null || true
  if is_root; then "$ldconfig_cmd"; fi
  echo "removed mqlite from $prefix"
  exit 0
fi

# Fail before a long build if the prefix cannot be written.
if ! mkdir -p "$prefix/lib" "$prefix/include" 2> /dev/null || [[ ! -w "$prefix/lib" || ! -w "$prefix/include" ]]; then
  echo "install.sh: cannot write to $prefix: run it as root, or install into a prefix of your own," >&2
  echo "  e.g. bindings/c/install.sh ~/.local" >&2
  exit 1
fi
# Absolute, without a trailing slash: it is written into mqlite.pc and compared with search paths.
prefix="$(cd "$prefix" && pwd)"
if [[ "${MQLITE_NO_BUILD:-0}" != 1 ]]; then
  if ! command -v cargo > /dev/null; then
    # Typical under sudo, whose PATH lacks ~/.cargo/bin.
    echo "install.sh: cargo is not on PATH; build first as yourself, then install without building:" >&2
    echo "  cargo build --lib ${cargo_flag[*]} && sudo MQLITE_NO_BUILD=1 bindings/c/install.sh $prefix $profile" >&2
    exit 1
  fi
  (cd "$root" && cargo build --lib "${cargo_flag[@]}")
fi
target="${CARGO_TARGET_DIR:-$root/target}/$profile"

pcdir="$(pc_dir)"
mkdir -p "$pcdir"
install -m 0755 "$target/libmqlite.so" "$prefix/lib/libmqlite.so.$version"
ln -sf "libmqlite.so.$version" "$prefix/lib/libmqlite.so.$major"
ln -sf "libmqlite.so.$major" "$prefix/lib/libmqlite.so"
install -m 0644 "$target/libmqlite.a" "$prefix/lib/libmqlite.a"
if [[ "$profile" == release ]]; then
  # cargo strips the shared library (profile.release strip = true) but not a static one, whose
  # members (the standard library's among them) carry debug info and LLVM bitcode (.llvmbc,
  # used only for cross-language LTO): a C linker needs neither, only the symbol table.
  strip --strip-debug -R .llvmbc -R .llvmcmd "$prefix/lib/libmqlite.a"
fi
install -m 0644 "$root/include/mqlite.h" "$prefix/include/mqlite.h"
# The licenses travel with the library (the MIT text asks for its notice in every copy).
install -d "$prefix/share/doc/mqlite"
install -m 0644 "$root/LICENSE-MIT" "$root/LICENSE-APACHE" "$prefix/share/doc/mqlite/"
sed -e "s|@PREFIX@|$prefix|" -e "s|@VERSION@|$version|" "$root/bindings/c/mqlite.pc.in" \
  > "$pcdir/mqlite.pc"
echo "installed mqlite $version ($profile) into $prefix"

if is_root; then "$ldconfig_cmd"; fi
# What a program built against this install would miss, and the exact line that supplies it.
need=()
if ! command -v pkg-config > /dev/null; then
  echo "note: pkg-config is not installed (Debian/Ubuntu: apt-get install pkg-config)"
elif ! on_pc_path "$pcdir"; then
  need+=("export PKG_CONFIG_PATH=$(printf %q "$pcdir")\${PKG_CONFIG_PATH:+:\$PKG_CONFIG_PATH}")
fi
if ! in_ld_cache; then
  need+=("export LD_LIBRARY_PATH=$(printf %q "$prefix/lib")\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}")
fi
if ((${#need[@]})); then
  echo "$prefix is not on the search path of pkg-config or of the dynamic linker. In each shell"
  echo "that builds or runs programs with mqlite, run first:"
  printf '%s\n' "${need[@]}"
fi
