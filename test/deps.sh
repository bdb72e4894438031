#!/usr/bin/env bash
# Installs what crm needs to build, test and run, if any is missing: the Debian packages,
# and PostGraphile 4 from npm for t/011_postgraphile.pl.
# Idempotent: does nothing (and needs no network) when everything is present.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)

packages=(
	postgresql-15            # the server
	postgresql-server-dev-15 # headers and PGXS
	postgresql-15-cron       # job scheduler
	libjansson-dev           # JSON for the IM worker
	libcurl4-openssl-dev     # HTTP for the IM worker
	libicu-dev               # collations for Chinese names
	libopencc-dev            # traditional to simplified Chinese for duplicate keys (its data: libopencc-data)
	libipc-run-perl          # TAP tests
	python3                  # the fake IM server of the TAP tests
	apache2-utils            # ab: the HTTP load generator make bench measures delivery against
	make gcc
)

need_root() {
	if [ "$(id -u)" -ne 0 ]; then
		echo "missing: $1; run as root (or install it) first" >&2
		exit 1
	fi
}

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# Node.js and npm for PostGraphile, from Debian unless some other package provides them
command -v node >/dev/null && command -v npm >/dev/null || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
	need_root "packages ${missing[*]}"
	echo "installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# PostGraphile at the version test/postgraphile/package.json pins, in a cache outside the
# tree (test/run.sh copies the tree for every run), linked as test/postgraphile/node_modules.
# Installed into a new directory that replaces the old one only when complete.
cache=/var/cache/crm-test/postgraphile
if ! cmp -s "$top/test/postgraphile/package.json" "$cache/package.json" || [ ! -d "$cache/node_modules/postgraphile" ]; then
	need_root "PostGraphile (npm) in $cache"
	echo "installing: PostGraphile (npm) into $cache"
	mkdir -p "$(dirname "$cache")"
	new=$(mktemp -d "$cache.new.XXXXXX")
	cp "$top/test/postgraphile/package.json" "$new/"
	npm install --prefix "$new" --no-audit --no-fund --no-package-lock --loglevel=error >/dev/null
	chmod -R a+rX "$new"
	rm -rf "$cache"
	mv "$new" "$cache"
fi
[ "$(readlink "$top/test/postgraphile/node_modules" 2>/dev/null)" = "$cache/node_modules" ] ||
	ln -sfn "$cache/node_modules" "$top/test/postgraphile/node_modules"
