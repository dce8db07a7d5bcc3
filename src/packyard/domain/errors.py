"""Domain errors. Each carries the gRPC status code that HCP's clients branch on.

Errors name their subject in the domain's words, and each API tree words them in its own vocabulary
(2021-04-30 says "iteration" and "image" where 2023-01-01 says "version" and "artifact"). A message is
either plain text or a template:

- plain text: `NotFound(f"bucket {slug!r} does not exist")`, shown as it is by every tree;
- a template, when the error is given a `subject`, any values, or template=True: str.format syntax, where `{name}` is
  one of the values and `{iteration}` (any Term's value) is the tree's word for that term:
  `NotFound("{iteration} {id} does not exist", subject=Term.ITERATION, id=iteration_id)`. Values are
  put in by the same pass that words the terms, so text a client sent is never read as a
  placeholder; literal braces in a template are doubled. domain/validation.py's helpers take the
  field they check as such a fragment ("labels", "{iteration_id}", "{images_field}[{n}].{image_id}").

The one place a message is worded is http/app.py's `except DomainError` branch: `exc.render(words)`
with the route's table (Route.words; http/hcp_2021/words.py for 2021-04-30). Without a table (the
command line, logs), `message` uses each Term's default, the domain's own word.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class Term(StrEnum):
    """The domain's words that an API tree may name otherwise: nouns, and the fields and operations a
    message points the client to. The value is the placeholder's name in templates."""

    # nouns
    BUCKET = "bucket"
    BUILD = "build"
    CHANNEL = "channel"
    REGISTRY = "registry"
    ITERATION = "iteration"
    ITERATIONS = "iterations"
    VERSION = "version"  # an iteration's incremental version, in prose
    IMAGE = "image"
    IMAGES = "images"
    # fields of the commands, as a client names them
    BUCKET_SLUG = "bucket_slug"
    ITERATION_ID = "iteration_id"
    VERSION_FIELD = "version_field"
    SOURCE_ITERATION_ID = "source_iteration_id"
    IMAGES_FIELD = "images_field"
    IMAGE_ID = "image_id"
    COMPONENT_TYPE = "component_type"
    CLOUD_PROVIDER = "cloud_provider"
    # operations a message tells the client to call
    CREATE_REGISTRY = "create_registry"
    ACTIVATE_REGISTRY = "activate_registry"
    REGENERATE_HMAC_KEY = "regenerate_hmac_key"

    @property
    def default(self) -> str:
        return _DEFAULTS.get(self, self.value)


_DEFAULTS = {
    Term.VERSION: "incremental version",
    Term.VERSION_FIELD: "incremental_version",
    Term.IMAGES_FIELD: "images",
    Term.CREATE_REGISTRY: "CreateRegistry",
    Term.ACTIVATE_REGISTRY: "UpdateRegistry (activate: true)",
    Term.REGENERATE_HMAC_KEY: "RegenerateTFCRunTaskHmacKey",
}

Words = Mapping[Term, str]


class DomainError(Exception):
    code: int = 2  # UNKNOWN

    def __init__(
        self, message: str, /, *, subject: Term | None = None, template: bool = False, **values: object
    ) -> None:
        self.template = message
        self.subject = subject  # what the error is about, when it is one of the terms
        self.values = values
        self.templated = template or subject is not None or bool(values)
        super().__init__(self.message)

    def render(self, words: Words | None = None) -> str:
        """The message in a tree's words (a Term it doesn't list keeps its default)."""
        if not self.templated:
            return self.template

        def word(term: Term) -> str:
            return words.get(term, term.default) if words else term.default

        names: dict[str, object] = {term.value: word(term) for term in Term}
        names.update(self.values)
        return self.template.format_map(names)

    @property
    def message(self) -> str:
        return self.render()


class InvalidArgument(DomainError):
    code = 3


class NotFound(DomainError):
    code = 5


class AlreadyExists(DomainError):
    code = 6


class PermissionDenied(DomainError):
    code = 7


class FailedPrecondition(DomainError):
    code = 9


class Aborted(DomainError):
    code = 10


class Unauthenticated(DomainError):
    code = 16
