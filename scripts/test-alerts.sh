#!/usr/bin/env bash
# Checks the Prometheus alert rules and runs their unit tests with promtool
# (Debian's `prometheus` package, installed when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v promtool >/dev/null 2>&1; then
	sudo=""
	if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
	echo "installing promtool (Debian package prometheus)..."
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi

promtool check rules ops/prometheus/alerts.yml
promtool test rules ops/prometheus/alerts_test.yml
