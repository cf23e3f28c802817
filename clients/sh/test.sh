#!/bin/sh
# Tests for ci-sidecar.sh against a real daemon: run with `dash clients/sh/test.sh` (or any POSIX sh).
# Starts its own daemon (python3 -m ci_sidecar, or $CI_SIDECAR_TEST_PYTHON) on a short /tmp socket with
# a clean environment. Exit status: number of failed checks (0 = all passed).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
PY=${CI_SIDECAR_TEST_PYTHON:-python3}
TMP=$(mktemp -d /tmp/cssXXXXXX)
FAILS=0
SKIPS=0

ok() { printf 'ok - %s\n' "$1"; }
not_ok() { printf 'not ok - %s\n' "$1"; FAILS=$((FAILS + 1)); }
check() { # check NAME ACTUAL EXPECTED
    if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1: got [$2], want [$3]"; fi
}
skip() { printf 'ok - %s # SKIP %s\n' "$1" "$2"; SKIPS=$((SKIPS + 1)); }

mkdir -p "$TMP/rt" "$TMP/state" "$TMP/xdg" && chmod 700 "$TMP/rt"
SOCK="$TMP/d.sock"
# a clean environment: no CI variables reach the daemon or the clients
CLEAN="env -i PATH=$PATH HOME=${HOME:-/tmp} LANG=C.UTF-8 XDG_RUNTIME_DIR=$TMP/rt XDG_STATE_HOME=$TMP/xdg XDG_CONFIG_HOME=$TMP/xdg XDG_CACHE_HOME=$TMP/xdg CI_SIDECAR_STATE_DIR=$TMP/state CI_SIDECAR_OUTPUT_DIR=$TMP/out"
$CLEAN "$PY" -m ci_sidecar serve --socket "$SOCK" --debug-methods >"$TMP/daemon.log" 2>&1 &
DAEMON=$!
cleanup() { kill "$DAEMON" 2>/dev/null; wait "$DAEMON" 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT INT TERM
# the socket file exists from bind() on, but connections are refused until listen(): wait for one to be
# accepted (the deadline is generous: a loaded machine may take long to start Python)
$CLEAN "$PY" -m ci_sidecar wait --socket "$SOCK" --timeout 60 ||
    { echo "daemon did not start:"; cat "$TMP/daemon.log"; exit 1; }

# run the helper in this clean world
for v in $(env | sed -n 's/^\(CI[A-Z_]*\|GITHUB_[A-Z_]*\|GITLAB_[A-Z_]*\)=.*/\1/p'); do unset "$v"; done
export CI_SIDECAR_SOCKET="$SOCK"
export CI_SIDECAR_OUTPUT_DIR="$TMP/out"  # read from the client's env: keep run output out of the checkout
export CIS_COMMAND="$PY -m ci_sidecar"
. "$HERE/ci-sidecar.sh"

# --- JSON strings ---
check "json string escaping" "$(cis_json_str 'a "q" \ b	t')" '"a \"q\" \\ b\tt"'
check "json string with a newline" "$(cis_json_str "line1
line2")" '"line1\nline2"'
check "empty json string" "$(cis_json_str '')" '""'

# --- calls ---
out=$(cis_call sidecar/status '{}')
check "cis_call prints the result" "$(printf '%s\n' "$out" | _cis_field protocolVersion)" "1"
err=$(cis_call no_such_method '{}' 2>&1 >/dev/null); rc=$?
check "an error answer fails the call" "$rc" "1"
case "$err" in *-32601*) ok "the error names its code" ;; *) not_ok "error output: $err" ;; esac
err=$(CI_SIDECAR_SOCKET=/tmp/no-such-dir-cs/d.sock cis_call sidecar/status 2>&1); rc=$?
check "no daemon: non-zero" "$rc" "1"
case "$err" in *no-such-dir-cs*) ok "no daemon: says where it looked" ;; *) not_ok "no daemon output: $err" ;; esac
( unset CI_SIDECAR_RUN_ID; cis_report x passed 2>/dev/null ); check "cis_report without a run fails" "$?" "1"

# --- runs ---
served=$(cis_call rpc.discover '{}' | sed -n 's/^      "name": "\([a-z_\/]*\)",$/\1/p')
has() { printf '%s\n' "$served" | grep -qx "$1"; }
if has create_test_run && has report_results && has complete_test_run && has get_test_run_status; then
    unset CI_SIDECAR_RUN_ID
    cis_create_run "sh \"quoted\" run"; check "cis_create_run succeeds" "$?" "0"
    [ -n "${CI_SIDECAR_RUN_ID:-}" ] && ok "cis_create_run exports CI_SIDECAR_RUN_ID" || not_ok "no run id"
    check "the run was created here" "$CIS_RUN_CREATED" "1"
    cis_report "adds" passed 0.01 "" math; check "report passed" "$?" "0"
    cis_report "divides" failed 0.02 "expected 2
got 3" math; check "report failed (multi-line message)" "$?" "0"
    status=$(cis_run_status)
    check "run name round-trips" "$(printf '%s\n' "$status" | _cis_field name)" 'sh "quoted" run'
    check "two results counted" "$(printf '%s\n' "$status" | sed -n 's/^    "total": \([0-9]*\),\{0,1\}$/\1/p')" "2"
    if has upload_artifact && has get_artifact_url; then
        printf 'hello\n' > "$TMP/log.txt"
        check "cis_upload prints the name" "$(cis_upload "$TMP/log.txt" build-log.txt)" "build-log.txt"
        url=$(cis_artifact_url build-log.txt); check "cis_artifact_url succeeds" "$?" "0"
        case "$url" in '' | *://*) ok "artifact url is empty or a URL: $url" ;; *) not_ok "artifact url: $url" ;; esac
    else
        skip "artifacts" "daemon does not serve upload_artifact/get_artifact_url yet"
    fi
    check "cis_complete prints the conclusion" "$(cis_complete)" "failure"
    cis_report "late" passed 2>/dev/null; check "reporting to a finished run fails" "$?" "1"
    # joining: an existing run is not completed by a joiner
    owner=$CI_SIDECAR_RUN_ID
    CI_SIDECAR_RUN_ID=$(cis_call create_test_run '{"name": "owned"}' | _cis_field id)
    joined=$CI_SIDECAR_RUN_ID
    cis_create_run "ignored"; check "cis_create_run joins CI_SIDECAR_RUN_ID" "$CI_SIDECAR_RUN_ID" "$joined"
    check "a joined run is not ours" "$CIS_RUN_CREATED" "0"
    cis_complete 2>/dev/null
    check "cis_complete leaves a joined run running" "$(cis_run_status | _cis_field status)" "running"
    [ "$owner" != "$joined" ] && ok "runs have distinct ids" || not_ok "same id twice"
else
    skip "runs" "daemon does not serve create_test_run yet"
fi

echo "# failed $FAILS, skipped $SKIPS"
exit "$FAILS"
