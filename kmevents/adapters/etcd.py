"""The one module that imports aetcd (etcd v3 over gRPC, asyncio).

What aetcd lacks is filled in here:

- reads at a past revision: aetcd's ``get`` has no revision argument, so
  :func:`range_at` sends the raw ``RangeRequest``. etcd's rule (server/mvcc):
  revision <= 0 means "now"; a compacted revision is an error, surfaced as
  :class:`RevisionCompacted`.
- TLS: aetcd 1.0 only opens insecure channels; :class:`EtcdClient` opens a
  secure one when a CA is configured.
- the server's ``--max-txn-ops``: etcd does not report it, so
  :func:`txn_ops_limit` finds it out with read-only probe transactions.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

# gRPC's fork handlers (on by default in grpcio 1.85) restart its pollers in a forked child and
# skip themselves while another thread is in gRPC: the worker's snapshot children
# (processors/offload.py), which never touch gRPC, then failed or died. Read when gRPC starts.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

import aetcd  # noqa: E402 - after the fork setting above
import grpc  # noqa: E402
from aetcd import rpc  # noqa: E402

from kmevents.errors import EnvironmentProblem, KmeventsError
from kmevents.settings import EtcdSettings

log = logging.getLogger("kmevents.adapters.etcd")

__all__ = ["TRANSIENT_ERRORS", "EtcdAlarm", "EtcdClient", "EtcdRefused", "KV", "RevisionCompacted", "alarm", "client",
           "count_range", "delete_range", "healthy", "range_at", "refused", "txn_if_unchanged", "txn_ops_limit"]

#: Errors after which the same request may succeed later (etcd restarting, leader change).
#: An alarm or a refusal is not one of them: :func:`txn_if_unchanged` raises :class:`EtcdAlarm` or
#: :class:`EtcdRefused` instead.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (grpc.aio.AioRpcError, ConnectionError, TimeoutError)


class EtcdAlarm(EnvironmentProblem):
    """etcd refuses every write until an operator acts (its NOSPACE or CORRUPT alarm is raised):
    retrying only waits. Exit 2 from a command (a worker exits 1, as for any failure)."""


def alarm(exc: BaseException) -> EtcdAlarm | None:
    """The :class:`EtcdAlarm` that ``exc`` reports, or None when it reports none.

    etcd answers a write while an alarm is raised with a fixed status (etcd's
    api/v3rpc/rpctypes): ``RESOURCE_EXHAUSTED "etcdserver: mvcc: database space exceeded"``
    (NOSPACE: the backend reached ``--quota-backend-bytes``) or ``DATA_LOSS "etcdserver: corrupt
    cluster"`` (CORRUPT). ``RESOURCE_EXHAUSTED "etcdserver: too many requests"`` is load, not an
    alarm: it stays transient."""
    if not isinstance(exc, grpc.aio.AioRpcError):
        return None
    code, details = exc.code(), exc.details() or ""
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and "database space exceeded" in details:
        return EtcdAlarm(
            f"etcd's database is full: it refuses writes ({details}) since its backend reached its "
            "quota (--quota-backend-bytes) and raised the NOSPACE alarm",
            hint="free space and disarm the alarm: `etcdctl compact <current revision>`, `etcdctl defrag`, "
                 "`etcdctl alarm disarm`; or restart etcd with a larger --quota-backend-bytes (the local "
                 "stack: KMEVENTS_STACK__ETCD_QUOTA_BYTES). Then start the worker again: it resumes at its "
                 "checkpoint, nothing is lost")
    if code == grpc.StatusCode.DATA_LOSS and "corrupt" in details:
        return EtcdAlarm(
            f"etcd reports its data corrupt ({details}) and raised the CORRUPT alarm: it refuses writes",
            hint="restore etcd from a backup or a healthy member (`etcdctl alarm list` shows the alarm), then "
                 "check the state against the log with `kmevents verify` and `kmevents repair`")
    return None


class EtcdRefused(EnvironmentProblem):
    """etcd refuses this request as it is configured (too large for it, or not this user's to
    write): the same request would be refused again. Exit 2."""


def refused(exc: BaseException) -> EtcdRefused | None:
    """The :class:`EtcdRefused` that a write's error ``exc`` reports, or None.

    A request over etcd's ``--max-request-bytes`` is refused by etcdserver (``INVALID_ARGUMENT
    "etcdserver: request is too large"``) or, when it is also over the server's gRPC cap
    (``--max-request-bytes`` + 512 KiB), by gRPC (``RESOURCE_EXHAUSTED "grpc: received message
    larger than max"``); a user whose role may not write the key gets ``PERMISSION_DENIED``."""
    if not isinstance(exc, grpc.aio.AioRpcError):
        return None
    code, details = exc.code(), exc.details() or ""
    if (code == grpc.StatusCode.INVALID_ARGUMENT and "request is too large" in details) or (
            code == grpc.StatusCode.RESOURCE_EXHAUSTED and "received message larger than max" in details):
        return EtcdRefused(
            f"etcd refuses a request as too large ({details}): its --max-request-bytes is below the request "
            "size kmevents is set to send (KMEVENTS_ETCD__MAX_REQUEST_BYTES, 1.5 MiB by default)",
            hint="set KMEVENTS_ETCD__MAX_REQUEST_BYTES to etcd's --max-request-bytes (etcd's default is 1.5 MiB, "
                 "1572864), or start etcd with a larger one; the worker resumes at its checkpoint")
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return EtcdRefused(
            f"etcd denies this user the write ({details})",
            hint="grant the etcd user's role readwrite on kmevents' prefix (KMEVENTS_ETCD__PREFIX), e.g. "
                 "`etcdctl role grant-permission <role> --prefix=true readwrite /kmevents/`")
    return None


class RevisionCompacted(KmeventsError):
    """The requested revision was compacted away; long-range time travel comes from the log."""

    exit_code = 1


@dataclass(frozen=True)
class KV:
    """One key-value pair as stored: ``mod_revision`` says when it was last written."""

    key: bytes
    value: bytes
    mod_revision: int
    create_revision: int
    version: int


#: The largest response the client takes (gRPC's cap; a page of :func:`range_pages` that would
#: be larger is read in smaller pages).
MAX_RECEIVE_BYTES = 256 * 1024 * 1024

#: Keys a page of :func:`range_pages` asks for by default. etcd 3.4 walks its key index from a
#: page's first key to the range's end to serve each page (it counts the whole rest of the
#: range), so reading N keys costs ~N^2 / (2 * page) index steps: at 377k keys (verify's
#: compare at 1.5M events, BENCHMARKS) pages of 1,000 took 44 s of etcd's time, the first
#: ~165 ms each, where pages of 10,000 take ~9 s, ~215 ms each.
PAGE_KEYS = 10_000


class EtcdClient(aetcd.Client):
    """aetcd's client, plus TLS and client certificates from settings."""

    def __init__(self, settings: EtcdSettings) -> None:
        super().__init__(
            host=settings.host,
            port=settings.port,
            username=settings.username,
            password=settings.password.get_secret_value() if settings.password else None,
            timeout=int(settings.timeout_seconds),
            options={
                "grpc.max_send_message_length": settings.max_request_bytes + 64 * 1024,
                "grpc.max_receive_message_length": MAX_RECEIVE_BYTES,
            },
        )
        self._settings = settings

    async def connect(self) -> None:
        s = self._settings
        if s.ca_cert is None or self._connected.is_set():
            await super().connect()
            return
        creds = grpc.ssl_channel_credentials(
            root_certificates=s.ca_cert.read_bytes(),
            private_key=s.cert_key.read_bytes() if s.cert_key else None,
            certificate_chain=s.cert_cert.read_bytes() if s.cert_cert else None,
        )
        original = rpc.insecure_channel
        rpc.insecure_channel = lambda target, options=None: grpc.aio.secure_channel(
            target, creds, options=options
        )
        try:
            await super().connect()
        finally:
            rpc.insecure_channel = original


def client(settings: EtcdSettings) -> EtcdClient:
    """A client for ``settings``; use ``async with client(s) as c:`` (connects on enter)."""
    return EtcdClient(settings)


async def range_at(
    c: EtcdClient, key: bytes, *, range_end: bytes | None = None, revision: int = 0, limit: int = 0,
    descending: bool = False,
) -> tuple[int, list[KV]]:
    """Keys in ``[key, range_end)`` (or just ``key``) as of ``revision``, the last ones first
    when ``descending`` (with ``limit``: the ``limit`` greatest keys of the range).

    ``revision <= 0`` means the latest. Returns ``(header_revision, kvs)``;
    the header revision is the store's revision when the read was served,
    so a caller can repeat reads at exactly that point.
    """
    await c.connect()
    req = rpc.RangeRequest(key=key, revision=max(revision, 0), limit=limit)
    if range_end is not None:
        req.range_end = range_end
    if descending:
        req.sort_order = rpc.RangeRequest.DESCEND
        req.sort_target = rpc.RangeRequest.KEY
    try:
        resp = await c.kvstub.Range(req, timeout=c._timeout, metadata=c.metadata)
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.OUT_OF_RANGE:
            raise RevisionCompacted(
                f"etcd revision {revision} was compacted",
                hint="read a newer revision, or rebuild the past from the log with `kmevents state --offset`",
            ) from exc
        raise
    kvs = [KV(kv.key, kv.value, kv.mod_revision, kv.create_revision, kv.version) for kv in resp.kvs]
    return resp.header.revision, kvs


async def range_pages(c: EtcdClient, key: bytes, range_end: bytes, *, page: int = PAGE_KEYS,
                      revision: int = 0) -> AsyncIterator[tuple[int, list[KV]]]:
    """The keys in ``[key, range_end)`` in key order, ``page`` at a time, all at ONE revision:
    ``revision`` (``<= 0``: the latest when the first page is read). Yields
    ``(revision, kvs)``. No request carries more than a page, so a prefix of any size is
    read within the client's message cap (a 377k-key prefix in one request is 422 MB
    against gRPC's 256 MiB) and the caller holds one page at a time. A page that would be
    larger than the cap (``RESOURCE_EXHAUSTED``: large values) is asked for again with half
    as many keys, and the pages after it too, down to one key."""
    start = key
    while True:
        try:
            rev, kvs = await range_at(c, start, range_end=range_end, revision=revision, limit=page)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED or page <= 1:
                raise
            page //= 2
            log.info("etcd page over the message cap: asking for fewer keys",
                     extra={"key": start.decode(errors="replace"), "page": page})
            continue
        if revision <= 0:
            revision = rev
        if kvs:
            yield revision, kvs
        if len(kvs) < page:
            return
        start = kvs[-1].key + b"\0"


async def count_range(c: EtcdClient, key: bytes, range_end: bytes) -> int:
    """How many keys ``[key, range_end)`` holds now (etcd counts; no value is sent)."""
    await c.connect()
    req = rpc.RangeRequest(key=key, range_end=range_end, count_only=True)
    resp = await c.kvstub.Range(req, timeout=c._timeout, metadata=c.metadata)
    return int(resp.count)


async def delete_range(c: EtcdClient, key: bytes, range_end: bytes) -> int:
    """Delete every key in ``[key, range_end)`` (one request); how many were deleted."""
    await c.connect()
    req = rpc.DeleteRangeRequest(key=key, range_end=range_end)
    resp = await c.kvstub.DeleteRange(req, timeout=c._timeout, metadata=c.metadata)
    return int(resp.deleted)


def prefix_end(prefix: bytes) -> bytes:
    """The range end that selects every key starting with ``prefix``."""
    b = bytearray(prefix)
    for i in range(len(b) - 1, -1, -1):
        if b[i] < 0xFF:
            b[i] += 1
            return bytes(b[: i + 1])
    return b"\0"


def healthy(settings: EtcdSettings, timeout: float = 2.0) -> bool:
    """True when etcd's ``/health`` endpoint reports healthy (plain HTTP, no gRPC)."""
    info = health_detail(settings, timeout)
    return bool(info.get("health") in (True, "true"))


def health_detail(settings: EtcdSettings, timeout: float = 2.0) -> dict[str, Any]:
    if settings.endpoint.startswith("https://"):
        # /health over TLS needs the client certs; trust the gRPC path there.
        return {"health": "unknown"}
    try:
        with urllib.request.urlopen(f"{settings.endpoint}/health", timeout=timeout) as resp:  # noqa: S310
            return dict(json.loads(resp.read()))
    except (urllib.error.URLError, OSError, ValueError):
        return {"health": False}


_VARINT1 = [bytes((n,)) for n in range(128)]


def _varint(n: int) -> bytes:
    if n < 128:
        return _VARINT1[n]
    out = bytearray()
    while n >= 128:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _varint_len(n: int) -> int:
    return 1 if n < 1 << 7 else 2 if n < 1 << 14 else 3 if n < 1 << 21 else 4 if n < 1 << 28 else 5


def txn_request_bytes(guard_key: bytes, guard_mod_revision: int, ops: dict[bytes, bytes | None]) -> bytes:
    """``TxnRequest(compare=[mod(guard_key) == guard_mod_revision], success=[put or delete of
    each op])`` serialized, without building a message per op (~2 us each through protobuf: a
    worker's transaction holds ~1,000). The bytes are protobuf's own (fields in number order,
    empty bytes fields left out; tests/unit/adapters/test_etcd_txn_bytes.py compares them):

        TxnRequest.success (2)          -> RequestOp
        RequestOp.request_put (2)       -> PutRequest {key (1), value (2)}
        RequestOp.request_delete_range (3) -> DeleteRangeRequest {key (1)}
    """
    compare = rpc.Compare(result=rpc.Compare.EQUAL, target=rpc.Compare.MOD, key=guard_key,
                          mod_revision=guard_mod_revision).SerializeToString()
    parts = [b"\x0a", _varint(len(compare)), compare]
    add, v1, vlen = parts.extend, _varint, _varint_len
    for k, v in ops.items():
        lk = len(k)
        key_field = 1 + vlen(lk) + lk if lk else 0
        if v is None:
            add((b"\x12", v1(1 + vlen(key_field) + key_field), b"\x1a", v1(key_field)))
        else:
            lv = len(v)
            inner = key_field + (1 + vlen(lv) + lv if lv else 0)
            add((b"\x12", v1(1 + vlen(inner) + inner), b"\x12", v1(inner)))
        if lk:
            add((b"\x0a", v1(lk), k))
        if v:
            add((b"\x12", v1(len(v)), v))
    return b"".join(parts)


async def txn_if_unchanged(
    c: EtcdClient, guard_key: bytes, guard_mod_revision: int, ops: dict[bytes, bytes | None]
) -> tuple[bool, int]:
    """Apply ``ops`` (``None`` deletes) only if ``guard_key`` is still at ``guard_mod_revision``.

    ``guard_mod_revision == 0`` means "the key must not exist". Returns
    ``(succeeded, revision)``: the store's revision after the transaction, which
    is the new ``mod_revision`` of every key it wrote. This is the fencing
    compare of the processors' checkpoints. Raises :class:`EtcdAlarm` when etcd refuses writes
    until an operator acts (:func:`alarm`), and :class:`EtcdRefused` when it refuses this request
    as it is configured (:func:`refused`): not errors a retry could get past.
    """
    await c.connect()
    req = txn_request_bytes(guard_key, guard_mod_revision, ops)
    try:
        resp = await _raw_txn(c)(req, timeout=c._timeout, metadata=c.metadata)
    except grpc.aio.AioRpcError as exc:
        raised = alarm(exc) or refused(exc)
        if raised is not None:
            raise raised from None
        raise
    return bool(resp.succeeded), int(resp.header.revision)


def _raw_txn(c: aetcd.Client) -> Any:
    """The client's channel's ``KV/Txn`` taking a request already serialized (one per channel:
    a reconnect makes a new channel)."""
    ch = c.channel
    got = getattr(c, "_kmevents_raw_txn", None)
    if got is None or got[0] is not ch:
        got = (ch, ch.unary_unary("/etcdserverpb.KV/Txn", request_serializer=None,
                                  response_deserializer=rpc.TxnResponse.FromString))
        c._kmevents_raw_txn = got
    return got[1]


_PROBE_KEY = b"\x00kmevents/txn-ops-probe"  # never written: the probe only reads it


async def txn_ops_limit(c: EtcdClient, wanted: int, floor: int = 128) -> int:
    """The largest of ``wanted``, ``wanted // 2``, ... (not below ``floor``) that etcd accepts.

    etcd rejects a transaction with more operations in a branch than its
    ``--max-txn-ops`` (default 128) with ``INVALID_ARGUMENT: too many
    operations in txn request``, and no API reports the setting. The probe is a
    read-only transaction of ``n`` range requests on one unused key, so it
    writes nothing and costs one round trip per halving. Any other error
    propagates.
    """
    await c.connect()
    read = rpc.RequestOp(request_range=rpc.RangeRequest(key=_PROBE_KEY, count_only=True))
    n = wanted
    while n > floor:
        req = rpc.TxnRequest(compare=[], success=[read] * n, failure=[])
        try:
            await c.kvstub.Txn(req, timeout=c._timeout, metadata=c.metadata)
            return n
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.INVALID_ARGUMENT or "too many operations" not in (exc.details() or ""):
                raise
        n //= 2
    return max(min(wanted, floor), 2)
