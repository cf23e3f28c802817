"""GitLab end to end: what one merge-request pipeline costs in API calls, and what 30% injected faults cost in time.

    python bench/bench_gitlab.py [--faults 0.3] [--seeds 1,2,3,4,5] [--results 10000]

The scenario of ``tests/providers/test_gitlab.py`` (``fakes.gitlab.World`` on the provider-neutral
``fakes.scenario``): a real daemon driven by the Python client; 10,000 results with 300 failures in batches of
100, a sticky MR note updated once, 20 artifacts into the generic package registry, two status contexts; against
the loopback fake GitLab. One fault-free run, then one run per seed with the given share of faults (502/503/429
with RateLimit-* headers, resets, lost answers to writes), all in this process.

Prints: REST calls excluding artifact uploads (goal <= 25, live updates included), calls per artifact (one PUT;
a retried upload first looks its file up: the package list and its files), wall time (first write to last
delivery) with faults against fault-free.
Checks that every faulty run ends with what the fault-free run shows on the MR; asserts no goal.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_github import main  # noqa: E402  (it puts tests/ and the Python client on sys.path)
from fakes.gitlab import World  # noqa: E402

if __name__ == "__main__":
    main(World, "gitlab/openapi_v2.ci-subset.json", __doc__, pr="MR")
