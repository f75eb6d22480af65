"""Unit tests of intake's rules: validation, masking, placement, deadline, priority."""
