"""What a client user sees: the portal and monthly reports."""
