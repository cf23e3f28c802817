"""Reports: safe streaming JUnit ingestion, Markdown/HTML/JSON/JUnit/annotation rendering, the degrade ladder, badges.

Everything here is pure (no I/O beyond the files and file objects handed in, no network, no daemon state), so
the run service and every provider share one implementation.
"""

from .annotations import escape_data, escape_property, iter_annotations, render_annotations
from .badge import BadgeStyle, badge_svg, run_badge_message, shields_endpoint_json, status_color, text_width
from .degrade import Fitted, cut_markdown, fit_markdown
from .formats import FILE_NAMES, FORMATS, ReportFormat, write_report
from .html import histogram_svg, render_html, write_html
from .json_report import render_json, write_json
from .junit import ParseIssue, iter_junit, sha256_file
from .junit_out import render_junit, write_junit
from .markdown import code_fence, md_escape, render_markdown
from .model import (
    DurationHistogram,
    HistogramBucket,
    ReportArtifact,
    ReportData,
    SlowestTests,
    display_name,
    format_duration,
)
from .shards import balance_text, shards_html, shards_markdown, shards_text

__all__ = [
    "FILE_NAMES",
    "FORMATS",
    "BadgeStyle",
    "DurationHistogram",
    "Fitted",
    "HistogramBucket",
    "ParseIssue",
    "ReportArtifact",
    "ReportData",
    "ReportFormat",
    "SlowestTests",
    "badge_svg",
    "balance_text",
    "code_fence",
    "cut_markdown",
    "display_name",
    "escape_data",
    "escape_property",
    "fit_markdown",
    "format_duration",
    "histogram_svg",
    "iter_annotations",
    "iter_junit",
    "md_escape",
    "render_annotations",
    "render_html",
    "render_json",
    "render_junit",
    "render_markdown",
    "run_badge_message",
    "sha256_file",
    "shards_html",
    "shards_markdown",
    "shards_text",
    "shields_endpoint_json",
    "status_color",
    "text_width",
    "write_html",
    "write_json",
    "write_junit",
    "write_report",
]
