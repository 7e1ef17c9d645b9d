"""The live crawl dashboard: an aiohttp.web application (app.py) over a source of numbers (source.py),
served beside a running crawl or over a stored one (server.py). Its page is static/: no CDN, no build."""
