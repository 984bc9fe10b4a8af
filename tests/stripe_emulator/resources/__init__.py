"""Resource groups of the Stripe emulator; importing a module registers its endpoints."""
