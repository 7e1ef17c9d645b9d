"""One crawl over every core of a machine (`--processes`): worker processes fetch, parse and store, while
the crawl's first process keeps its one frontier and its manifest (`pool.py`); they talk over a socket
pair (`wire.py`), a worker through a frontier that forwards its calls (`remote.py`, `worker.py`)."""
