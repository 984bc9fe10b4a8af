"""Outgoing email: an outbox written in the sender's transaction, delivered over SMTP after commit."""
