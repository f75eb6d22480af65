"""Parley services, one package per stage."""
