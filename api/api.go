// Package api holds the OpenAPI 3.1 document of the SOUL API, the contract
// every route is tested against, embedded so the binary serves the
// document it was built with.
package api

import _ "embed"

// OpenAPI is openapi.json: linted by Redocly's CLI (scripts/lint-openapi.sh)
// and checked against every answer of the integration tests
// (internal/contract).
//
//go:embed openapi.json
var OpenAPI []byte
