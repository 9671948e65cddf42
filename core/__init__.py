"""Shared kernel: configuration, database helpers, audit chain, check digits, clock."""
