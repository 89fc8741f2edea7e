#!/usr/bin/env bash
# Refreshes linear/schema.graphql from Linear's public SDK (linear/linear, packages/sdk/src/schema.graphql) and
# regenerates the genqlient client. Needs the network (GitHub), so it is not part of `make test`; review the diff of
# schema.graphql and generated.go before committing, and run `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."

ref=${LINEAR_SCHEMA_REF:-master}
path=packages/sdk/src/schema.graphql
# The commit that last touched the schema, for the provenance header.
sha=$(curl -fsSL "https://api.github.com/repos/linear/linear/commits?path=$path&sha=$ref&per_page=1" |
  sed -n 's/^    "sha": "\([0-9a-f]\{40\}\)",$/\1/p' | head -1)
if [ -z "$sha" ]; then
  echo "update-linear-schema: could not find the last commit of $path on $ref" >&2
  exit 1
fi
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
curl -fsSL "https://raw.githubusercontent.com/linear/linear/$sha/$path" -o "$tmp"
{
  echo "# Linear's GraphQL schema (SDL), vendored from the public linear/linear repository:"
  echo "#   $path at commit $sha."
  echo "# Refresh with \`make schema\` (needs the network); TestGeneratedIsFresh keeps generated.go in step with this file."
  cat "$tmp"
} > linear/schema.graphql
echo "linear/schema.graphql now at linear/linear@$sha"
make generate
