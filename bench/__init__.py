"""Benchmarks of walkme-dic (not part of the test run): `python -m bench --help`."""
