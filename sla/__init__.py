"""Contract terms, business calendars, SLA clocks and breaches, disputes."""
