// Package badinput holds tests that send the production Caddyfile hostile
// requests (oversized headers, slow bodies, malformed JSON) and check each
// gets a 4xx and leaves the server answering.
package badinput
