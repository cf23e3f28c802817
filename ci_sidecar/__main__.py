"""``python -m ci_sidecar`` is the same as the ``ci-sidecar`` console script."""

from ci_sidecar.cli import main

raise SystemExit(main())
