"""What bounds the records streams: each worker's claim, and the trim that follows it (lua/trim.lua).

Every record (an ack or a settle) is one entry of its worker's stream `records:<worker>`, and its line
goes to that worker's manifest. The stream is there for one reader that cannot do without it: the
manifest's repair when the worker resumes (`committed_pages`), which restores the lines a kill cut
short or never wrote. So an entry may go once its line is durably in the manifest, and not before.
In a crawl of several key buckets (redis_keys.py) the record goes to the worker's stream in the
bucket that served the URL: a worker has one stream per bucket, each with ids from its own node's
clock, so everything below holds per (bucket, worker) stream, each with its own `Claims` and its own
claim in its bucket's `claims` hash; one fsync confirms them all.

Each worker says how far that holds: its *claim*, a stream id such that every record of its stream
below it is in its manifest, fsynced. `Claims` below works it out. An ack or settle in flight (sent,
no answer yet) may commit at any id above the last id of the worker's stream it had seen when it was
sent (`known`: its stream's ids only grow), so it holds the claim at that id; a committed record whose
line went out (the engine appends it as soon as the call returns, with no await in between) holds it
at its own id until the manifest's next fsync. With nothing held, the claim is `known`. A call that
failed stays held, so the claim never passes a record whose line may be missing.

Every lease / 3 a worker fsyncs its manifest, sends its claim (`RedisFrontier.confirm_records`) and
trim.lua cuts its stream there (XTRIM MINID), though never within the last `KEEP_MS` (status reads
those records for its rates) and never the last entry (status' "updated"). A worker that dies keeps
its claim: its stream keeps what it committed since its last confirmation until it is resumed, when
its repair writes those into its manifest and its next confirmation trims them. Other workers never
wait for it. A resumed worker keeps its old claim until its repair is done (`confirm_with` is called
after it). A worker that never confirms (one without a manifest, such as the benchmarks' or an older
version's) keeps all its records.

What bounds Redis memory, then: for each live worker, the records it committed in one confirmation
period (lease / 3, 20 s by default) plus `KEEP_MS`; for each worker that died and was not resumed,
those of its last confirmation period; for each that closed, its last record (per bucket).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from crawlpool.frontier.redis_status import RATE_WINDOW_MS

KEEP_MS = RATE_WINDOW_MS  # status counts these records for each worker's rate


def id_key(stream_id: str) -> tuple[int, int]:
    """A stream id `<ms>-<seq>` as a pair that sorts as Redis orders ids."""
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass
class Claims:
    """One worker's claim: which of its records may be in flight or not yet fsynced to its manifest."""

    known: str | None = None  # the highest id of its stream seen in a reply; None before it joined
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
