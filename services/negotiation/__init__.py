"""Negotiation (协商沟通, 解决方案制定): workspaces, offers within authority, fairness, agreement."""
