import sys

from qwen_dash.cli import main

sys.exit(main())
