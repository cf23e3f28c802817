"""Azure DevOps end to end: what one pull-request build costs in REST calls, and what 30% injected faults cost.

    python bench/bench_azure.py [--faults 0.3] [--seeds 1,2,3,4,5] [--results 10000]

The scenario of ``tests/providers/test_azure_scenario.py`` (``fakes.azure_scenario.World`` on the
provider-neutral ``fakes.scenario``): a real daemon driven by the Python client; 10,000 results with 300 failures
in batches of 100 (sent to Azure 1,000 per request), a sticky PR thread updated once, 20 artifacts as test-run
attachments, two status contexts (commit and PR statuses); against the loopback fake Azure DevOps. One fault-free
run, then one run per seed with the given share of faults (502/503/429 TF400733, resets, lost answers to writes),
all in this process.

Prints: REST calls excluding attachments (goal <= 25, live updates included), calls per attachment, wall time
(first write to last delivery) with faults against fault-free. Checks that every faulty run ends with what the
fault-free run shows; asserts no goal.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_github import main  # noqa: E402  (it puts tests/ and the Python client on sys.path)
from fakes.azure_scenario import TEST_SPEC, World  # noqa: E402

if __name__ == "__main__":
    main(World, TEST_SPEC, __doc__, pr="build and PR")
