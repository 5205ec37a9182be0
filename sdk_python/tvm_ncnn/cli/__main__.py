"""python -m tvm_ncnn.cli"""

import sys

from .main import main

sys.exit(main())
