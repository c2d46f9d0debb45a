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
    live_k8sm.py        LeaderKeyClient (kmevents.adapters.etcd)
    runner.py           run_source: a live client into an Ingestor, in batches

Every envelope carries ``source`` {kind, stream_id, seq}, ``clock``,
``raw_type``; ``event_id`` and ``dedupe_key`` are left for ingest to derive.
"""

from kmevents.sources._common import Backoff, Skipped, Stream
from kmevents.sources.k8s_audit import AuditParser
from kmevents.sources.k8sm import LeaderParser
from kmevents.sources.kubernetes import KubernetesParser
from kmevents.sources.live_k8s import WatchClient
from kmevents.sources.live_k8sm import LeaderKeyClient
from kmevents.sources.live_mesos import OperatorClient, StatePoller
from kmevents.sources.mesos_operator import OperatorParser
from kmevents.sources.mesos_scheduler import SchedulerParser
from kmevents.sources.mesos_snapshot import Differ, Snapshot
from kmevents.sources.mesos_state import StateParser
from kmevents.sources.recordio import RecordIODecoder, RecordIOError
from kmevents.sources.runner import KINDS, RunStats, run_source

__all__ = [
    "KINDS",
    "AuditParser",
    "Backoff",
    "Differ",
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
    "WatchClient",
    "run_source",
]
