"""Pick a renderer by the wire's format name (``render_report``'s ``format`` parameter) and write it to a file."""

from __future__ import annotations

from typing import Literal, TextIO, get_args

from ._text import clip_utf8
from .annotations import iter_annotations
from .degrade import fit_markdown
from .html import write_html
from .json_report import write_json
from .junit_out import write_junit
from .markdown import render_markdown
from .model import ReportData
from .vso import iter_vso

__all__ = ["FILE_NAMES", "FORMATS", "ReportFormat", "write_report"]

ReportFormat = Literal["markdown", "html", "json", "junit", "github-annotations", "azure-vso"]
FORMATS: tuple[str, ...] = get_args(ReportFormat)

#: File names the local provider uses in a run's output folder.
FILE_NAMES: dict[str, str] = {
    "markdown": "report.md",
    "html": "report.html",
    "json": "report.json",
    "junit": "junit.xml",
    "github-annotations": "annotations.txt",
    "azure-vso": "azure-vso.txt",
}


def write_report(data: ReportData, fmt: ReportFormat, fp: TextIO, *, max_bytes: int | None = None,
                 junit_path: str | None = None) -> bool:
    """Write ``data`` in ``fmt`` to ``fp``; returns whether the output was shortened.

    ``junit_path`` is the run's JUnit file that ``azure-vso`` asks the Azure Pipelines agent to publish.

    ``max_bytes`` applies to ``markdown`` (through the degrade ladder), ``github-annotations`` and ``azure-vso``
    (whole lines are dropped from the end). The other formats are complete documents and ignore it: cutting them would make
    them invalid.

    Raises:
        ValueError: an unknown format.
    """
    if fmt == "markdown":
        if max_bytes is None:
            fp.write(render_markdown(data))
            return False
        fitted = fit_markdown(data, max_bytes)
        fp.write(fitted.text)
        return fitted.shortened
    if fmt == "html":
        write_html(data, fp)
    elif fmt == "json":
        write_json(data, fp)
    elif fmt == "junit":
        write_junit(data, fp)
    elif fmt in ("github-annotations", "azure-vso"):
        used = 0
        lines = iter_annotations(data) if fmt == "github-annotations" else iter_vso(data, junit_path)
        for line in lines:
            size = len(line.encode("utf-8")) + 1
            if max_bytes is not None and used + size > max_bytes:
                if used == 0:
                    fp.write(clip_utf8(line, max_bytes - 1) + "\n")
                return True
            fp.write(line + "\n")
            used += size
    else:
        raise ValueError(f"unknown report format {fmt!r}; expected one of {', '.join(FORMATS)}")
    return False
