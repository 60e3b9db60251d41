import sys

from careguard.cli import main

sys.exit(main())
