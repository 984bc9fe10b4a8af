"""Customer health and churn risk: a daily 0 to 100 score per customer from usage, engagement,
support, payment and adoption (definitions: README, "Customer health")."""
