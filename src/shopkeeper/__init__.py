"""Shopkeeper: a customer data and personalization platform for online shops."""

__version__ = "0.1.0"
