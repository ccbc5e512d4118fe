#!/usr/bin/env bash
# Lints the OpenAPI document with Redocly's CLI (npm @redocly/cli, pinned),
# using redocly.yaml at the repository root.
#
#   scripts/lint-openapi.sh [PATH]     (default: api/openapi.json)
set -euo pipefail

readonly redocly_version=2.77.0

cd "$(dirname "$0")/.."
exec npx --yes "@redocly/cli@${redocly_version}" lint --config redocly.yaml "${1:-api/openapi.json}"
