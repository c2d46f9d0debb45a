"""The worker's transactions are serialized by hand (``txn_request_bytes``): the bytes must be
protobuf's own for every shape of op: puts of empty, small and large values (lengths of 1 to
3 varint bytes), deletes, no ops, guard revisions 0 and large."""

from __future__ import annotations

from aetcd import rpc
from hypothesis import given
from hypothesis import strategies as hst

from kmevents.adapters.etcd import txn_request_bytes


def _protobuf(guard_key: bytes, rev: int, ops: dict[bytes, bytes | None]) -> bytes:
    compare = rpc.Compare(result=rpc.Compare.EQUAL, target=rpc.Compare.MOD, key=guard_key, mod_revision=rev)
    success = [rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=k)) if v is None
               else rpc.RequestOp(request_put=rpc.PutRequest(key=k, value=v)) for k, v in ops.items()]
    return bytes(rpc.TxnRequest(compare=[compare], success=success, failure=[]).SerializeToString())


def test_the_bytes_are_protobufs_for_each_size_of_length() -> None:
    ops: dict[bytes, bytes | None] = {b"/k/empty": b"", b"/k/gone": None, b"/k/one": b"x"}
    for n in (127, 128, 16_383, 16_384, 300_000, 2_097_152):
        ops[f"/k/{n}".encode()] = b"v" * n
    ops[b"/k/" + b"long-key" * 40] = b"{}"
    for rev in (0, 1, 900, 2**40):
        assert txn_request_bytes(b"/p/_checkpoints/0", rev, ops) == _protobuf(b"/p/_checkpoints/0", rev, ops)
    assert txn_request_bytes(b"/g", 0, {}) == _protobuf(b"/g", 0, {})


@given(hst.dictionaries(hst.binary(min_size=1, max_size=300), hst.none() | hst.binary(max_size=400), max_size=20),
       hst.integers(min_value=0, max_value=2**62))
def test_any_ops_serialize_as_protobuf_does(ops: dict[bytes, bytes | None], rev: int) -> None:
    assert txn_request_bytes(b"guard", rev, ops) == _protobuf(b"guard", rev, ops)
