"""Event contracts: the one envelope every event travels in, and each event's payload.

One place for each event's contract: the payload models live in this package, one module
per stage, and ``shared.topics`` says which topic carries which payload.
"""

from shared.contracts.envelope import Envelope, Payload

__all__ = ["Envelope", "Payload"]
