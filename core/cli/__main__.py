import sys

from perception_r1.cli import main

sys.exit(main())
