"""The Stripe gateway: the only package that imports `stripe`."""
