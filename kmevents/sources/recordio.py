"""RecordIO framing of Mesos streaming responses: ``<length>\\n<bytes>`` repeated.

``length`` is the decimal byte count of the record that follows (the JSON
event). ``RecordIODecoder.feed(chunk)`` accepts arbitrary chunk boundaries (an
HTTP chunk may hold half a record or several) and returns the complete
records. Pure: no I/O.
"""

from __future__ import annotations

from kmevents.errors import KmeventsError

#: A record larger than this is refused (a corrupt length would otherwise make
#: the decoder buffer the stream forever).
MAX_RECORD_BYTES = 256 * 1024 * 1024


class RecordIOError(KmeventsError):
    """The stream is not valid RecordIO (bad length prefix); reconnect to resynchronise."""

    exit_code = 1


class RecordIODecoder:
    """Incremental RecordIO decoder."""

    def __init__(self, max_record_bytes: int = MAX_RECORD_BYTES) -> None:
        self._buf = bytearray()
        self._need: int | None = None
        self.max_record_bytes = max_record_bytes

    def feed(self, chunk: bytes) -> list[bytes]:
        """Add ``chunk``; return every record completed by it, in order."""
        self._buf += chunk
        out: list[bytes] = []
        while True:
            if self._need is None:
                nl = self._buf.find(b"\n")
                if nl < 0:
                    if len(self._buf) > 20:
                        raise RecordIOError(f"RecordIO length prefix too long: {bytes(self._buf[:20])!r}")
                    return out
                head = bytes(self._buf[:nl]).strip()
                if not head.isdigit():
                    raise RecordIOError(f"RecordIO length prefix is not a number: {head[:20]!r}")
                self._need = int(head)
                if self._need > self.max_record_bytes:
                    raise RecordIOError(f"RecordIO record of {self._need} bytes is over the limit")
                del self._buf[: nl + 1]
            if len(self._buf) < self._need:
                return out
            out.append(bytes(self._buf[: self._need]))
            del self._buf[: self._need]
            self._need = None

    @property
    def pending(self) -> int:
        """Bytes buffered that do not form a complete record yet."""
        return len(self._buf)


def encode(record: bytes) -> bytes:
    """One record framed as RecordIO (for test servers and forwarders)."""
    return str(len(record)).encode() + b"\n" + record
