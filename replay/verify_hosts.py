"""``kmevents verify --versions``, its last part: the worker's host directory against the log.

``kmevents search`` names an agent by host, and finds by host the events that name only its id,
from the host directory the worker keeps (kmevents/store/hosts.py: per agent id, the offsets at
which the log named its host). A wrong entry names agents wrongly in every search that begins
after it, with nothing else amiss. This check reads the cluster's log from its start up to the
partition's checkpoint (the directory and the checkpoint read at one etcd revision), learns what
the worker learns (only the records whose bytes may say a host are decoded), and compares each
agent id's changes with the stored ones (changes past the checkpoint are a batch in flight's: not
compared). A difference is a finding of kind ``versions`` whose fix is the value to put.

Cost at the large profile: one read of the log (~1.5M records fetched, ~20 % decoded: the offers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from kmevents.replay.sources import Source

from kmevents import chain, layout
from kmevents.contract import DecodeError, decode_fast
from kmevents.progress import progress_bar
from kmevents.settings import Settings
from kmevents.store import hosts

#: What a record that says a host holds: its type, quoted (``"agent.`` for both agent types), or an escape
#: that may spell one (tests/unit/store/test_hosts.py holds them to ``hosts.LEARNS``).
OFFER, POD, AGENT, ESCAPE = b'"offer.offered"', b'"pod.scheduled"', b'"agent.', b"\\u"
NEEDLES: Final = (OFFER, POD, AGENT, ESCAPE)


@dataclass
class HostsCheck:
    """What :func:`check` found: agent ids compared, the checkpoint they were compared up to, and
    ``(key, detail, fix)`` of each id whose stored changes differ from the log's."""

    checked: int = 0
    through: int = -1
    differ: list[tuple[str, str, str]] = field(default_factory=list)
    skipped: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"ids_checked": self.checked, "through_offset": self.through, "differ": len(self.differ),
                "skipped": self.skipped}


def _shown(changes: list[tuple[int, str]] | None) -> str:
    return "nothing" if not changes else ", ".join(f"{h} from offset {o}" for o, h in changes)


async def check(settings: Settings, src: Source, cluster: str, client: Any, *, progress: bool = False,
                generation: str | None = None) -> HostsCheck:
    """Compare the cluster's host directory with what the records of ``src`` (its log from the start)
    say, up to the partition's checkpoint."""
    out = HostsCheck()
    partition = getattr(src, "partition", None)
    if await src.chain_start() != chain.GENESIS or type(partition) is not int:
        out.skipped = "the log read does not start at the log's beginning (the directory holds what the whole log says)"
        return out
    prefix = f"{settings.etcd.prefix}/{layout.base_generation(generation or layout.live_generation())}"
    known = await hosts.read_known(client, prefix, cluster, partition)
    out.through = known.through
    learnt = hosts.Directory()
    first, _ = await src.covers()
    with progress_bar("verify: the host directory", total=max(0, known.through - first + 1),
                      disable=not progress) as bar:
        async for batch in src.batches(first, known.through):
            for rec in batch:
                v = rec.value or b""
                if not (OFFER in v or POD in v or AGENT in v or ESCAPE in v):  # (inline: 0.4 us a record)
                    continue
                try:
                    named = hosts.host_named(decode_fast(v))
                except DecodeError:
                    continue
                if named is not None:
                    learnt.note(rec.offset, *named)
            bar.advance(len(batch))
    stored = {aid: [(o, h) for o, h in changes if o <= known.through] for aid, changes in known.entries}
    stored = {aid: ch for aid, ch in stored.items() if ch}
    folded = {aid: [(int(o), str(h)) for o, h in ch] for aid, ch in learnt.changes.items()}
    for aid in sorted(set(stored) | set(folded)):
        out.checked += 1
        want, got = folded.get(aid), stored.get(aid)
        if want == got:
            continue
        key = layout.hosts_key(prefix, cluster, aid).decode()
        fix = (f"put the log's value with no worker running, then start them (a worker reads the directory when it "
               f"takes the partition): etcdctl put '{key}' '{orjson.dumps(want).decode()}'" if want else
               f"delete the key with no worker running: etcdctl del '{key}'")
        out.differ.append((f"hosts/{aid}", f"the log names it {_shown(want)}; the directory {_shown(got)} "
                                            f"(up to offset {known.through})", fix))
    return out


__all__ = ["NEEDLES", "HostsCheck", "check"]
