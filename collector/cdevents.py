"""The CDEvents vocabulary: which `dev.cdevents.<subject>.<predicate>.<version>` types exist.

Built from the CDEvents specification 0.3 to 0.5; custom events (`dev.cdeventsx.…`, spec 0.4+)
are accepted with any subject and predicate.
"""

import functools
import re

TYPE_PATTERN = re.compile(
    r"^dev\.cdevents(?P<custom>x)?\.(?P<subject>[a-z][a-z0-9-]*)\.(?P<predicate>[a-z][a-z0-9-]*)"
    r"\.(?P<version>\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?)$"
)

PREDICATES: dict[str, frozenset[str]] = {
    "artifact": frozenset({"packaged", "published", "signed", "downloaded", "deleted"}),
    "branch": frozenset({"created", "deleted"}),
    "build": frozenset({"queued", "started", "finished"}),
    "change": frozenset({"created", "updated", "reviewed", "merged", "abandoned"}),
    "environment": frozenset({"created", "modified", "deleted"}),
    "incident": frozenset({"detected", "reported", "resolved"}),
    "pipelinerun": frozenset({"queued", "started", "finished"}),
    "repository": frozenset({"created", "modified", "deleted"}),
    "service": frozenset({"deployed", "upgraded", "rolledback", "removed", "published"}),
    "taskrun": frozenset({"started", "finished"}),
    "testcaserun": frozenset({"queued", "started", "finished", "skipped"}),
    "testsuiterun": frozenset({"queued", "started", "finished"}),
    "testoutput": frozenset({"published"}),
    "ticket": frozenset({"created", "updated", "closed"}),
    # CDEvents 0.3 names, replaced by testcaserun / testsuiterun / testoutput in 0.4.
    "testcase": frozenset({"queued", "started", "finished"}),
    "testsuite": frozenset({"started", "finished"}),
}


class UnknownType(ValueError):
    pass


@functools.lru_cache(maxsize=1024)  # a stream repeats a few dozen types: parse each once
def parse_type(event_type: str) -> tuple[str, str, str]:
    """Split a CDEvents type into (subject, predicate, version); UnknownType names the problem."""
    match = TYPE_PATTERN.fullmatch(event_type)
    if match is None:
        raise UnknownType(
            "is not a CDEvents type (expected dev.cdevents.<subject>.<predicate>.<version>)"
        )
    subject, predicate = match["subject"], match["predicate"]
    if not match["custom"] and predicate not in PREDICATES.get(subject, ()):
        raise UnknownType(
            f"is not a known CDEvents type: no subject {subject!r} with predicate {predicate!r}"
            " (custom events use dev.cdeventsx.<subject>.<predicate>.<version>)"
        )
    return subject, predicate, match["version"]
