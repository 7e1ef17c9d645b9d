"""The crawl's decisions, as pure functions that return actions as data (sans-I/O).

Theory of operation. What to do with a URL and with what happened to it is decided here, by synchronous
functions of (request, outcome, config, now, a random draw) that read no clock, draw no random number
and touch no socket, file or frontier. They return `actions` — `Fetch`, `Record`, `Retry`, `Refetch`,
`Release`, `Enqueue`, `SettleTrap`, `PaceHost` — and the engine (`engine.py`) only carries them out, in
order, against the frontier, the fetcher and the store. So every rule of README's politeness, robots.txt,
retry, redirect and trap tables is a row of a table test on virtual time (`tests/test_policy.py`).

    pacing.py   a host's adaptive delay: `HostPace`, and `next_pace` applied by the frontier
    rules.py    retry backoff and Retry-After, robots.txt verdicts, responses, redirects, links
    actions.py  what the rules return
"""
