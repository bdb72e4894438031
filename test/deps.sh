#!/usr/bin/env bash
# Installs the Debian packages crm needs to build, test and run, if any is missing.
# Idempotent: does nothing (and needs no network) when everything is present.
set -euo pipefail

packages=(
	postgresql-15            # the server
	postgresql-server-dev-15 # headers and PGXS
	postgresql-15-cron       # job scheduler
	libjansson-dev           # JSON for the IM worker
	libcurl4-openssl-dev     # HTTP for the IM worker
	libicu-dev               # collations for Chinese names
	libipc-run-perl          # TAP tests
	python3                  # the fake IM server of the TAP tests
	apache2-utils            # ab: the HTTP load generator make bench measures delivery against
	make gcc
)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "missing packages: ${missing[*]}; run as root (or install them) first" >&2
	exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
