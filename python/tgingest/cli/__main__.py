import sys

from tgingest.cli import main

sys.exit(main())
