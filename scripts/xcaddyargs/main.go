// Command xcaddyargs reads xcaddy.json and prints, one per line, the
// arguments of `xcaddy build` (or a single pinned version), for
// scripts/build.sh and the Dockerfile:
//
//	go run ./scripts/xcaddyargs -output bin/caddy
//	    build
//	    v2.11.9
//	    --output
//	    bin/caddy
//	    --with
//	    github.com/mholt/caddy-ratelimit@v0.1.0
//	    --with
//	    github.com/soulapp/soul@v0.0.0-00010101000000-000000000000=./
//
//	go run ./scripts/xcaddyargs -print xcaddy-version
//	    v0.4.6
//
// No printed value holds a newline. Any error in the file is reported on
// stderr with exit status 1, and nothing is printed.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"

	"github.com/soulapp/soul/internal/xcaddyjson"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "xcaddyargs:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("xcaddyargs", flag.ContinueOnError)
	config := fs.String("config", xcaddyjson.FileName, "path of xcaddy.json")
	output := fs.String("output", "", "binary to build (for -print build-args)")
	what := fs.String("print", "build-args", "what to print: build-args, xcaddy-version or caddy-version")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	cfg, err := xcaddyjson.Load(*config)
	if err != nil {
		return err
	}
	var lines []string
	switch *what {
	case "build-args":
		if lines, err = cfg.BuildArgs(*output); err != nil {
			return err
		}
	case "xcaddy-version":
		lines = []string{cfg.XCaddy}
	case "caddy-version":
		lines = []string{cfg.Caddy}
	default:
		return fmt.Errorf("-print %q: want build-args, xcaddy-version or caddy-version", *what)
	}
	w := bufio.NewWriter(os.Stdout)
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
	return w.Flush()
}
