#!/usr/bin/env bash
# Downloads the benchmarks' module over 10 MB into target/bench-modules/ (not
# committed; the benchmarks skip it, with a note, when it is absent).
#
#   esbuild-0.28.2.wasm  13,978,850 bytes, 5,307 functions: esbuild (the JavaScript
#                        bundler, written in Go) from the npm package esbuild-wasm
#                        0.28.2 (MIT). Core Wasm plus sign-extension, saturating
#                        float-to-int and bulk memory (what Go emits by default); no
#                        SIMD, threads, exceptions or tail calls. Imports 22 functions
#                        of the Go runtime's `gojs` module (compile-only here).
#
# Needs npm (`npm pack` fetches the package tarball from the registry) and
# sha256sum. Usage: bash benches/fetch-large.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

OUT=target/bench-modules
PKG=esbuild-wasm@0.28.2
FILE=esbuild-0.28.2.wasm
SHA256=b1831a5c0f6cf688034fb94d0419812f165ea316a3380d3fc00a151e562d2eaf

mkdir -p "$OUT"
if [[ -f "$OUT/$FILE" ]] && echo "$SHA256  $OUT/$FILE" | sha256sum --check --status; then
  echo "fetch-large.sh: $OUT/$FILE is already there"
  exit 0
fi
command -v npm >/dev/null 2>&1 || { echo "fetch-large.sh: error: npm not found" >&2; exit 1; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "$PKG" >/dev/null)
tar -xzf "$tmp"/esbuild-wasm-*.tgz -C "$tmp" package/esbuild.wasm
echo "$SHA256  $tmp/package/esbuild.wasm" | sha256sum --check --status ||
  { echo "fetch-large.sh: error: $PKG's esbuild.wasm does not have the expected SHA-256" >&2; exit 1; }
mv "$tmp/package/esbuild.wasm" "$OUT/$FILE"
echo "fetch-large.sh: $OUT/$FILE ($(stat -c %s "$OUT/$FILE") bytes)"
