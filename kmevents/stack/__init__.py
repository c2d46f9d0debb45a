"""The local stack (Kafka in KRaft mode + etcd) for development, the demo and tests."""

from kmevents.stack.manager import ComponentStatus, Stack

__all__ = ["ComponentStatus", "Stack"]
