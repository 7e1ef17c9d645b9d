"""Key names of one crawl in Redis (the schema is in frontier/redis.py's docstring) and slot names."""

from __future__ import annotations


class Keys:
    """Key names of one crawl; all share the hash tag `{crawl_id}`."""

    def __init__(self, crawl_id: str) -> None:
        self.prefix = prefix = f"crawlpool:{{{crawl_id}}}:"
        self.meta = prefix + "meta"
        self.tok = prefix + "tok"
        self.ready = prefix + "h:ready"
        self.leased = prefix + "h:leased"
        self.owner = prefix + "h:owner"
        self.paced = prefix + "h:paced"
        self.workers = prefix + "workers"
        self.records = prefix + "records"
        self.done_by = prefix + "done_by"
        self.acks = prefix + "acks"

    def seen(self, bucket: int) -> str:
        return f"{self.prefix}seen:{bucket}"

    def host(self, host: str) -> list[str]:
        """q, retry, cfg and inflight of `host`, in the order the scripts take them."""
        p = self.prefix
        return [f"{p}q:{host}", f"{p}retry:{host}", f"{p}host:{host}", f"{p}inflight:{host}"]


def seen_bucket(fp: int, seen_bits: int) -> int:
    """The seen bucket of a fingerprint: the top `seen_bits` bits of it, unsigned."""
    return (fp & 0xFFFF_FFFF_FFFF_FFFF) >> (64 - seen_bits) if seen_bits else 0


def slot_host(slot: str) -> str:
    """The host of slot `<host>#<i>`."""
    return slot.rpartition("#")[0]
