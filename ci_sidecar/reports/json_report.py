"""The machine-readable report: run, CI context, failures, slowest, histogram and every result, as JSON.

Written piece by piece so the ``results`` array is streamed from the run's records, never built in memory.
Field names are the wire names of :mod:`ci_sidecar.protocol.records`.
"""

from __future__ import annotations

import io
from typing import TextIO

import msgspec

from .model import ReportData

__all__ = ["render_json", "write_json"]

_encoder = msgspec.json.Encoder()


def _enc(value: object) -> str:
    return _encoder.encode(value).decode("utf-8")


def write_json(data: ReportData, fp: TextIO) -> None:
    """Write ``{"run", "ci", "failures", "slowest", "histogram", "full_report_url", "results"}`` to ``fp``.

    ``results`` is present only when the run has per-test results (``data.results`` is set).
    """
    fp.write('{"run":' + _enc(data.run))
    fp.write(',"ci":' + _enc(data.ci))
    fp.write(',"failures":' + _enc(data.failures))
    fp.write(',"slowest":' + _enc(data.slowest))
    fp.write(',"histogram":' + _enc(data.histogram))
    fp.write(',"full_report_url":' + _enc(data.full_report_url))
    if data.results is not None:
        fp.write(',"results":[')
        for i, result in enumerate(data.iter_results()):
            fp.write(("," if i else "") + _enc(result))
        fp.write("]")
    fp.write("}\n")


def render_json(data: ReportData) -> str:
    """The JSON report as one string."""
    buf = io.StringIO()
    write_json(data, buf)
    return buf.getvalue()
