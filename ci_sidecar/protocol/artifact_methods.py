"""Params and results of the artifact methods (PROTOCOL.md §Artifacts), registered in the method table."""

from __future__ import annotations
