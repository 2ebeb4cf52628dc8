"""Collector queues: scoring, assignment, actions, promises, payment plans, contact gates."""
