"""Client businesses (tenants) and their ledgers."""
