"""``kmevents verify --versions`` on real Kafka + etcd: history's versions records (closed blocks
and the open block's parts) against a fold of the log; a record that differs is drift."""

from __future__ import annotations

from array import array

import orjson
from kmevents.replay import verify_versions
from kmevents.replay.engine import Target, replay
from kmevents.replay.opening import open_log

from kmevents import layout
from kmevents.adapters import etcd as etcd_adapter
from kmevents.settings import Settings
from kmevents.store import snapshots, touched, versions
from tests.integration.test_processors import ingest_sim, run_worker_until_caught_up
from tests.integration.test_replay import cli
from tests.integration.test_versions_worker import SMALL, _stored


async def _check(s: Settings) -> verify_versions.VersionsCheck:
    async with open_log(s, snapshots=False) as o, etcd_adapter.client(s.etcd) as c:
        return await verify_versions.check(s, o.source, o.cluster, c)


async def test_verify_versions_finds_every_record_equal_then_a_changed_one(isolated: Settings) -> None:
    s = isolated
    await ingest_sim(s, s.cluster, 1730)
    await run_worker_until_caught_up(s, **SMALL)  # its last batch (1500..1729) is live: the open block's part
    blocks, entries = await _stored(s)
    got = await _check(s)
    assert (got.checked, got.open_checked, got.unreadable, got.differ) == (len(entries), 1, 0, [])
    assert got.checked == len(blocks) >= 7 and got.blocks_checked == len(blocks) + 1  # and the open block
    ok = cli(s, "verify", "--cluster", s.cluster, "--versions", "--format", "json", "--no-progress")
    assert ok.returncode == 0, ok.stderr
    assert orjson.loads(ok.stdout)["versions"] == {"checked": len(entries), "open_block_checked": 1,
                                                   "unreadable": 0, "without_record": 0,
                                                   "index_blocks_checked": len(blocks) + 1,
                                                   "differ": 0, "skipped": None}

    # the open block's part with one version changed: found, and named
    gen = f"{s.etcd.prefix}/{layout.live_generation()}"
    async with etcd_adapter.client(s.etcd) as c:
        opened = await touched.read_open(s, c, s.cluster)
        assert opened is not None
        key = layout.versions_open_key(gen, s.cluster, opened.first, opened.first)
        _, kvs = await etcd_adapter.range_at(c, key)
        part = versions.decode(snapshots.decompress(kvs[0].value, "zstd", 0))
        (kind, id), vs = next((k, vs) for k, vs in sorted(part.values.items()) if k[0] == "pod" and vs[-1][1])
        vs[-1] = (vs[-1][0], orjson.dumps({**orjson.loads(vs[-1][1]), "phase": "Tampered"},
                                          option=orjson.OPT_SORT_KEYS))
        raw = versions.encode(s.cluster, part.first, part.last, [(o, part.anns.get(o)) for o in part.applied],
                              part.values)
        await c.put(key, snapshots.compress(raw, versions.LEVEL))
        # and a closed block's entry pointed at another block's chunks
        (first, last), e = sorted(entries.items())[2]
        other = sorted(entries.values(), key=lambda x: x["first"])[3]
        await c.put(layout.versions_index_key(gen, s.cluster, first),
                    orjson.dumps({**other, "first": first, "last": last}, option=orjson.OPT_SORT_KEYS))
    got = await _check(s)
    assert got.checked == len(entries) and got.open_checked == 1
    assert [k for k, _ in got.differ] == [f"versions/{first}..{last}",
                                          f"versions/{opened.first}..{opened.last} (open block)"]
    assert got.differ[1][1].startswith(f"{kind}/{id}: its versions differ"), got.differ
    bad = cli(s, "verify", "--cluster", s.cluster, "--versions", "--no-progress")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "DRIFT: 2 problem(s)" in bad.stdout and f"versions/{first}..{last}" in bad.stdout
    assert "delete the record's entry" in bad.stdout


