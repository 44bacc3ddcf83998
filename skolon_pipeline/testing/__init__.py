"""Test helpers that ship with the package, so the demo and the benchmark can use them too: the drop builder
(`drops`: SS12000 and OneRoster drops from Python records) and the local SS12000 API server (`ss12000_server`)."""
