import sys

from runflow_cli.cli import main

sys.exit(main())
