"""Dunning: recovering failed payments with a per-tier policy of timed steps (emails, payment
retries, and at the end marking the invoice uncollectible and suspending or cancelling)."""
