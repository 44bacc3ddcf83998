"""Pulling a registry's SS12000 API into a drop folder, the night's first stage (CONTRACT §1 `api:`, §2)."""
