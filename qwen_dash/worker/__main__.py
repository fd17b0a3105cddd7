"""``python -m qwen_dash.worker --model KEY ...``: how the pool starts a worker."""

import sys

from qwen_dash.worker.process import main

sys.exit(main())
