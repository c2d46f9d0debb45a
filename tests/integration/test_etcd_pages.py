"""Paged etcd reads (issue 17): a prefix of any size is read a page at a time, all at one revision."""

from __future__ import annotations

import logging

import grpc
import pytest

from kmevents.adapters import etcd as etcd_adapter
from kmevents.settings import Settings


async def test_a_prefix_is_read_in_pages_at_the_revision_of_the_first(isolated: Settings) -> None:
    prefix = f"{isolated.etcd.prefix}/pages/".encode()
    async with etcd_adapter.client(isolated.etcd) as c:
        for i in range(0, 2500, 100):
            t = c.transactions
            await c.transaction(compare=[], success=[t.put(prefix + b"%05d" % j, b"v") for j in range(i, i + 100)],
                                failure=[])
        pages = []
        async for rev, kvs in etcd_adapter.range_pages(c, prefix, etcd_adapter.prefix_end(prefix), page=1000):
            pages.append((rev, [kv.key for kv in kvs]))
            if len(pages) == 1:
                await c.put(prefix + b"99999", b"written after the first page")  # not seen: one revision
        assert [len(k) for _, k in pages] == [1000, 1000, 500]
        assert len({rev for rev, _ in pages}) == 1
        keys = [k for _, ks in pages for k in ks]
        assert keys == sorted(keys) and len(set(keys)) == 2500


async def test_a_page_over_the_message_cap_is_read_again_in_smaller_pages(
        isolated: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Pages of large values: the default page would be over the client's cap (RESOURCE_EXHAUSTED
    from gRPC); the read halves the page until it fits, and gives every key, once, in order."""
    prefix = f"{isolated.etcd.prefix}/bigpages/".encode()
    value = b"x" * 2000
    async with etcd_adapter.client(isolated.etcd) as c:
        t = c.transactions
        await c.transaction(compare=[], success=[t.put(prefix + b"%04d" % j, value) for j in range(300)], failure=[])
    monkeypatch.setattr(etcd_adapter, "MAX_RECEIVE_BYTES", 100_000)  # ~45 values a response
    caplog.set_level(logging.INFO, logger="kmevents.adapters.etcd")
    async with etcd_adapter.client(isolated.etcd) as c:
        with pytest.raises(grpc.aio.AioRpcError) as e:  # one request for all: over the cap
            await etcd_adapter.range_at(c, prefix, range_end=etcd_adapter.prefix_end(prefix))
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        pages = [kvs async for _, kvs in etcd_adapter.range_pages(c, prefix, etcd_adapter.prefix_end(prefix))]
    keys = [kv.key for kvs in pages for kv in kvs]
    assert keys == [prefix + b"%04d" % j for j in range(300)]
    assert all(kv.value == value for kvs in pages for kv in kvs)
    assert max(map(len, pages)) <= 45 and len(pages) >= 7
    assert any(r.__dict__.get("page") for r in caplog.records if "over the message cap" in r.getMessage())
