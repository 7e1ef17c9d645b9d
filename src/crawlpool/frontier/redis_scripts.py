"""The Redis frontier's Lua scripts: loaded from `lua/*.lua`, registered on a client, arity-checked.

Each script is `lua/prelude.lua` (the shared helpers) followed by `lua/<name>.lua`, sent as one chunk,
with constants (`K.<name>`: the pacing rule's, and the crawl's politeness) written in as literals:
decoding the rule from JSON on every call cost an ack about a seventh of its Redis CPU, and each
argument with its tonumber about 1%.
Every file opens with a `--[[ ... ]]` header naming each KEYS[i] and ARGV[i] and the return value:
that header is the script's contract. The loader reads the header's KEYS lines too: a script whose
KEYS are all numbered (`KEYS[5]`) takes exactly that many keys, one with a repeated group
(`KEYS[base + 1]`) at least its numbered ones, and `LuaScript` refuses a call that breaks this before
anything reaches Redis: a missing key must not turn into a nil inside a script.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from crawlpool.frontier.redis_pipeline import Pipeliner
from crawlpool.policy.pacing import PACE_RULE

NAMES = (
    "init",
    "add",
    "settle",
    "lease_slots",
    "take",
    "end",
    "extend",
    "expired",
    "reclaim",
    "pace",
    "is_done",
    "beat",
    "trim",
)
PRELUDE = "prelude"

_HEADER = re.compile(r"\A--\[\[\n(.*?)\n\]\]\n", re.DOTALL)
_NUMBERED_KEY = re.compile(r"^\s*KEYS\[(\d+)\]\s", re.MULTILINE)
_GROUP_KEY = re.compile(r"^\s*KEYS\[[^\]]*[a-z][^\]]*\]\s", re.MULTILINE)


@cache
def lua_file(name: str) -> str:
    """The text of `lua/<name>.lua`, header included; read once per process."""
    return (files("crawlpool.frontier") / "lua" / f"{name}.lua").read_text(encoding="utf-8")


def source(name: str, crawl: Mapping[str, int] | None = None) -> str:
    """What is sent to Redis for script `name`: the prelude, then the script's file, with each constant
    `K.<name>` written in as a literal: the pacing rule's (`policy.pacing.PACE_RULE`), and `crawl`'s
    (the crawl's per_host and delay_ms, the worker's urls_per_lease) for scripts that use them."""
    return with_constants(lua_file(PRELUDE) + lua_file(name), {**json.loads(PACE_RULE), **(crawl or {})})


_CONSTANT = re.compile(r"(?<![\w.])K\.([a-z_]+)(?:\((\w+)\))?")  # not x.K.a, not OK.a


def with_constants(text: str, values: Mapping[str, Any]) -> str:
    """`text` with `K.<name>` written as the literal `values[name]`, and `K.<name>(x)` (a list) as
    `(x == a or x == b ...)`: read by Lua as constants, they cost no argument, table or conversion
    at run time (an argument and its tonumber cost about 3,000 instructions of a call)."""

    def literal(v: Any) -> str:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise ValueError(f"constant {v!r}: only finite numbers go into Lua")
        return repr(v) if math.copysign(1, v) > 0 else f"({v!r})"  # -0.0 too: `3 -K.x` must not be `3 --0.0`

    def replace(found: re.Match[str]) -> str:
        key, tested = found.group(1), found.group(2)
        if key not in values:
            raise ValueError(f"K.{key} is no constant of the pacing rule or the crawl")
        value = values[key]
        if tested is None:
            if isinstance(value, list):
                raise ValueError(f"K.{key} is a list: test a value with K.{key}(x)")
            return literal(value)
        if not isinstance(value, list) or not value:
            raise ValueError(f"K.{key}({tested}): K.{key} is not a list of numbers")
        return "(" + " or ".join(f"{tested} == {literal(v)}" for v in value) + ")"

    return _CONSTANT.sub(replace, text)


def header(name: str) -> str:
    """The contract comment at the top of `lua/<name>.lua`, without its `--[[` `]]` lines."""
    found = _HEADER.match(lua_file(name))
    if found is None:
        raise ValueError(f"lua/{name}.lua does not open with a --[[ ... ]] header")
    return found.group(1)


@dataclass(frozen=True)
class Arity:
    """How many KEYS a script takes, as its header declares them."""

    keys: int  # the numbered KEYS[1] .. KEYS[keys]
    repeated: bool  # a repeated group (e.g. per host) follows them: then `keys` is a minimum

    def check(self, name: str, n_keys: int) -> None:
        if n_keys == self.keys or (self.repeated and n_keys > self.keys):
            return
        wanted = f"at least {self.keys}" if self.repeated else str(self.keys)
        raise ValueError(f"redis script {name} takes {wanted} KEYS (see lua/{name}.lua), got {n_keys}")


@cache
def arity(name: str) -> Arity:
    text = header(name)
    numbered = sorted(int(i) for i in _NUMBERED_KEY.findall(text))
    if numbered != list(range(1, len(numbered) + 1)):
        raise ValueError(f"lua/{name}.lua: KEYS in its header are not numbered 1 .. n: {numbered}")
    return Arity(len(numbered), bool(_GROUP_KEY.search(text)))


class LuaScript:
    """One script: `await script(keys=[...], args=[...])`, after the KEYS count check, sent as EVALSHA
    through the client's `Pipeliner` (loaded by SCRIPT LOAD the first time a server does not know it)."""

    def __init__(self, pipeliner: Pipeliner, name: str, crawl: Mapping[str, int]) -> None:
        self.name = name
        self.arity = arity(name)
        self._pipeliner = pipeliner
        self._source = source(name, crawl)
        self._sha = hashlib.sha1(self._source.encode()).hexdigest()

    def __call__(self, *, keys: list[str], args: list[str | int]) -> Awaitable[Any]:
        self.arity.check(self.name, len(keys))
        return self._pipeliner.call(self._sha, self._source, keys, args)


class Scripts:
    """Every script, for one client and one worker of a crawl (its politeness and urls_per_lease are
    written into the scripts); the calls made in one event-loop turn share one pipeline."""

    def __init__(
        self, client: aioredis.Redis | RedisCluster, *, per_host: int, delay_ms: int, urls_per_lease: int
    ) -> None:
        self.pipeliner = pipeliner = Pipeliner(client)
        crawl = {"per_host": per_host, "delay_ms": delay_ms, "urls_per_lease": urls_per_lease}
        self.init = LuaScript(pipeliner, "init", crawl)
        self.add = LuaScript(pipeliner, "add", crawl)
        self.settle = LuaScript(pipeliner, "settle", crawl)
        self.lease_slots = LuaScript(pipeliner, "lease_slots", crawl)
        self.take = LuaScript(pipeliner, "take", crawl)
        self.end = LuaScript(pipeliner, "end", crawl)
        self.extend = LuaScript(pipeliner, "extend", crawl)
        self.expired = LuaScript(pipeliner, "expired", crawl)
        self.reclaim = LuaScript(pipeliner, "reclaim", crawl)
        self.pace = LuaScript(pipeliner, "pace", crawl)
        self.is_done = LuaScript(pipeliner, "is_done", crawl)
        self.beat = LuaScript(pipeliner, "beat", crawl)
        self.trim = LuaScript(pipeliner, "trim", crawl)
