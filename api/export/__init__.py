"""Data exports: CSV and JSON files of what a role may read, streamed in constant memory.

One mechanism serves every dataset (customers, subscriptions, invoices, alerts, revenue, audit
entries): a dataset (`dataset.py`) declares its columns with the capability each needs, its
filter parameters (parsed into the domain service's filter, so the rows are those of the
GraphQL list with the same filter) and how its rows are read. `run.py` reads them in one
database snapshot, `encode.py` writes CSV or JSON, `http.py` serves `GET /exports/{name}.{csv|json}`
and `cli.py` is `ledgerline export`.
"""
