"""The one error tree of kmevents. Every error says what to do next.

    KmeventsError                 base; ``exit_code`` is what the CLI returns
    ├── UsageError                bad flags or arguments (exit 2)
    ├── EnvironmentProblem        the machine lacks something: Java, Maven, etcd, a free port (exit 2)
    │   └── StackError            the local stack could not start, or is half-started (exit 2)
    ├── ContractError             an event breaks the contract (exit 1)
    ├── CheckFailed               a check found a problem: drift, broken chain (exit 1)
    ├── SourceFailed              a live source kept failing in a way its client does not expect (exit 1)
    └── FencedError               a newer worker owns the partition; this one must stop (exit 1)
"""

from __future__ import annotations


class KmeventsError(Exception):
    """Base of every kmevents error. ``hint`` tells the operator what to do next."""

    exit_code = 2
    retriable = False

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class UsageError(KmeventsError):
    """Flags or arguments that cannot work together."""


class EnvironmentProblem(KmeventsError):
    """Something the machine must provide is missing or unusable."""


class StackError(EnvironmentProblem):
    """The local Kafka + etcd stack could not be started, stopped or reached."""

    retriable = True


class ContractError(KmeventsError):
    """An event does not satisfy the event contract."""

    exit_code = 1


class CheckFailed(KmeventsError):
    """A verification found a problem (drift, chain break, invalid input)."""

    exit_code = 1


class FencedError(KmeventsError):
    """Another worker committed a newer checkpoint: this worker must give the partition up."""

    exit_code = 1


class SourceFailed(KmeventsError):
    """A live source client gave up: the same unexpected error (not a network error, not a
    server asking it to relist) kept coming back. Raised out of the client's ``run()`` with
    the last error as its cause; whoever runs the client ends non-zero (never exit 0)."""

    exit_code = 1
    retriable = True
