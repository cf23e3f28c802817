"""The Azure DevOps provider (Azure DevOps Services, or a Server collection): test runs with their results and
attachments, commit and pull request statuses, sticky pull request threads.

Modules: :mod:`.provider` (the class and its tiers), :mod:`.testruns` (test runs), :mod:`.results` (their
results, a rerun test as one result), :mod:`.statuses`, :mod:`.threads` (sticky comments), :mod:`.attachments`
(artifacts), :mod:`.doctor`; :mod:`._api` holds what they share. docs/azure.md is the user's guide.
"""

from __future__ import annotations

from .provider import AzureProvider

__all__ = ["AzureProvider"]
