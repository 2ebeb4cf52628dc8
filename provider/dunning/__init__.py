"""Dunning: per-client reminder sequences (policies, stages, templates), the daily run and its decisions,
letters for a mail house, the debtor's self-service page and the effect of each stage."""
