"""outreach: omnichannel outreach orchestrator for accounts receivable and collections."""

__version__ = "0.1.0"
