"""Business rules of the portal, as plain functions that flush and never commit."""
