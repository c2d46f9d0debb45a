"""Paged etcd reads (issue 17): a prefix of any size is read a page at a time, all at one revision."""

from __future__ import annotations

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
