"""Test helpers that ship with the package (the local SS12000 API server), so the demo can use them too."""
