import sys

from crawlpool.cli import main

sys.exit(main())
