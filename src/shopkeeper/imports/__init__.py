"""Offline sources: CRM customers, POS orders and product files, read from CSV or JSON
Lines and sent through the same event log and pipeline as live events."""
