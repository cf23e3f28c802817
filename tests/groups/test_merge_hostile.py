"""``ci-sidecar merge`` with malformed and hostile shard outputs: a clear error naming the file before anything is
published, links out of the downloaded tree left out, and outputs bigger than one message still merged whole."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import scrubbed_env


def _merge(tmp: Path, *inputs: Path) -> subprocess.CompletedProcess[str]:
    (tmp / "merge").mkdir(exist_ok=True)
    return subprocess.run([sys.executable, "-m", "ci_sidecar", "merge", "--private", *map(str, inputs)],
                          env=scrubbed_env(tmp / "merge", CI="false"), cwd=tmp, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize(("doc", "says"), [
    ({"run": "unit", "results": []}, "its run is not an object"),
    ({"run": {"name": "unit", "counts": {"total": "many"}}, "results": []}, "run.counts.total: Expected `int`"),
    ({"run": {"name": "unit"}, "results": [{"name": "ok", "status": "passed"}, {"name": 5, "status": "passed"}]},
     "results[1].name: Expected `str`, got `int`"),
    ("{not json", "not JSON"),
])
def test_a_malformed_results_json_is_named_and_nothing_is_published(short_tmp: Path, doc: object, says: str) -> None:
    """A results.json with a run that is not an object, counts or results of the wrong type, or no JSON at all:
    exit status 2 with the file and the place named, no traceback, no daemon started."""
    shard = short_tmp / "shard-1"
    shard.mkdir()
    (shard / "results.json").write_text(doc if isinstance(doc, str) else json.dumps(doc))
    merged = _merge(short_tmp, shard)
    assert merged.returncode == 2, merged.stderr
    assert f"{(shard / 'results.json').resolve()}: " in merged.stderr and says in merged.stderr, merged.stderr
    assert "Traceback" not in merged.stderr
    assert not (short_tmp / "merge" / "state").exists()  # nothing was started, so nothing was recorded


def test_links_out_of_the_tree_are_skipped_and_big_outputs_merge_whole(short_tmp: Path) -> None:
    """A shard folder whose results.json is a link to a file elsewhere is left out (and said so), an entity bomb
    in a JUnit file is refused unexpanded, and a 20 MB results.json (more than one message) merges completely."""
    outside = short_tmp / "elsewhere.json"
    outside.write_text(json.dumps({"run": {"name": "unit"}, "results": [{"name": "stolen", "status": "failed"}]}))
    shards = short_tmp / "shards"
    (shards / "1").mkdir(parents=True)
    (shards / "2").mkdir()
    (shards / "2" / "results.json").symlink_to(outside)
    big = [{"name": f"test_{i}", "status": "passed", "stdout": "x" * 30_000} for i in range(700)]
    (shards / "1" / "results.json").write_text(json.dumps({"run": {"name": "unit"}, "results": big}))
    (shards / "bomb.xml").write_text('<?xml version="1.0"?><!DOCTYPE b [<!ENTITY a "aaaaaaaaaa">'
                                     '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
                                     '<testsuite name="s"><testcase name="t"><failure message="&b;"/></testcase>'
                                     '</testsuite>')
    merged = _merge(short_tmp, shards)
    assert merged.returncode == 0, merged.stderr
    assert f"skipped {shards / '2' / 'results.json'}: a link leading out of" in merged.stderr
    assert "DTDs and entities are not allowed" in merged.stderr
    assert "run 'unit': success: 700 passed, 0 failed" in merged.stderr, merged.stderr
