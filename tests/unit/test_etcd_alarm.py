"""Which etcd errors are an alarm or a refusal (an operator must act) and which a retry may get past."""

from __future__ import annotations

import grpc
import pytest

from kmevents.adapters import etcd as etcd_adapter


def _rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


def test_nospace_is_an_alarm_that_says_how_to_free_space() -> None:
    got = etcd_adapter.alarm(_rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                        "etcdserver: mvcc: database space exceeded"))
    assert isinstance(got, etcd_adapter.EtcdAlarm) and got.exit_code == 2
    assert "database is full" in got.message and "database space exceeded" in got.message
    assert "alarm disarm" in (got.hint or "") and "KMEVENTS_STACK__ETCD_QUOTA_BYTES" in (got.hint or "")


def test_corrupt_is_an_alarm() -> None:
    got = etcd_adapter.alarm(_rpc_error(grpc.StatusCode.DATA_LOSS, "etcdserver: corrupt cluster"))
    assert isinstance(got, etcd_adapter.EtcdAlarm) and "corrupt" in got.message


@pytest.mark.parametrize(("code", "details"), [
    (grpc.StatusCode.RESOURCE_EXHAUSTED, "etcdserver: too many requests"),  # load: a retry helps
    (grpc.StatusCode.RESOURCE_EXHAUSTED, "grpc: received message larger than max (422049174 vs. 268435456)"),
    (grpc.StatusCode.UNAVAILABLE, "etcdserver: leader changed"),
    (grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"),
])
def test_load_restarts_and_size_caps_are_no_alarm(code: grpc.StatusCode, details: str) -> None:
    assert etcd_adapter.alarm(_rpc_error(code, details)) is None


def test_an_error_that_is_not_grpc_is_no_alarm() -> None:
    assert etcd_adapter.alarm(ConnectionError("refused")) is None


@pytest.mark.parametrize(("code", "details"), [
    (grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: request is too large"),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, "grpc: received message larger than max (1048996 vs. 786432)"),
])
def test_a_request_over_etcds_max_request_bytes_is_refused_and_says_which_setting(
        code: grpc.StatusCode, details: str) -> None:
    got = etcd_adapter.refused(_rpc_error(code, details))
    assert isinstance(got, etcd_adapter.EtcdRefused) and "too large" in got.message
    assert "KMEVENTS_ETCD__MAX_REQUEST_BYTES" in (got.hint or "")


def test_a_user_denied_the_write_is_refused_and_told_to_grant_the_prefix() -> None:
    got = etcd_adapter.refused(_rpc_error(grpc.StatusCode.PERMISSION_DENIED, "etcdserver: permission denied"))
    assert isinstance(got, etcd_adapter.EtcdRefused) and "grant-permission" in (got.hint or "")


@pytest.mark.parametrize(("code", "details"), [
    (grpc.StatusCode.RESOURCE_EXHAUSTED, "etcdserver: too many requests"),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, "etcdserver: mvcc: database space exceeded"),  # an alarm, not this
    (grpc.StatusCode.UNAVAILABLE, "etcdserver: leader changed"),
])
def test_load_restarts_and_alarms_are_not_refusals(code: grpc.StatusCode, details: str) -> None:
    assert etcd_adapter.refused(_rpc_error(code, details)) is None
