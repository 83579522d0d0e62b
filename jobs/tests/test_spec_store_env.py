"""The store settings the executor passes for reading the stage spec itself (TAO_STORE_S3_*, issue 13)."""

from __future__ import annotations

import pytest

from tao_jobs.spec import bootstrap_options
from tao_jobs.store import S3Options


@pytest.mark.parametrize(
    ("env", "want"),
    [
        ({}, None),
        ({"AWS_ENDPOINT_URL": "http://elsewhere:1"}, None),
        (
            {"TAO_STORE_S3_ENDPOINT": "http://127.0.0.1:8333", "TAO_STORE_S3_REGION": "eu-west-1"},
            S3Options(endpoint="http://127.0.0.1:8333", region="eu-west-1", force_path_style=True),
        ),
        (
            {"TAO_STORE_S3_REGION": "us-east-2", "TAO_STORE_S3_PATH_STYLE": "false"},
            S3Options(endpoint=None, region="us-east-2", force_path_style=False),
        ),
    ],
)
def test_bootstrap_options(env, want):
    assert bootstrap_options(env) == want
