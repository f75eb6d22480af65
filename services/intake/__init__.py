"""Intake (投诉受理): every complaint from every channel becomes one registered, acknowledged case.

See ``docs/intake.md``. Run with ``python -m services.intake worker`` (the Kafka agents) or
``python -m services.intake api --port 8001`` (the HTTP face).
"""
