"""Domain errors are worded by each API tree: the 2021 words give exactly the messages the 2021 wire
has always shown, another tree's words change the terms and nothing else, and text a client sent is
never read as a placeholder."""

from __future__ import annotations

import pytest

from packyard.domain import validation as check
from packyard.domain.commands import IterationRef
from packyard.domain.errors import DomainError, InvalidArgument, NotFound, Term
from packyard.domain.lookup import missing
from packyard.domain.rules import Limits
from packyard.http.hcp_2021.words import WORDS

# What a 2023-01-01 tree might say instead (only the terms that differ).
OTHER = {Term.ITERATION: "version", Term.ITERATIONS: "versions", Term.BUCKET_SLUG: "bucket_name"}


def refusal(call: object, *args: object, **kwargs: object) -> DomainError:
    with pytest.raises(DomainError) as caught:
        call(*args, **kwargs)  # type: ignore[operator]
    return caught.value


def test_every_term_has_its_2021_words() -> None:
    assert set(WORDS) == set(Term)


@pytest.mark.parametrize(
    ("error", "text_2021", "text_other"),
    [
        (
            missing("app", IterationRef(incremental_version=3)),
            "bucket 'app' has no iteration with incremental version 3",
            "bucket 'app' has no version with incremental version 3",
        ),
        (
            missing("app", IterationRef(fingerprint="f1", incremental_version=3)),
            "bucket 'app' has no iteration with fingerprint 'f1'",
            "bucket 'app' has no version with fingerprint 'f1'",
        ),
        (
            refusal(check.ulid, "nope", "{iteration_id}"),
            "iteration_id 'nope' is not a valid ULID",
            "iteration_id 'nope' is not a valid ULID",
        ),
        (
            refusal(check.slug, "-x-"),
            "bucket_slug '-x-' is not valid: use " + check.SLUG_RULE,
            "bucket_name '-x-' is not valid: use " + check.SLUG_RULE,
        ),
        (
            refusal(check.text, "a" * 5, "{images_field}[{n}].{image_id}", 4, n=2),
            "images[2].image_id is longer than 4 characters",
            "images[2].image_id is longer than 4 characters",
        ),
        (
            NotFound(
                "{iteration} {id} does not exist in {where}", subject=Term.ITERATION, id="01H", where="bucket 'b'"
            ),
            "iteration 01H does not exist in bucket 'b'",
            "version 01H does not exist in bucket 'b'",
        ),
    ],
)
def test_2021_words_and_another_trees(error: DomainError, text_2021: str, text_other: str) -> None:
    assert error.render(WORDS) == text_2021
    assert error.render(OTHER) == text_other


def test_a_field_named_by_a_term_alone_is_worded() -> None:
    assert refusal(check.slug, "").render(OTHER) == "bucket_name is required"
    assert refusal(check.labels, {"": "v"}, "labels", Limits()).render(WORDS) == "labels has an empty key"


def test_client_text_is_never_a_placeholder() -> None:
    error = refusal(check.slug, "{iteration}{0}{", "channel slug")
    assert error.render(WORDS) == "channel slug '{iteration}{0}{' is not valid: use " + check.SLUG_RULE
    labels = refusal(check.labels, {"{iteration}": "\x00"}, "labels", Limits())
    assert labels.render(OTHER) == "labels key '{iteration}' or its value contains a NUL character"


def test_plain_messages_are_shown_as_they_are() -> None:
    error = InvalidArgument("a {brace} stays")
    assert error.render(WORDS) == error.message == str(error) == "a {brace} stays"
    assert error.subject is None


def test_without_words_the_domain_uses_its_own() -> None:
    error = NotFound("{iteration} x; {create_registry}", subject=Term.REGISTRY)
    assert error.message == "iteration x; CreateRegistry"
    assert error.render(WORDS) == "iteration x; PUT .../registry"
    assert error.subject is Term.REGISTRY
