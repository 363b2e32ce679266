import os
import sys

# Tests import the package from the checkout (in-place build or editable install).
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
