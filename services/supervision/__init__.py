"""Supervision: watches every stream and every deadline, and raises alerts a person must see."""
