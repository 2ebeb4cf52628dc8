"""The agency's own money with its clients: fee schedules, the agency's books (trust, fees, tax), remittance runs,
remittance statements and fee invoices. See provider/books/models.py for the chart of accounts."""
