"""Integration tests of the intake service on the real broker and database."""
