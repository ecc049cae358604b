import sys
from pathlib import Path

# The planted-data helper sits beside these tests.
sys.path.insert(0, str(Path(__file__).parent))
