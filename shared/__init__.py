"""Parley's shared package: event contracts, topic catalogue, Kafka and MongoDB plumbing.

Everything two or more services need lives here, and only that: each service keeps its own
business rules in its own ``handlers.py``.
"""
