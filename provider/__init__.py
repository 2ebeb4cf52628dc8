"""The agency and the platform kernel."""
