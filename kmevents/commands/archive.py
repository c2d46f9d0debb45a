"""``kmevents archive export / import``: a cluster's log as portable, verifiable files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kmevents.commands._common import emit_json
from kmevents.errors import UsageError

HELP = """\
export: write the cluster's records (original offset, log-append time, key and
value bytes exactly as stored) to a zstd-compressed archive with a header:
cluster, partition, offsets covered, chain head at start and end, schema
versions, reducer version. --from/--to take offset:N or a TIME, read as
everywhere else: a TIME is SOURCE time (when events happened, like `state
--at`; an incident window), or with --known LOG time (what was recorded then,
like `state --known-at`). An archive is one contiguous piece of the log, so a
source-time window keeps from the first record that happened in it to the last
one, with the late arrivals in between. The command says what it selected
(offsets, times) and refuses an empty window. --follow --dir DIR exports
continuously in segments (resuming after the last segment in DIR). An archive
also keeps some of the processors' snapshots of its range (--snapshot-every),
each checked against the records' chain, so a point in time read from
archives alone starts near its target instead of at the archive's first
record. --source ARCHIVE cuts a window out of archives instead of the topic.

import: write an archive's records into a topic (new offsets) with their
original partition, offset and time in a header; the bytes are unchanged, so
the chain continues unchanged and every reading command can use the topic
(--source kafka --topic T).

info: what archives hold, from their headers alone (offsets, log times, chain
heads, frames, snapshots, schema versions).

Every reading command (state, diff, history, search, verify) reads archives
with --source FILE... and needs no server for that.

examples:
  kmevents archive export --cluster prod --from 'yesterday 13:00' --to 'yesterday 15:00' -o incident.kmarch
  kmevents archive export --cluster prod --follow --dir /backup/prod
  kmevents archive info incident.kmarch
  kmevents archive import incident.kmarch --topic prod.copy
  kmevents archive export --cluster C --from 2026-01-01T10:00:00Z --to 2026-01-01T10:30:00Z -o incident.kmarch
  kmevents archive export --cluster C --from offset:40000 -o tail.kmarch
