"""Which group a shard joins when the client does not say: the CI's own variables, and `exec --shard I/N`."""

from __future__ import annotations

import argparse

import pytest

from ci_sidecar.exec_cmd import _shard
from ci_sidecar.service.groups.defaults import default_key, default_shard, default_total
from ci_sidecar.service.groups.model import group_run_id, slug


def test_every_parallel_job_of_one_pipeline_gets_one_key_and_its_own_shard() -> None:
    """GitLab's `rspec 3/8` jobs share a key without the `N/M` part; shard numbers count from 0 (CI_NODE_INDEX
    counts from 1); a new pipeline is a new group."""
    jobs = [{"CI_PIPELINE_ID": "77", "CI_PROJECT_PATH": "g/p", "CI_JOB_NAME": f"rspec {i}/8", "CI_NODE_INDEX": str(i),
             "CI_NODE_TOTAL": "8"} for i in range(1, 9)]
    assert len({default_key(env, "unit") for env in jobs}) == 1
    assert [default_shard(env) for env in jobs] == list(range(8))
    assert default_total(jobs[0]) == 8
    assert default_key(dict(jobs[0], CI_PIPELINE_ID="78"), "unit") != default_key(jobs[0], "unit")


def test_circleci_and_github_keys_leave_the_matrix_out() -> None:
    """CircleCI's parallel containers share workflow + job and number themselves from 0; GitHub's matrix jobs
    share run id, attempt and job id; no CI at all gives no key (the client must name one)."""
    circle = [{"CIRCLE_WORKFLOW_ID": "w1", "CIRCLE_JOB": "test", "CIRCLE_NODE_INDEX": str(i),
               "CIRCLE_NODE_TOTAL": "4"} for i in range(4)]
    assert len({default_key(env, "unit") for env in circle}) == 1
    assert [default_shard(env) for env in circle] == [0, 1, 2, 3]
    github = {"GITHUB_RUN_ID": "9", "GITHUB_RUN_ATTEMPT": "1", "GITHUB_JOB": "test", "GITHUB_REPOSITORY": "o/r"}
    assert default_key(github, "unit") == default_key(dict(github, RUNNER_NAME="other"), "unit")
    assert default_key(dict(github, GITHUB_RUN_ATTEMPT="2"), "unit") != default_key(github, "unit")
    assert default_key({"CI": "true"}, "unit") is None and default_shard({}) is None


def test_group_folders_and_run_ids_never_collide_across_keys() -> None:
    """Keys that read alike once made path-safe still get their own folder and merged run."""
    assert slug("a/b") != slug("a b") and slug("a/b").startswith("a-b-")
    assert group_run_id("a/b") != group_run_id("a b")


def test_exec_shard_is_one_based_and_checked() -> None:
    """`--shard 3/8` is the third of eight (shard 2 on the wire); nonsense is refused."""
    assert _shard("3/8") == {"shard": 2, "total": 8}
    for bad in ("0/8", "9/8", "3", "a/b", "-1/2", "1/10001", "\u0661/\u0662", " 1/2", "1/2/3"):
        with pytest.raises(argparse.ArgumentTypeError):
            _shard(bad)
