"""The S3 fixtures of the artifact tests (moto's server and its fault proxy) serve the group tests too."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "artifacts"))
