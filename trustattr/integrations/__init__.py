"""Integrations of the attribution engine with training libraries."""

from trustattr.integrations.trl import AttributionCallback

__all__ = ["AttributionCallback"]
