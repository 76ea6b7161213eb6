import sys

from streams.entry import main

sys.exit(main())
