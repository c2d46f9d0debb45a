"""Packing state changes into etcd transactions under etcd's limits (pure logic).

A batch maps etcd keys to whole values (``None`` = delete), so several events
changing one key coalesce into one write. :class:`TxnPlanner` decides when the
batch is full: one operation is always reserved for the checkpoint put, and a
margin of the request size for the compare and framing.

``split(ops)`` cuts one oversized effect (an agent lost with hundreds of
tasks) into several transactions; the caller puts the checkpoint into the
last one only, so a crash in between re-applies the same whole values.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

#: Bytes per operation beyond key and value (protobuf framing), conservatively.
OP_OVERHEAD = 32
#: Bytes kept free in every request for the compare, the checkpoint and framing.
REQUEST_MARGIN = 16 * 1024


@dataclass(frozen=True)
class Limits:
    max_ops: int
    max_bytes: int

    @property
    def op_budget(self) -> int:
        return self.max_ops - 1  # the checkpoint put

    @property
    def byte_budget(self) -> int:
        return self.max_bytes - REQUEST_MARGIN


def op_size(key: bytes, value: bytes | None) -> int:
    return len(key) + (len(value) if value else 0) + OP_OVERHEAD


class ValueTooLarge(Exception):
    """One value cannot fit a single etcd request, whatever the batching."""

    def __init__(self, key: bytes, size: int, limit: int) -> None:
        super().__init__(f"value of {key.decode(errors='replace')} is {size:,} bytes; etcd accepts {limit:,}")
        self.key, self.size, self.limit = key, size, limit


def fits(ops: dict[bytes, bytes | None], limits: Limits) -> bool:
    return len(ops) <= limits.op_budget and sum(op_size(k, v) for k, v in ops.items()) <= limits.byte_budget


def split(ops: dict[bytes, bytes | None], limits: Limits) -> Iterator[dict[bytes, bytes | None]]:
    """Cut ``ops`` into chunks that each fit one transaction (with room for the checkpoint)."""
    chunk: dict[bytes, bytes | None] = {}
    size = 0
    for k, v in ops.items():
        s = op_size(k, v)
        if s > limits.byte_budget:
            raise ValueTooLarge(k, s, limits.byte_budget)
        if chunk and (len(chunk) >= limits.op_budget or size + s > limits.byte_budget):
            yield chunk
            chunk, size = {}, 0
        chunk[k] = v
        size += s
    if chunk:
        yield chunk
