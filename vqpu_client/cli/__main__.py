"""`python -m vqpu_client.cli`: the same as the `vqpu` console script."""

import sys

from vqpu_client.cli import main

sys.exit(main())
