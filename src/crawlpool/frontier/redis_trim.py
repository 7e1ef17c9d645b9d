"""What bounds the `records` stream: each worker's claim, and the trim that follows it (lua/trim.lua).

Every record (an ack or a settle) is one stream entry, and its line goes to the manifest of the worker
that committed it. The stream is there for one reader that cannot do without it: the manifest's repair
when a worker resumes (`committed_pages`), which restores the lines a kill cut short or never wrote.
So an entry may go once its line is durably in its worker's manifest, and not before.

Each worker says how far that holds for its own records: its *claim*, a stream id such that every one
of its records below it is in its manifest, fsynced. `Claims` below works it out. An ack or settle in
flight (sent, no answer yet) may commit at any id above the last stream id this worker had seen when
it was sent (`known`), so it holds the claim at that id; a committed record whose line went out
(the engine appends it as soon as the call returns, with no await in between) holds it at its own id
until the manifest's next fsync. With nothing held, the claim is `known`: any record this worker
commits later gets a higher id. A call that failed stays held, so the claim never passes a record
whose line may be missing.

Every lease / 3 a worker fsyncs its manifest and sends its claim (`RedisFrontier.confirm_records`),
and trim.lua cuts the stream (XTRIM MINID) at the lowest claim of the live workers (heartbeat within
their lease), never within the last `KEEP_MS` (status reads those records for its rates) and never
the last entry (status' "updated"). A dead worker's claim does not hold the stream back: its records
past its claim are first copied, with their ids, to the `kept` stream, where they wait until it
resumes (its repair reads both) and confirms them, however long the crawl runs. A worker that closes
with everything confirmed drops its claim (and with it what `kept` holds for it).

What bounds Redis memory, then: the stream holds about one confirmation period (lease / 3, 20 s by
default) of the whole fleet's records, plus `KEEP_MS` of them, plus, for each worker that died
without resuming, its records of its last confirmation period (in `kept`). A worker that never
confirms (an older version, or one without a manifest such as the benchmarks') holds the trim at its
claim; one that opened before claims existed (it has a lease but no claim) stops all trimming.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from crawlpool.frontier.redis_status import RATE_WINDOW_MS

KEEP_MS = RATE_WINDOW_MS  # status counts these records for each worker's rate
SCAN = 1_000  # entries trim.lua looks at per call in `records` (copying) and in `kept` (forgetting)


def id_key(stream_id: str) -> tuple[int, int]:
    """A stream id `<ms>-<seq>` as a pair that sorts as Redis orders ids."""
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass
class Claims:
    """One worker's claim: which of its records may be in flight or not yet fsynced to its manifest."""

    known: str | None = None  # the highest stream id seen in a reply; None before the worker joined
    _open: dict[int, str] = field(default_factory=dict)  # call number → `known` when it was sent
    _written: list[str] = field(default_factory=list)  # ids of committed records since the last fsync
    _calls: int = 0

    def saw(self, stream_id: str) -> None:
        if self.known is None or id_key(stream_id) > id_key(self.known):
            self.known = stream_id

    def sent(self) -> int:
        """An ack or settle is about to be sent: its number, for `answered`."""
        self._calls += 1
        self._open[self._calls] = self.known or "0-0"
        return self._calls

    def answered(self, call: int, committed: bool, record_id: str | None = None) -> None:
        """Call `call` answered: `committed` when it made a record whose line the caller writes now
        (`record_id` its id when the reply said, else it is above the id known when it was sent)."""
        floor = self._open.pop(call)
        if committed:
            self._written.append(record_id or floor)
        if record_id:
            self.saw(record_id)

    def unsynced(self) -> int:
        """How many committed records an fsync started now covers (pass it to `claim`)."""
        return len(self._written)

    def claim(self, synced: int) -> str | None:
        """The claim after an fsync that covered the first `synced` written records: the lowest id
        still held, or None when nothing is (the caller claims `known`, or leaves)."""
        del self._written[:synced]
        held = [*self._open.values(), *self._written]
        return min(held, key=id_key) if held else None
