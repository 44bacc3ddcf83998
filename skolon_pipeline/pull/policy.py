"""What a pull is, without the HTTP stack: the entities it fetches, its limits and its error.

The client (skolon_pipeline.pull.client: httpx, authlib, tenacity) is imported only when an API source is pulled,
so a night of file sources does not import it (importing the night and the Dagster definitions: 1.11-1.13 s
with it, 1.05-1.06 s without).
"""

from __future__ import annotations

from dataclasses import dataclass

from skolon_pipeline.sources.drops import SourceError

# The entities the reader needs (skolon_pipeline.sources.ss12000.ENTITIES), with their /deletedEntities names.
ENTITY_TYPES: dict[str, str] = {
    "organisations": "Organisation",
    "persons": "Person",
    "duties": "Duty",
    "groups": "Group",
    "activities": "Activity",
}


class PullError(SourceError):
    """The pull of a source failed: one line naming the source, the endpoint and the problem."""

    def __init__(self, source_id: str, problem: str):
        super().__init__(source_id, None, f"pull failed: {problem}")


@dataclass(frozen=True)
class PullPolicy:
    """Limits of one pull that sources.yaml does not set (tests make the waits tiny)."""

    request_timeout: float = 60.0  # seconds: connect, read and write of one request
    max_attempts: int = 8  # per request, the first one included
    initial_wait: float = 1.0  # seconds before the first retry; doubled per retry up to max_wait
    max_wait: float = 60.0
    jitter: float = 1.0  # up to this many seconds added at random to each wait
    max_pages: int = 100_000  # per entity: a server that never stops paging fails the pull
    token_leeway: int = 30  # a token is renewed this many seconds before it expires
