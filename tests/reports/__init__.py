"""Tests of ci_sidecar.reports."""