async def test_verify_versions_finds_a_touched_block_that_lacks_an_entity_its_events_changed(
        isolated: Settings) -> None:
    s = isolated
    await ingest_sim(s, s.cluster, 1730)
    await run_worker_until_caught_up(s, **SMALL)
    blocks, _ = await _stored(s)
    b = blocks[2]
    async with open_log(s, snapshots=False) as o:  # a pod the block's events left in the state
        st = (await replay(o.source, s.cluster, Target(offset=b.last), progress=False)).state
    pod = next(k for k in sorted(st.pods) if b.holds(touched.key("pod", k)))
    thinner = touched.encode(b.first, b.last, b.events, b.max_occurred_at,
                             array("Q", [h for h in b.hashes if h != touched.key("pod", pod)]))
    gen = f"{s.etcd.prefix}/{layout.live_generation()}"
    async with etcd_adapter.client(s.etcd) as c:
        await c.put(layout.touched_index_key(gen, s.cluster, b.first), thinner)
    got = await _check(s)
    assert [k for k, _ in got.differ] == [f"touched/{b.first}..{b.last}"] and f"pod/{pod}" in got.differ[0][1]
    bad = cli(s, "verify", "--cluster", s.cluster, "--versions", "--no-progress")
    assert bad.returncode == 1 and f"touched/{b.first}..{b.last}" in bad.stdout, bad.stdout + bad.stderr
    assert "a history would miss those events" in bad.stdout


async def test_verify_versions_checks_the_host_directory_and_says_the_value_to_put(isolated: Settings) -> None:
    """An agent id whose changes differ from the log's, one missing, one the log never named: each a
    finding whose fix, applied, makes the check clean again."""
    import re

    from kmevents.replay import verify_hosts

    from kmevents.store import hosts

    s = isolated
    await ingest_sim(s, s.cluster, 1730)
    await run_worker_until_caught_up(s, **SMALL)

    async def check() -> verify_hosts.HostsCheck:
        async with open_log(s, snapshots=False) as o, etcd_adapter.client(s.etcd) as c:
            return await verify_hosts.check(s, o.source, o.cluster, c)

    clean = await check()
    assert clean.differ == [] and clean.checked >= 10 and clean.through == 1729 and clean.skipped is None
    gen = f"{s.etcd.prefix}/{layout.live_generation()}"
    p = await _partition(s)
    async with etcd_adapter.client(s.etcd) as c:
        known = await hosts.read_known(c, gen, s.cluster, p)
        (a, ch_a), (b, _) = known.entries[0], known.entries[1]
        await c.put(layout.hosts_key(gen, s.cluster, a), orjson.dumps([[ch_a[0][0], "not-its-host"]]))
        await c.delete(layout.hosts_key(gen, s.cluster, b))
        await c.put(layout.hosts_key(gen, s.cluster, "S-never"), orjson.dumps([[3, "h"]]))
        await c.put(layout.hosts_key(gen, s.cluster, "S-ahead"), orjson.dumps([[10**9, "h"]]))  # past the checkpoint
    bad = await check()
    assert sorted(k for k, _, _ in bad.differ) == sorted([f"hosts/{a}", f"hosts/{b}", "hosts/S-never"])
    out = cli(s, "verify", "--cluster", s.cluster, "--versions", "--no-progress")
    assert out.returncode == 1 and "DRIFT: 3 problem(s)" in out.stdout, out.stdout + out.stderr
    assert "not-its-host from offset" in out.stdout and "host directory: agent ids checked" in out.stdout
    async with etcd_adapter.client(s.etcd) as c:  # apply each fix as written
        for _, _, fix in bad.differ:
            if (m := re.search(r"etcdctl put '([^']+)' '([^']+)'", fix)) is not None:
                await c.put(m.group(1).encode(), m.group(2).encode())
            else:
                m = re.search(r"etcdctl del '([^']+)'", fix)
                assert m is not None, fix
                await c.delete(m.group(1).encode())
    assert (await check()).differ == []
    ok = cli(s, "verify", "--cluster", s.cluster, "--versions", "--format", "json", "--no-progress")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert orjson.loads(ok.stdout)["host_directory"]["differ"] == 0


async def _partition(s: Settings) -> int:
    from kmevents.replay import logsource

    p = await logsource.partition_of(s, s.cluster)
    assert p is not None
    return p
