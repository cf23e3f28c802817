"""Artifact type and mime type from a name (and the content's first bytes).

Specific patterns are checked before generic suffixes, so ``x_perf.json`` is a performance report,
``coverage.xml`` a coverage report and ``run_summary.txt`` a summary (the seed checked ``.json``,
``.xml`` and ``.txt`` first and shadowed them). The mime table is Python's built-in one plus a few
additions, never the host's ``/etc/mime.types``, so answers do not depend on the machine.
"""

from __future__ import annotations

import mimetypes
import re

__all__ = ["detect_type", "detect_mime"]

# (type, regex on the lower-cased base name), most specific first; the first match wins
_TYPE_RULES: list[tuple[str, re.Pattern[str]]] = [(t, re.compile(p)) for t, p in [
    ("performance_report", r"(^|[_.-])(perf|performance|benchmark|bench)\.(json|csv|txt|xml|html)$"),
    ("coverage_report", r"(^|[_.-])(coverage|cobertura|jacoco|clover)[^/]*\.(xml|json|info|html|txt)$"
                        r"|^lcov\.info$|\.lcov$|^\.coverage$|\.profraw$|\.gcov$"),
    ("test_summary", r"(^|[_.-])summary\.(json|txt|md)$"),
    ("metrics", r"(^|[_.-])metrics\.(json|csv|txt)$"),
    ("trace", r"\.(trace|pftrace|perfetto-trace|etl|ctf|pcap|pcapng|vcd)$|(^|[_.-])trace\.json$"),
    ("profiling", r"\.(prof|pstats|cpuprofile|heapprofile|pprof)$|^perf\.data$"),
    ("crash_dump", r"\.(dmp|mdmp|core)$|^core(\.\d+)?$|^minidump"),
    ("test_report", r"(^|[_.-])(report|results?)\.[a-z0-9]+$|^(junit|test-?results?|testreport)[^/]*\.xml$"
                    r"|\.(xml|json|html|htm|md)$"),
    ("test_log", r"\.(log|txt|out|err|stdout|stderr)$"),
    ("image", r"\.(png|jpe?g|gif|svg|webp|bmp|tiff?)$"),
    ("archive", r"\.(zip|tar|tar\.gz|tgz|tar\.bz2|tbz2|tar\.xz|txz|tar\.zst|7z|gz|xz|zst|bz2)$"),
    ("model", r"\.(onnx|pt|pth|h5|pb|safetensors|tflite|gguf)$"),
    ("binary", r"\.(bin|exe|so|dll|dylib|elf|hex|img|a|o)$"),
]]

_EXTRA_MIME = {
    ".log": "text/plain", ".out": "text/plain", ".err": "text/plain", ".md": "text/markdown",
    ".json": "application/json", ".yaml": "application/yaml", ".yml": "application/yaml",
    ".toml": "application/toml", ".csv": "text/csv", ".svg": "image/svg+xml", ".webp": "image/webp",
    ".gz": "application/gzip", ".tgz": "application/gzip", ".xz": "application/x-xz",
    ".zst": "application/zstd", ".7z": "application/x-7z-compressed", ".info": "text/plain",
    ".lcov": "text/plain", ".ndjson": "application/x-ndjson", ".jsonl": "application/x-ndjson",
    ".onnx": "application/octet-stream", ".safetensors": "application/octet-stream",
    ".pcap": "application/vnd.tcpdump.pcap", ".pcapng": "application/vnd.tcpdump.pcap",
}
_ENCODING_MIME = {"gzip": "application/gzip", "bzip2": "application/x-bzip2", "xz": "application/x-xz",
                  "compress": "application/x-compress", "br": "application/x-brotli"}

_table = mimetypes.MimeTypes()  # built-in defaults only: not the host's files
for _ext, _mime in _EXTRA_MIME.items():
    _table.add_type(_mime, _ext)


def _base(name: str) -> str:
    return name.rsplit("/", 1)[-1].lower()


def detect_type(name: str, given: str | None = None) -> str:
    """The artifact type: ``given`` when the client said, else from the name, else ``generic``."""
    if given:
        return given
    base = _base(name)
    for kind, rule in _TYPE_RULES:
        if rule.search(base):
            return kind
    return "generic"


def detect_mime(name: str, head: bytes = b"") -> str:
    """The mime type from the name; for unknown names, ``text/plain`` if the content looks like text."""
    base = _base(name)
    mime, encoding = _table.guess_type(base, strict=False)
    if encoding in _ENCODING_MIME:
        return _ENCODING_MIME[encoding]
    if mime:
        return mime
    if head and b"\x00" not in head:
        try:
            head.decode("utf-8")
            return "text/plain"
        except UnicodeDecodeError as exc:
            if exc.start >= len(head) - 3 and exc.reason == "unexpected end of data":
                return "text/plain"  # a multibyte character cut at the sniffing boundary
    return "application/octet-stream"
