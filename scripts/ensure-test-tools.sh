#!/usr/bin/env bash
# Makes sure the programs the tests drive are installed (Debian packages, with apt-get when missing):
# curl, openssl and jq run the README's examples (cmd/linsync TestReadmeExamples); chromium runs the console's
# browser tests (e2e/console_test.go), which fail without it. LINSYNC_CHROMIUM names another browser binary.
set -euo pipefail

missing=()
for tool in curl openssl jq; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ -z "${LINSYNC_CHROMIUM:-}" ] && ! command -v chromium >/dev/null; then
  missing+=(chromium)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
echo "ensure-test-tools: installing ${missing[*]} with apt-get" >&2
sudo_if_needed apt-get update -qq
sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
