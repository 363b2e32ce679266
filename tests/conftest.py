import os
import sys
import tempfile

# Tests import the package from the checkout (in-place build or editable install).
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# ImageFolder / TarShards cache their index: keep the tests' indexes out of ~/.cache.
os.environ.setdefault("TINYVIT_INDEX_DIR", tempfile.mkdtemp(prefix="tinyvit-test-index-"))
