"""Image references: ``[host[:port]/]repo[/more][:tag][@sha256:<64 hex>]``, parsed and named as
Docker and containers-image do (the grammar of distribution's ``reference`` package).

berth prepends no default registry: ``busybox`` stays ``busybox:latest``. It is skopeo's docker
transport that reads a name without a host as Docker Hub's (``docker.io/library/busybox``), so
berth folds Docker Hub's spelled-out names back to that short form (Docker's "familiar" names):
``docker.io/library/busybox`` and ``busybox`` then name one stored image.

>>> str(parse_reference("127.0.0.1:5000/test"))
'127.0.0.1:5000/test:latest'
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fsm import validation
from fsm.errors import ConfigError

DEFAULT_TAG = "latest"
NAME_MAX = 255
PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_DOMAIN_LABEL = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
REGISTRY = re.compile(rf"(?:{_DOMAIN_LABEL}(?:\.{_DOMAIN_LABEL})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?")
TAG = re.compile(r"\w[\w.-]{0,127}", re.ASCII)
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
IMAGE_ID = re.compile(r"[0-9a-f]{64}")
DOCKER_HUB = ("docker.io", "index.docker.io")

ALLOWED = ("an image reference [HOST[:PORT]/]NAME[/NAME...][:TAG][@sha256:DIGEST]: NAMEs of "
           "lowercase letters and digits joined by '.', '_', '__' or '-', a TAG of up to 128 "
           "of [A-Za-z0-9_.-] not starting with '.' or '-', a DIGEST of 64 lowercase hex digits")


@dataclass(frozen=True)
class ImageReference:
    """A parsed reference. ``str()`` is the name berth stores the image under."""

    registry: str | None
    repository: str
    tag: str | None
    digest: str | None

    @property
    def name(self) -> str:
        """Registry and repository, without tag or digest."""
        return f"{self.registry}/{self.repository}" if self.registry else self.repository

    def __str__(self) -> str:
        # The digest alone pins the content; a tag beside it would be a second, unverified
        # claim, and containers-image refuses the pair outright.
        if self.digest is not None:
            return f"{self.name}@{self.digest}"
        return f"{self.name}:{self.tag or DEFAULT_TAG}"

    def transport_ref(self) -> str:
        """What skopeo takes after ``docker://``."""
        return str(self)


def parse_reference(text: object, field: str = "reference") -> ImageReference:
    """Parse and normalize ``text``; :class:`ConfigError` naming ``field`` when it is no reference.

    The tag defaults to ``latest`` when neither a tag nor a digest is given.
    """
    if not isinstance(text, str):
        raise ConfigError(field, text, ALLOWED)
    remainder, at, digest = text.partition("@")
    if at and not DIGEST.fullmatch(digest):
        raise ConfigError(field, text, "a digest of the form sha256:<64 lowercase hex digits>")
    name, tag = _split_tag(remainder)
    if tag is not None and not TAG.fullmatch(tag):
        raise ConfigError(field, text, "a tag of 1 to 128 of [A-Za-z0-9_.-], not starting "
                          "with '.' or '-'")
    registry, repository = _split_registry(name)
    if registry is not None and not REGISTRY.fullmatch(registry):
        raise ConfigError(field, text, "a registry host: DNS labels or [IPv6], then :PORT")
    if not all(PATH_COMPONENT.fullmatch(part) for part in repository.split("/")):
        raise ConfigError(field, text, ALLOWED)
    if len(name) > NAME_MAX:
        raise ConfigError(field, text, f"a name (registry and repository) of at most {NAME_MAX} "
                          "characters")
    if registry is None and IMAGE_ID.fullmatch(repository):
        # Docker's rule: 64 hex digits are an image id, so they cannot also be a name.
        raise ConfigError(field, text, "a name that is not 64 hex digits (that is an image id)")
    if registry in DOCKER_HUB:
        registry = None
        if repository.count("/") == 1:
            repository = repository.removeprefix("library/")
    if tag is None and not at:
        tag = DEFAULT_TAG
    return ImageReference(registry, repository, tag, digest if at else None)


def candidates(text: str) -> list[str]:
    """The stored names ``text`` may refer to, most likely first.

    The canonical name, then the legacy names it may have been stored under: images imported
    before references were parsed kept their name as given (``busybox``, or ``busybox`` for
    ``busybox:latest``). A host is never added or dropped, Docker Hub's aside: ``x`` does not
    match ``localhost/x``, as in Docker. An id is not a reference; look ids up before this.
    """
    try:
        reference = parse_reference(text)
    except ConfigError:
        # A legacy name need not parse as a reference (e.g. 'tool_'), yet may name an image.
        validation.image_name(text)
        return [text]
    legacy = [text]
    if reference.digest is None and reference.tag == DEFAULT_TAG:
        legacy.append(reference.name)
    names = [str(reference), *filter(_is_legacy_name, legacy)]
    return list(dict.fromkeys(names))


def _is_legacy_name(name: str) -> bool:
    try:
        validation.image_name(name)
    except ConfigError:
        return False
    return True


def _split_tag(name: str) -> tuple[str, str | None]:
    # A ':' after the last '/' starts the tag; one before it belongs to a registry's port.
    colon = name.rfind(":")
    if colon > name.rfind("/"):
        return name[:colon], name[colon + 1:]
    return name, None


def _split_registry(name: str) -> tuple[str | None, str]:
    first, slash, rest = name.partition("/")
    # Docker's test for a host: a '.' or ':', 'localhost', or an uppercase letter (which a
    # repository may not hold).
    if slash and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        return first, rest
    return None, name
