"""Monitoring: alert rules over the log and the derived state, their outputs, the live view.

    rules.py        pure rule logic: RuleEngine(thresholds).observe(event) / .evaluate(state, now)
    sinks.py        where alerts go: JSON lines, the alerts topic, Prometheus Alertmanager
    consumer.py     the plain consumer loop: replay to the end, then tail; catching-up detection
    faust_rules.py  the same rules as Faust agents with windowed tables (on kmevents.adapters.faust)
    view.py         the rich terminal view of ``kmevents monitor``
    tail.py         following one partition from an offset (API SSE and the consumer)
"""
