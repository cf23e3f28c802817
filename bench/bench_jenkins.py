"""Jenkins end to end: what one multibranch pull-request build of a GitHub repository costs in API calls, and
what 30% injected faults cost in time.

    python bench/bench_jenkins.py [--faults 0.3] [--seeds 1,2,3,4,5] [--results 10000]

The scenario of ``tests/providers/test_jenkins_scenario.py`` (``fakes.jenkins_scenario.World`` on the
provider-neutral ``fakes.scenario``): a real daemon driven by the Python client; 10,000 results with 300 failures in
batches of 100, a sticky PR comment updated once, 20 artifacts, two status contexts; against the fake Jenkins (the
build description, crumbs) and the fake GitHub (check run, statuses, comment). One fault-free run, then one run per
seed with the given share of faults, all in this process.

Prints: API calls to both (Jenkins and GitHub together; artifacts cost none: they are staged in the workspace for
archiveArtifacts), wall time (first write to last delivery) with faults against fault-free. Checks that every
faulty run ends with what the fault-free run shows on Jenkins and the PR; asserts no goal.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_github import main  # noqa: E402  (it puts tests/ and the Python client on sys.path)
from fakes.jenkins_scenario import World  # noqa: E402

if __name__ == "__main__":
    main(World, "github/api.github.com.ci-subset.json", __doc__)
