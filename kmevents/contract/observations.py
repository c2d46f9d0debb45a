"""Payloads that describe the observation itself rather than the cluster:
snapshot summaries from a resubscription and the adapters' stream checks.
"""

from __future__ import annotations

from pydantic import Field

from kmevents.contract.base import ContractModel, NonEmptyStr


class ClusterSnapshotObserved(ContractModel):
    """A full listing (``SUBSCRIBED`` / ``GET_STATE``) was observed; the diff events
    derived from it follow with this event as their cause."""

    agents: int = Field(ge=0)
    """Agents in the listing."""
    frameworks: int = Field(ge=0)
    """Frameworks in the listing."""
    tasks: int = Field(ge=0)
    """Tasks in the listing."""
    digest: NonEmptyStr
    """Digest of the listing (``sha256:<hex>``), to recognise an identical one."""


class SourceGap(ContractModel):
    """An adapter saw a hole in a source stream's sequence numbers."""

    stream_id: NonEmptyStr
    """The stream."""
    expected_seq: int = Field(ge=0)
    """Sequence number expected next."""
    got_seq: int = Field(ge=0)
    """Sequence number received."""


class SourceClockSkew(ContractModel):
    """An adapter measured a source clock's offset from its own."""

    stream_id: NonEmptyStr
    """The stream."""
    skew_seconds: float
    """Source clock minus adapter clock, seconds (negative: source behind)."""
