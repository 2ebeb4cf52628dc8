"""Platform kernel: database base, clock, money, tenancy, permissions, jobs, audit.

Nothing in here imports a domain package (clients, worklists, sla, portal).
"""
