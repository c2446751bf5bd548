#!/bin/bash
# jcdiag as a Jamf Pro policy script (macOS; Jamf runs it as root).
#
# Jamf passes $1 mount point, $2 computer name, $3 user name; the policy's own parameters are:
#   $4  Server URL          intake base URL (empty: from jcdiag's configuration)
#   $5  Case ID             support case (empty: the configured default case)
#   $6  Token file          file whose first line is the upload token (empty: configured)
#   $7  Since               how far back logs are kept (default 7d)
#   $8  Max runtime         jcdiag stops itself cleanly after this long (default 25m)
#   $9  Bundle folder       default /Library/Application Support/jcdiag/bundles
#   $10 jcdiag path         default /usr/local/bin/jcdiag
#   $11 (unused)
# Label them in Jamf Pro (Settings > Scripts > Options) so admins see the names above.
# A setting enforced by a configuration profile (com.jumpcloud.jcdiag, EnforcedSettings)
# wins over these parameters.
#
# Prints ONE line, jcdiag's JSON result, into the policy log; jcdiag's messages go to
# <bundle folder>/jcdiag.log. Exit codes are jcdiag's own (Jamf shows any non-zero as failed):
#   0 ok   1 error   2 usage   3 bundle made, some collectors failed
#   4 bundle made, upload failed (kept in the spool; the next run sends it)   5 nothing collected

set -u

SERVER="${4:-}"
CASE_ID="${5:-}"
TOKEN_FILE="${6:-}"
SINCE="${7:-7d}"
MAX_RUNTIME="${8:-25m}"
BUNDLE_DIR="${9:-/Library/Application Support/jcdiag/bundles}"
JCDIAG="${10:-/usr/local/bin/jcdiag}"
LOG="$BUNDLE_DIR/jcdiag.log"

fail() {
  printf '{"error": "%s", "exit_code": 1}\n' "$1"
  exit 1
}

[ -x "$JCDIAG" ] || fail "jcdiag executable not found at $JCDIAG; deploy it or set parameter 10"
mkdir -p "$BUNDLE_DIR" && chmod 0700 "$BUNDLE_DIR" || fail "cannot create $BUNDLE_DIR"
if [ -f "$LOG" ] && [ "$(wc -c < "$LOG")" -gt 1048576 ]; then mv -f "$LOG" "$LOG.1"; fi

args=(collect --upload --json --yes --output "$BUNDLE_DIR" --since "$SINCE" --max-runtime "$MAX_RUNTIME")
[ -n "$SERVER" ] && args+=(--server "$SERVER")
[ -n "$CASE_ID" ] && args+=(--case "$CASE_ID")
[ -n "$TOKEN_FILE" ] && args+=(--token-file "$TOKEN_FILE")

printf '%s jcdiag %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${args[*]}" >> "$LOG"
result="$("$JCDIAG" "${args[@]}" 2>> "$LOG")"
status=$?
if [ -n "$result" ]; then
  printf '%s\n' "$result" | tail -n 1
else
  printf '{"error": "jcdiag printed no result; see %s", "exit_code": %d}\n' "$LOG" "$status"
fi
exit "$status"
