# ci-sidecar.sh: POSIX shell helpers for build scripts, built on `ci-sidecar call`.
#
#   . clients/sh/ci-sidecar.sh
#   cis_create_run "integration"            # joins $CI_SIDECAR_RUN_ID when set, else creates a run
#   cis_report "login works" passed 1.2
#   cis_report "logout works" failed 0.4 "expected 302, got 500"
#   cis_upload build/log.txt                # prints the artifact's name
#   cis_artifact_url log.txt                # prints its URL (empty when it has none)
#   cis_complete                            # prints the conclusion
#
# The daemon is found through $CI_SIDECAR_SOCKET (see `ci-sidecar serve --socket`). Set CIS_COMMAND to
# run another command than `ci-sidecar` (e.g. "python3 -m ci_sidecar"). Every function returns non-zero
# and says why on stderr when the daemon refused or could not be reached; it never fakes success.
# Sourced, not executed: it defines functions and the variables CI_SIDECAR_RUN_ID (exported) and
# CIS_RUN_CREATED (1 when this shell created the run, so cis_complete completes it).

# cis_call METHOD [PARAMS_JSON]: print the result as JSON; errors go to stderr as {"error": {...}}.
cis_call() {
    ${CIS_COMMAND:-ci-sidecar} call "$1" ${2:+"$2"}
}

# cis_json_str STRING: print STRING as a JSON string literal.
cis_json_str() {
    # sed escapes backslashes and quotes (awk's gsub replacement escaping differs between awks);
    # awk joins lines with \n and escapes tabs and carriage returns
    printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g' | awk 'BEGIN { ORS = ""; printf "\"" }
        {
            gsub(/\t/, "\\t"); gsub(/\r/, "\\r")
            gsub(/[\001-\010\013\014\016-\037]/, "")
            if (NR > 1) printf "\\n"
            printf "%s", $0
        }
        END { printf "\"" }'
}

# _cis_field NAME: read `ci-sidecar call` output (indented JSON) on stdin, print a top-level scalar field.
_cis_field() {
    sed -n -e "s/^  \"$1\": \"\(.*\)\",\{0,1\}\$/\1/p" -e "s/^  \"$1\": \([^\"{[,]*\),\{0,1\}\$/\1/p" |
        sed -e 's/^null$//' -e 's/\\"/"/g' -e 's/\\\\/\\/g' | head -n 1
}

_cis_need_run() {
    if [ -z "${CI_SIDECAR_RUN_ID:-}" ]; then
        echo "ci-sidecar.sh: no run: call cis_create_run first" >&2
        return 1
    fi
}

_cis_is_number() {
    case "$1" in
        '' | *[!0-9.]* | *.*.*) return 1 ;;
        *) return 0 ;;
    esac
}

# cis_create_run NAME [EXTRA_JSON_MEMBERS]: join $CI_SIDECAR_RUN_ID, or create a run and export its id.
# EXTRA_JSON_MEMBERS are added to the params, e.g. '"external_id": "build-42"'.
cis_create_run() {
    if [ -n "${CI_SIDECAR_RUN_ID:-}" ]; then
        CIS_RUN_CREATED=0
        return 0
    fi
    _cis_out=$(cis_call create_test_run "{\"name\": $(cis_json_str "$1")${2:+, $2}}") || return 1
    CI_SIDECAR_RUN_ID=$(printf '%s\n' "$_cis_out" | _cis_field id)
    if [ -z "$CI_SIDECAR_RUN_ID" ]; then
        echo "ci-sidecar.sh: create_test_run answered without an id: $_cis_out" >&2
        return 1
    fi
    export CI_SIDECAR_RUN_ID
    CIS_RUN_CREATED=1
}

# cis_report NAME STATUS [DURATION_S] [MESSAGE] [SUITE]: report one result (passed|failed|error|skipped).
cis_report() {
    _cis_need_run || return 1
    _cis_r="{\"name\": $(cis_json_str "$1"), \"status\": $(cis_json_str "$2")"
    if _cis_is_number "${3:-}"; then _cis_r="$_cis_r, \"duration\": $3"; fi
    if [ -n "${4:-}" ]; then _cis_r="$_cis_r, \"message\": $(cis_json_str "$4")"; fi
    if [ -n "${5:-}" ]; then _cis_r="$_cis_r, \"suite\": $(cis_json_str "$5")"; fi
    cis_report_json "[$_cis_r}]"
}

# cis_report_json RESULTS_JSON_ARRAY: report_results with a ready-made array of TestResult objects.
cis_report_json() {
    _cis_need_run || return 1
    cis_call report_results "{\"test_run_id\": $(cis_json_str "$CI_SIDECAR_RUN_ID"), \"results\": $1}" >/dev/null
}

# cis_ingest_junit PATH_OR_GLOB: ingest JUnit/xUnit XML files into the run; prints the daemon's answer.
cis_ingest_junit() {
    _cis_need_run || return 1
    cis_call ingest_junit "{\"test_run_id\": $(cis_json_str "$CI_SIDECAR_RUN_ID"), \"path\": $(cis_json_str "$1")}"
}

# cis_upload PATH [NAME]: upload a file as an artifact of the run; prints the artifact's name.
cis_upload() {
    _cis_need_run || return 1
    _cis_p="{\"test_run_id\": $(cis_json_str "$CI_SIDECAR_RUN_ID"), \"path\": $(cis_json_str "$1")"
    if [ -n "${2:-}" ]; then _cis_p="$_cis_p, \"name\": $(cis_json_str "$2")"; fi
    _cis_out=$(cis_call upload_artifact "$_cis_p}") || return 1
    printf '%s\n' "$_cis_out" | _cis_field name
}

# cis_artifact_url NAME: print the artifact's URL (an empty line when it has none).
cis_artifact_url() {
    _cis_need_run || return 1
    _cis_out=$(cis_call get_artifact_url \
        "{\"test_run_id\": $(cis_json_str "$CI_SIDECAR_RUN_ID"), \"name\": $(cis_json_str "$1")}") || return 1
    printf '%s\n' "$_cis_out" | _cis_field url
}

# cis_run_status: print the run (TestRun JSON).
cis_run_status() {
    _cis_need_run || return 1
    cis_call get_test_run_status "{\"test_run_id\": $(cis_json_str "$CI_SIDECAR_RUN_ID")}"
}

# cis_complete [CONCLUSION]: complete the run this shell created and print its conclusion. A joined run
# is left to its owner (`ci-sidecar exec`); pass --force to complete it anyway.
cis_complete() {
    _cis_need_run || return 1
    if [ "${1:-}" = "--force" ]; then
        shift
    elif [ "${CIS_RUN_CREATED:-0}" != 1 ]; then
        echo "ci-sidecar.sh: run $CI_SIDECAR_RUN_ID was joined, its owner completes it" >&2
        return 0
    fi
    _cis_p="{\"test_run_id\": $(cis_json_str "$CI_SIDECAR_RUN_ID")"
    if [ -n "${1:-}" ]; then _cis_p="$_cis_p, \"conclusion\": $(cis_json_str "$1")"; fi
    _cis_out=$(cis_call complete_test_run "$_cis_p}") || return 1
    printf '%s\n' "$_cis_out" | _cis_field conclusion
}
