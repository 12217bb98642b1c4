"""Test support shared by every test folder: a real PostgreSQL, real ``faceid serve`` processes and a real
browser. The fixtures built on them are exposed by ``tests/conftest.py``."""
