#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# systemd-analyze verify on every unit in systemd/, with ExecStart pointing at
# the services just built (verify insists that the binaries exist).
set -euo pipefail
src=$1 build=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

echo "TAP version 13"
n=0 failed=0
mkdir -p "$dir/libexec"
for exe in "$build"/services/*/polyvm-*; do
        [ -x "$exe" ] && [ -f "$exe" ] && ln -sf "$exe" "$dir/libexec/"
done
# All units first: one may Require= another (the early launcher needs devmgr
# and memmgr), and verify loads what it requires.
for in in "$src"/systemd/*.service.in; do
        sed -e "s#@LIBEXECDIR@#$dir/libexec#g" -e "s#@DOCDIR@#/usr/share/doc/polyvm#g" "$in" > "$dir/$(basename "$in" .in)"
done
for in in "$src"/systemd/*.service.in; do
        unit=$(basename "$in" .in)
        n=$((n + 1))
        if out=$(cd "$dir" && systemd-analyze verify "./$unit" 2>&1) && [ -z "$out" ]; then
                echo "ok $n - systemd-analyze verify $unit"
        else
                echo "not ok $n - systemd-analyze verify $unit"
                echo "$out" | sed 's/^/# /'
                failed=$((failed + 1))
        fi
done
echo "1..$n"
[ "$failed" -eq 0 ]
