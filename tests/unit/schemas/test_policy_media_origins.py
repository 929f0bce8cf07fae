"""``review.media_origins``: the origins a project's item media may load from (the CSP)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from loupe.schemas import ProjectPolicy, ReviewPolicy
from loupe.schemas.policy import MAX_MEDIA_ORIGINS


@pytest.mark.parametrize(
    "origin",
    [
        "https://media.example.com",
        "https://media.example.com:8443",
        "https://10.0.0.7",
        "http://localhost:8080",
        "http://127.0.0.1:9000",
        "http://[::1]:9000",
    ],
)
def test_an_https_origin_or_a_loopback_http_origin_is_accepted(origin: str) -> None:
    assert ReviewPolicy(media_origins=[origin]).media_origins == [origin]


@pytest.mark.parametrize(
    "origin",
    [
        "http://media.example.com",  # http only on loopback
        "http://10.0.0.7",
        "https://media.example.com/",  # an origin has no path
        "https://media.example.com/images",
        "https://media.example.com?x=1",
        "https://user@media.example.com",
        "https://*.example.com",  # no wildcards
        "https:",
        "https://",
        "*",
        "data:",
        "'self'",
        "ftp://media.example.com",
        "HTTPS://Media.Example.com",  # lower case only (no coercion)
        "https://media.example.com:0",
        "https://media.example.com:65536",
        "https://media.example.com; script-src *",  # nothing that could end the directive
        "https://media.example.com https://evil.example",
        "https://[::g]",
        "https://" + "a" * 250 + ".com",  # at most 255 characters
    ],
)
def test_anything_but_an_origin_is_refused(origin: str) -> None:
    with pytest.raises(ValidationError):
        ReviewPolicy(media_origins=[origin])


def test_the_list_is_bounded_and_empty_by_default() -> None:
    assert ReviewPolicy().media_origins == []
    many = [f"https://m{n}.example.com" for n in range(MAX_MEDIA_ORIGINS + 1)]
    assert len(ReviewPolicy(media_origins=many[:-1]).media_origins) == MAX_MEDIA_ORIGINS
    with pytest.raises(ValidationError):
        ReviewPolicy(media_origins=many)


def test_a_policy_document_carries_its_media_origins() -> None:
    doc = {
        "project": "demo",
        "label_schema": {"id": "animals", "version": 1, "classes": ["cat"]},
        "review": {"media_origins": ["https://media.example.com"]},
    }
    policy = ProjectPolicy.model_validate(doc)
    assert policy.review.media_origins == ["https://media.example.com"]