"""


def register(sub: argparse._SubParsersAction) -> None:
    from kmevents.commands._common import add_connection_flags, add_format_flag

    p = sub.add_parser("archive", help="export a cluster's log to archives; import archives into a topic",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    s = p.add_subparsers(dest="archive_command", metavar="export|import|info")
    e = s.add_parser("export", help="write a cluster's records to an archive (or segments with --follow)")
    e.add_argument("--cluster", help="cluster name (default KMEVENTS_CLUSTER)")
    e.add_argument("--from", dest="from_", metavar="POINT",
                   help="offset:N or TIME (source time; log time with --known), inclusive")
    e.add_argument("--to", metavar="POINT", help="offset:N or TIME (source time; log time with --known), inclusive")
    e.add_argument("--known", action="store_true", help="TIMEs are log (recorded) times, not source times")
    e.add_argument("--source", nargs="+", metavar="kafka|ARCHIVE", default=None,
                   help="read archives (or 'kafka', the default) and cut the window from them")
    e.add_argument("-o", "--output", metavar="FILE", help="the archive to write (.kmarch)")
    e.add_argument("--follow", action="store_true", help="export continuously in segments into --dir")
    e.add_argument("--dir", help="folder of segments (with --follow)")
    e.add_argument("--segment-records", type=int, default=100_000, help="records per segment (--follow)")
    e.add_argument("--poll-seconds", type=float, default=2.0, help="wait between polls (--follow)")
    e.add_argument("--max-seconds", type=float, help="stop following after this long")
    e.add_argument("--max-segments", type=int, help="stop following after this many segments")
    e.add_argument("--snapshot-every", type=int, default=None, metavar="N",
                   help="keep a snapshot about every N offsets (taken from the snapshot store, or from the "
                        "archives read), so a point in time read from the archive alone folds at most ~N "
                        "records plus the processors' snapshot interval; each costs the compressed state, "
                        "~6 MB for the simulator's default cluster (default 50,000; 0: none)")
    e.add_argument("--topic", help="read this topic instead of the events topic")
    e.add_argument("--partition", type=int, help="the cluster's partition (default: the partition map)")
    e.add_argument("--no-progress", action="store_true")
    add_connection_flags(e)
    add_format_flag(e)
    e.set_defaults(func=run_export, no_snapshots=False)
    i = s.add_parser("import", help="write an archive's records into a topic (new offsets, same bytes)")
    i.add_argument("files", nargs="+", metavar="FILE", help="archives, or folders of them")
    i.add_argument("--topic", required=True, help="the topic to fill (created when missing); not the live "
                                                  "events topic, whose workers would fold the records again")
    i.add_argument("--partition", type=int, default=0, help="partition to write (default 0)")
    add_connection_flags(i)
    add_format_flag(i)
    i.set_defaults(func=run_import)
    n = s.add_parser("info", help="what archives hold, from their headers (offsets, times, chain heads, snapshots)",
                     description="Print what each archive holds, read from its header alone (nothing is "
                                 "decompressed; `kmevents verify --source FILE` checks the contents): cluster and "
                                 "partition, offsets covered, record count, log times, chain heads, format, frames, "
                                 "the snapshots kept and the schema versions seen.")
    n.add_argument("files", nargs="+", metavar="FILE", help="archives, or folders of them")
    add_format_flag(n)
    n.set_defaults(func=run_info)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def run_export(args: argparse.Namespace) -> int:
    from kmevents.commands._common import check_output
    from kmevents.commands._source import open_source
    from kmevents.commands._source import run as run_async
    from kmevents.progress import progress_bar
    from kmevents.replay import archiving
    from kmevents.replay.engine import Target

    if args.follow and not args.dir:
        raise UsageError("--follow needs --dir DIR")
    if not args.follow and not args.output:
        raise UsageError("give -o FILE (or --follow --dir DIR)")
    if args.follow and (args.from_ or args.to or args.source):
        raise UsageError("--follow exports the whole log as it grows: --from, --to and --source do not go with it")
    if args.output:
        check_output(args.output)
    if args.snapshot_every is None:
        args.snapshot_every = archiving.SNAPSHOT_EVERY
    elif args.snapshot_every < 0:
        raise UsageError(f"--snapshot-every must be 0 or more, not {args.snapshot_every}")
    start_p = Target.of_point(args.from_, known=args.known, param="--from") if args.from_ else None
    end_p = Target.of_point(args.to, known=args.known, param="--to") if args.to else None
    if start_p is not None and end_p is not None and start_p.offset is None and end_p.offset is None:
        a, b = start_p.at or start_p.known_at, end_p.at or end_p.known_at
        if a is not None and b is not None and b.micros < a.micros:
            raise UsageError(f"--to {args.to} is before --from {args.from_}")

    async def main() -> int:
        async with open_source(args) as o:
            src = o.source
            topic = args.topic or _archive_topic(src) or o.settings.kafka.events_topic
            if args.follow:
                segs = await archiving.follow(src, args.dir, cluster=o.cluster, topic=topic,
                                              segment_records=args.segment_records, poll_seconds=args.poll_seconds,
                                              max_seconds=args.max_seconds, max_segments=args.max_segments,
                                              refresh=lambda: type(src)(o.settings.kafka, src.topic,
                                                                        src.read_partition, o.cluster),
                                              say=(lambda m: None) if args.format == "json" else print,
                                              snapshots=o.snapshots, snapshot_every=args.snapshot_every)
                if args.format == "json":
                    emit_json({"segments": segs})
                return 0
            sel = await archiving.select(src, start_p, end_p)
            archiving.refuse_empty(sel, o.cluster)
            start, end = sel.start, sel.end
            if args.format != "json":
                print(f"selected {sel.described}: offsets {start}..{end} of {sel.log_first}..{sel.log_last}",
                      file=sys.stderr)
            head = await archiving.chain_before(src, o.cluster, start, o.snapshots)
            with progress_bar("exporting", total=max(end - start + 1, 0), disable=args.no_progress) as bar:
                done = [start]

                def advanced(off: int) -> None:
                    bar.advance(off + 1 - done[0])
                    done[0] = off + 1

                h = await archiving.export(src, Path(args.output), cluster=o.cluster, topic=topic, start=start,
                                           end=end, chain_head_start=head, on_batch=advanced,
                                           snapshots=o.snapshots, snapshot_every=args.snapshot_every)
        if args.format == "json":
            emit_json({**h, "selected": sel.as_dict()})
        else:
            print(f"{args.output}: {h['count']} records of {h['cluster']} (partition {h['partition']}), "
                  f"offsets {h['covers_from']}..{h['covers_to']}, logged {h.get('first_recorded_at')} .. "
                  f"{h.get('last_recorded_at')}, chain {h['chain_head_start']} -> "
                  f"{h['chain_head_end']}, {len(h['snapshots'])} snapshots"
                  + (f" (at {', '.join(str(x['offset']) for x in h['snapshots'])})" if h["snapshots"] else ""))
        return 0

    return run_async(main)


def _archive_topic(src: object) -> str | None:
    """The topic archives were exported from (a window cut out of archives keeps it)."""
    for s in [src, *getattr(src, "sources", [])]:
        topic = (getattr(s, "header", None) or {}).get("topic")
        if topic:
            return str(topic)
    return None


def run_import(args: argparse.Namespace) -> int:
    from kmevents.commands._common import settings_from
    from kmevents.commands._source import archive_paths
    from kmevents.commands._source import run as run_async
    from kmevents.replay import archiving

    files = archive_paths(args.files)  # a missing file fails here, before anything connects
    if not files:
        raise UsageError(f"no archive in {' '.join(args.files)}", hint="give .kmarch files or folders holding them")
    settings = settings_from(args)
    if args.topic == settings.kafka.events_topic:
        raise UsageError("refusing to import into the live events topic",
                         hint="import into another topic and read it with --source kafka --topic T")

    async def main() -> int:
        results = [await archiving.import_archive(settings.kafka, f, topic=args.topic, partition=args.partition)
                   for f in files]
        if args.format == "json":
            emit_json(results)
        else:
            for r in results:
                print(f"{r['archive']['cluster']}: {r['imported']} records into {r['topic']}/{r['partition']}")
        return 0

    return run_async(main)


def run_info(args: argparse.Namespace) -> int:
    from kmevents.commands._source import archive_paths
    from kmevents.replay import archive

    heads = [{"path": str(f), "size_bytes": f.stat().st_size, **archive.read_header(f)}
             for f in archive_paths(args.files)]
    if args.format == "json":
        emit_json(heads)
        return 0
    for h in heads:
        snaps = h.get("snapshots") or []
        print(f"{h['path']}: {h['format']}, {_size(h['size_bytes'])}")
        print(f"  cluster {h['cluster']}, partition {h['partition']}, topic {h['topic']}"
              + (f", filtered {h['filtered']}" if h.get("filtered") else ""))
        print(f"  offsets {h['covers_from']}..{h['covers_to']}: {h['count']:,} records, "
              f"logged {h.get('first_recorded_at')} .. {h.get('last_recorded_at')}")
        print(f"  chain {h.get('chain_head_start')} -> {h.get('chain_head_end')}")
        if "frames" in h:
            print(f"  {len(h['frames'])} record frames")
        print(f"  {len(snaps)} snapshots" + (": " + ", ".join(
            f"@{x['offset']} ({_size(x['stored_bytes'])})" for x in snaps) if snaps else ""))
        print(f"  reducer version {h.get('reducer_version')}, created {h.get('created_at')}; schema versions "
              + ", ".join(f"{t} {v}" for t, v in (h.get("schema_versions") or {}).items()))
    return 0


def _size(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB" if n >= 2**20 else f"{n / 1024:,.0f} KiB"
