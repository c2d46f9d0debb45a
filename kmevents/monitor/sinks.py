"""Where alerts go: JSON lines, the alerts topic, Prometheus Alertmanager.

Every sink takes the transitions of one evaluation (``Alert`` objects, firing
or resolved) and the wall time they were decided at (for the events' age).

- :class:`JsonLines`: one JSON object per line to a text stream (stdout, a file).
- :class:`AlertsTopic`: the alerts topic (``settings.kafka.alerts_topic``), keyed
  by the alert's fingerprint, with the log position it was decided at, so a
  repeat after a restart is recognisable (DESIGN.md rule 3: side outputs are
  keyed so a repeat is recognisable).
- :class:`Alertmanager`: ``POST <url>/api/v2/alerts`` with labels (``alertname``,
  ``cluster``, ``severity``, ``group``, and the rule's own), annotations
  (summary, runbook link, age of the events) and ``startsAt``/``endsAt``;
  a resolved alert is sent with ``endsAt`` set, which is how Alertmanager
  learns that it ended.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import IO, TYPE_CHECKING, Any, Protocol

import httpx
import orjson

from kmevents.monitor.rules import Alert
from kmevents.settings import Settings

if TYPE_CHECKING:  # the Kafka client is imported when the sink starts
    from kmevents.adapters.kafka import Producer

log = logging.getLogger("kmevents.monitor.sinks")


class Sink(Protocol):
    async def send(self, alerts: list[Alert], *, now_ms: int, position: dict[str, Any]) -> None: ...

    async def close(self) -> None: ...


def _now_iso(now_ms: int) -> str:
    return dt.datetime.fromtimestamp(now_ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class JsonLines:
    def __init__(self, out: IO[str], runbook_base: str = "") -> None:
        self.out = out
        self.runbook_base = runbook_base
        self.sent = 0

    async def send(self, alerts: list[Alert], *, now_ms: int, position: dict[str, Any]) -> None:
        for a in alerts:
            d = a.as_dict(now_ms, self.runbook_base)
            d["decided_at"] = _now_iso(now_ms)
            d["position"] = position
            self.out.write(orjson.dumps(d).decode() + "\n")
            self.sent += 1
        self.out.flush()

    async def close(self) -> None:
        return None


class AlertsTopic:
    """Produces each transition to the alerts topic. ``start()`` connects."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._p: Producer | None = None
        self.sent = 0

    async def start(self) -> None:
        from kmevents.adapters import kafka as kafka_adapter

        self._p = kafka_adapter.producer(self.settings.kafka)
        await self._p.start()

    async def send(self, alerts: list[Alert], *, now_ms: int, position: dict[str, Any]) -> None:
        if self._p is None:
            await self.start()
        for a in alerts:
            d = a.as_dict(now_ms, self.settings.monitor.runbook_base)
            d["decided_at"] = _now_iso(now_ms)
            d["position"] = position
            assert self._p is not None  # started above
            await self._p.send_and_wait(self.settings.kafka.alerts_topic, orjson.dumps(d),
                                        key=f"{a.fingerprint}|{a.status}|{position.get('offset')}".encode())
            self.sent += 1

    async def close(self) -> None:
        if self._p is not None:
            await self._p.stop()
            self._p = None


def alertmanager_payload(alerts: list[Alert], *, now_ms: int, runbook_base: str,
                         generator_url: str = "") -> list[dict[str, Any]]:
    out = []
    for a in alerts:
        labels = {"alertname": a.rule, "cluster": a.cluster, "severity": a.severity, "group": a.grouping_key,
                  "key": a.key, **{k: str(v) for k, v in a.labels.items()}}
        age = a.age_seconds(now_ms)
        item: dict[str, Any] = {
            "labels": labels,
            "annotations": {"summary": a.summary, "runbook_url": f"{runbook_base}{a.rule}",
                            "events_age_seconds": "" if age is None else f"{age:.3f}",
                            "evidence_from": a.evidence_from or "", "evidence_to": a.evidence_to or ""},
            "startsAt": _now_iso(now_ms) if a.started_at is None else a.started_at,
        }
        if a.status == "resolved":
            item["endsAt"] = _now_iso(now_ms)
        if generator_url:
            item["generatorURL"] = generator_url
        out.append(item)
    return out


class Alertmanager:
    """Posts transitions to Alertmanager's v2 API; a failed post is logged and counted, never raised."""

    def __init__(self, url: str, runbook_base: str = "", timeout: float = 5.0) -> None:
        self.url = url.rstrip("/") + "/api/v2/alerts"
        self.runbook_base = runbook_base
        self._c = httpx.AsyncClient(timeout=timeout)
        self.sent = 0
        self.failures = 0

    async def send(self, alerts: list[Alert], *, now_ms: int, position: dict[str, Any]) -> None:
        if not alerts:
            return
        body = alertmanager_payload(alerts, now_ms=now_ms, runbook_base=self.runbook_base)
        try:
            r = await self._c.post(self.url, json=body)
            r.raise_for_status()
            self.sent += len(body)
        except httpx.HTTPError as exc:
            self.failures += 1
            log.warning("Alertmanager post failed: %s", exc)

    async def close(self) -> None:
        await self._c.aclose()
