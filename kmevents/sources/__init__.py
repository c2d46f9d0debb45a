"""Sources: Mesos, Kubernetes and k8sm streams -> catalogue events.

Each source is a **pure parser** (bytes/dicts in, catalogue envelope dicts
out, no I/O, the clock injectable) and a **thin live client** (the only I/O)
that feeds it. What is mapped to what is in schemas/README.md, "Adapters and
mappings".

    _common.py          Stream (positions, envelopes, gap and clock-skew checks), Backoff
    recordio.py         RecordIO framing of Mesos streams
    mesos_values.py     Mesos v1/v0 JSON values -> contract shapes
    mesos_snapshot.py   Snapshot + Differ: a listing -> checkpoint and diff events
    mesos_operator.py   OperatorParser   (v1 operator SUBSCRIBE stream)
    mesos_state.py      StateParser      (/master/state polls, v0)
    mesos_scheduler.py  SchedulerParser  (v1 scheduler stream forwarded by the framework)
    kubernetes.py       KubernetesParser (watch events, relist)
    k8s_audit.py        AuditParser      (audit.k8s.io/v1alpha1, v1beta1, v1: who wrote what)
    k8sm.py             LeaderParser     (k8sm's leader key in etcd)
    live_mesos.py       OperatorClient, StatePoller (httpx)
    live_k8s.py         WatchClient (httpx)
    live_k8sm.py        LeaderKeyClient (a v3 key, kmevents.adapters.etcd)
    live_k8sm_v2.py     V2LeaderKeyClient (k8sm's v2 key, httpx)
    _retry.py           Failures: expected errors retried, unexpected ones end in SourceFailed
    runner.py           run_source: a live client into a sink, in batches; restarts, summary
    importer.py         run_import: captured files (audit logs, state dumps, watches, RecordIO) the same way
    captures.py         reading captures: gzip, curl -i headers, JSON lines/documents, RecordIO frames, times
    guard.py            Guard: every record counted; a record a parser fails on quarantined, never lost
    pipeline.py         Pipeline: batches to a sink, results booked per source
    prechecks.py        what a record must be before its parser sees it (a leading master's state)
    sinks.py            KafkaSink (Ingestor + quarantine topic), DryRunSink (Ingestor.prepare + files)
    quarantine.py       the quarantine record (key, value, secrets masked)
    summary.py          Tally per source, Summary (in / out / refused / quarantined / skipped), exit code

Every envelope carries ``source`` {kind, stream_id, seq}, ``clock``,
``raw_type``; ``event_id`` and ``dedupe_key`` are left for ingest to derive.
"""

from kmevents.sources._common import Backoff, Skipped, Stream
from kmevents.sources.importer import IMPORT_KINDS, run_import
from kmevents.sources.k8s_audit import AuditParser
from kmevents.sources.k8sm import LeaderParser
from kmevents.sources.kubernetes import KubernetesParser
from kmevents.sources.live_k8s import WatchClient
from kmevents.sources.live_k8sm import LeaderKeyClient
from kmevents.sources.live_k8sm_v2 import V2LeaderKeyClient
from kmevents.sources.live_mesos import OperatorClient, StatePoller
from kmevents.sources.mesos_operator import OperatorParser
from kmevents.sources.mesos_scheduler import SchedulerParser
from kmevents.sources.mesos_snapshot import Differ, Snapshot
from kmevents.sources.mesos_state import StateParser
from kmevents.sources.recordio import RecordIODecoder, RecordIOError
from kmevents.sources.runner import KINDS, RunStats, run_source
from kmevents.sources.sinks import DryRunSink, KafkaSink
from kmevents.sources.summary import Summary, Tally

__all__ = [
    "IMPORT_KINDS",
    "KINDS",
    "AuditParser",
    "Backoff",
    "Differ",
    "DryRunSink",
    "KafkaSink",
    "KubernetesParser",
    "LeaderKeyClient",
    "LeaderParser",
    "OperatorClient",
    "OperatorParser",
    "RecordIODecoder",
    "RecordIOError",
    "RunStats",
    "SchedulerParser",
    "Skipped",
    "Snapshot",
    "StateParser",
    "StatePoller",
    "Stream",
    "Summary",
    "Tally",
    "V2LeaderKeyClient",
    "WatchClient",
    "run_import",
    "run_source",
]
