#!/usr/bin/env bash
# Brings the web pages' Spanish catalogue up to date with the text in
# src/atalaya/web (templates and Python) and the errors of the stages that
# the pages show: extracts every _()/ngettext()/N_() string of the paths
# babel.cfg names, merges them into
# src/atalaya/web/translations/es/LC_MESSAGES/messages.po, new ones empty and
# changed ones fuzzy. Translate those, then run tests/web/test_i18n.py: it
# fails while any msgid lacks a Spanish text or is fuzzy.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -d .venv ]] && export PATH="$PWD/.venv/bin:$PATH"
pot="$(mktemp --suffix=.pot)"
trap 'rm -f "$pot"' EXIT
pybabel extract --no-location --sort-output --omit-header -F babel.cfg -k N_ \
  -o "$pot" src/atalaya
po=src/atalaya/web/translations/es/LC_MESSAGES/messages.po
if [[ -f $po ]]; then
  pybabel update --ignore-obsolete -w 100 -i "$pot" -d src/atalaya/web/translations -l es
else
  pybabel init -w 100 -i "$pot" -d src/atalaya/web/translations -l es
fi
