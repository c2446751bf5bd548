#!/bin/bash
# jcdiag as a JumpCloud Command for Linux and macOS (the command runs as root).
#
# Collects a diagnostics bundle, uploads it to the support case and prints ONE line: the
# JSON result of `jcdiag collect --json` (bundle ID, path, upload status, lifecycle verdict).
# A command's output is cut at 1 MB; one line never is. The bundle stays in BUNDLE_DIR,
# jcdiag's messages go to BUNDLE_DIR/jcdiag.log.
#
# Server, token file and recipient keys come from jcdiag's configuration: the config file
# (/etc/jcdiag/config.toml, /Library/Application Support/jcdiag/config.toml) or the managed
# settings of com.jumpcloud.jcdiag. Set the command's timeout above MAX_RUNTIME.
#
# Exit codes are jcdiag's own:
#   0 ok   1 error   2 usage   3 bundle made, some collectors failed
#   4 bundle made, upload failed (kept in the spool; the next run sends it)   5 nothing collected

set -u

CASE_ID=""            # support case, e.g. 00123456; empty: the configured default case
SINCE="7d"            # how far back logs are kept
MAX_RUNTIME="25m"     # jcdiag stops itself (cleanly) after this long

JCDIAG="${JCDIAG_BIN:-}"
if [ -z "$JCDIAG" ]; then
  for candidate in /usr/local/bin/jcdiag /opt/jcdiag/jcdiag "$(command -v jcdiag 2>/dev/null)"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ]; then JCDIAG="$candidate"; break; fi
  done
fi
if [ "$(uname -s)" = "Darwin" ]; then
  BUNDLE_DIR="${JCDIAG_BUNDLE_DIR:-/Library/Application Support/jcdiag/bundles}"
else
  BUNDLE_DIR="${JCDIAG_BUNDLE_DIR:-/var/lib/jcdiag/bundles}"
fi
LOG="$BUNDLE_DIR/jcdiag.log"

fail() {  # one JSON line, like jcdiag's own errors
  printf '{"error": "%s", "exit_code": 1}\n' "$1"
  exit 1
}

[ -n "$JCDIAG" ] && [ -x "$JCDIAG" ] || fail "jcdiag executable not found (looked in /usr/local/bin, /opt/jcdiag, PATH); set JCDIAG_BIN"
mkdir -p "$BUNDLE_DIR" && chmod 0700 "$BUNDLE_DIR" || fail "cannot create $BUNDLE_DIR"
# Keep the log bounded: one previous generation of at most 1 MB.
if [ -f "$LOG" ] && [ "$(wc -c < "$LOG")" -gt 1048576 ]; then mv -f "$LOG" "$LOG.1"; fi

args=(collect --upload --json --yes --output "$BUNDLE_DIR" --since "$SINCE" --max-runtime "$MAX_RUNTIME")
[ -n "$CASE_ID" ] && args+=(--case "$CASE_ID")

{ printf '%s jcdiag %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${args[*]}"; } >> "$LOG"
result="$("$JCDIAG" "${args[@]}" 2>> "$LOG")"
status=$?
if [ -n "$result" ]; then
  printf '%s\n' "$result" | tail -n 1
else
  printf '{"error": "jcdiag printed no result; see %s", "exit_code": %d}\n' "$LOG" "$status"
fi
exit "$status"
