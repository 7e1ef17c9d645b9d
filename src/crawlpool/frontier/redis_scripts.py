"""The Redis frontier's Lua scripts: loaded from `lua/*.lua`, registered on a client, arity-checked.

Each script is `lua/prelude.lua` (the shared helpers) followed by `lua/<name>.lua`, sent as one chunk,
with the pacing rule's constants (`policy.pacing`) written into the prelude as a Lua table: decoding
them from JSON on every call cost an ack about a seventh of its Redis CPU.
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
from collections.abc import Awaitable
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
RULE_PLACE = "{--[[PACE_RULE]]}"  # in prelude.lua: where source() writes the pacing rule's table

_HEADER = re.compile(r"\A--\[\[\n(.*?)\n\]\]\n", re.DOTALL)
_NUMBERED_KEY = re.compile(r"^\s*KEYS\[(\d+)\]\s", re.MULTILINE)
_GROUP_KEY = re.compile(r"^\s*KEYS\[[^\]]*[a-z][^\]]*\]\s", re.MULTILINE)


@cache
def lua_file(name: str) -> str:
    """The text of `lua/<name>.lua`, header included; read once per process."""
    return (files("crawlpool.frontier") / "lua" / f"{name}.lua").read_text(encoding="utf-8")


def source(name: str) -> str:
    """What is sent to Redis for script `name`: the prelude with the pacing rule, then the script's file."""
    prelude = lua_file(PRELUDE)
    if RULE_PLACE not in prelude:
        raise ValueError(f"lua/{PRELUDE}.lua has no {RULE_PLACE} for the pacing rule")
    return prelude.replace(RULE_PLACE, lua_table(json.loads(PACE_RULE)), 1) + lua_file(name)


def lua_table(rule: dict[str, Any]) -> str:
    """`rule` (numbers and lists of numbers) as a Lua table constructor."""

    def value(v: Any) -> str:
        if isinstance(v, list):
            return "{" + ", ".join(value(x) for x in v) + "}"
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise ValueError(f"the pacing rule holds {v!r}: only finite numbers go into Lua")
        return repr(v)

    return "{" + ", ".join(f"{key} = {value(v)}" for key, v in rule.items()) + "}"


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

    def __init__(self, pipeliner: Pipeliner, name: str) -> None:
        self.name = name
        self.arity = arity(name)
        self._pipeliner = pipeliner
        self._source = source(name)
        self._sha = hashlib.sha1(self._source.encode()).hexdigest()

    def __call__(self, *, keys: list[str], args: list[str | int]) -> Awaitable[Any]:
        self.arity.check(self.name, len(keys))
        return self._pipeliner.call(self._sha, self._source, keys, args)


class Scripts:
    """Every script, for one client; the calls made in one event-loop turn share one pipeline."""

    def __init__(self, client: aioredis.Redis | RedisCluster) -> None:
        self.pipeliner = pipeliner = Pipeliner(client)
        self.init = LuaScript(pipeliner, "init")
        self.add = LuaScript(pipeliner, "add")
        self.settle = LuaScript(pipeliner, "settle")
        self.lease_slots = LuaScript(pipeliner, "lease_slots")
        self.take = LuaScript(pipeliner, "take")
        self.end = LuaScript(pipeliner, "end")
        self.extend = LuaScript(pipeliner, "extend")
        self.expired = LuaScript(pipeliner, "expired")
        self.reclaim = LuaScript(pipeliner, "reclaim")
        self.pace = LuaScript(pipeliner, "pace")
        self.is_done = LuaScript(pipeliner, "is_done")
        self.beat = LuaScript(pipeliner, "beat")
        self.trim = LuaScript(pipeliner, "trim")
