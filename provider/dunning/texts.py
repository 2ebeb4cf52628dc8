"""Starting texts of the dunning templates (English and German), by how far along the sequence a step is."""

from __future__ import annotations

_INVOICE_LIST = {
    "en": "{% for invoice in invoices %}- {{ invoice.number }}, due {{ invoice.due_date }}: {{ invoice.amount }}\n"
    "{% endfor %}",
    "de": "{% for invoice in invoices %}- {{ invoice.number }}, fällig am {{ invoice.due_date }}: "
    "{{ invoice.amount }}\n{% endfor %}",
}

TEXTS = {
    ("en", "friendly"): (
        "A friendly reminder from {{ client_name }}",
        "Dear {{ debtor_name }},\n\nperhaps it slipped through: {{ invoice_count }} invoice(s) of {{ client_name }} "
        "are past their due date, {{ total_due }} in all.\n\n{list}\nYou can see them, download a statement, tell us "
        "when you will pay or tell us about a problem here:\n{{ self_service_link }}\n\nIf you have already paid, "
        "thank you, and please ignore this message.\n\nKind regards,\n{{ agency_name }} for {{ client_name }}",
    ),
    ("en", "neutral"): (
        "Second reminder: {{ total_due }} overdue",
        "Dear {{ debtor_name }},\n\nwe have not yet received payment of {{ total_due }}; the oldest invoice was due "
        "on {{ oldest_due_date }} ({{ days_overdue }} days ago).\n\n{list}\nPlease pay, or agree a date with us:\n"
        "{{ self_service_link }}\n\nKind regards,\n{{ agency_name }} for {{ client_name }}",
    ),
    ("en", "firm"): (
        "Final demand: {{ total_due }}",
        "Dear {{ debtor_name }},\n\ndespite our reminders, {{ total_due }} remains unpaid to {{ client_name }}. "
        "Please pay within 7 days of this letter or contact us; otherwise a collector will call you.\n\n{list}\n"
        "{{ self_service_link }}\n\n{{ agency_name }} for {{ client_name }}",
    ),
    ("de", "friendly"): (
        "Freundliche Zahlungserinnerung von {{ client_name }}",
        "Sehr geehrte Damen und Herren ({{ debtor_name }}),\n\nvielleicht ist es untergegangen: {{ invoice_count }} "
        "Rechnung(en) von {{ client_name }} sind überfällig, insgesamt {{ total_due }}.\n\n{list}\nHier sehen Sie "
        "die Rechnungen, laden einen Kontoauszug, nennen uns einen Zahltermin oder melden ein Problem:\n"
        "{{ self_service_link }}\n\nFalls Sie bereits bezahlt haben, danken wir Ihnen.\n\nMit freundlichen Grüßen\n"
        "{{ agency_name }} im Auftrag von {{ client_name }}",
    ),
    ("de", "neutral"): (
        "Zweite Erinnerung: {{ total_due }} überfällig",
        "Sehr geehrte Damen und Herren ({{ debtor_name }}),\n\nwir haben die Zahlung von {{ total_due }} noch nicht "
        "erhalten; die älteste Rechnung war am {{ oldest_due_date }} fällig.\n\n{list}\nBitte zahlen Sie oder "
        "vereinbaren Sie einen Termin:\n{{ self_service_link }}\n\nMit freundlichen Grüßen\n{{ agency_name }}",
    ),
    ("de", "firm"): (
        "Letzte Mahnung: {{ total_due }}",
        "Sehr geehrte Damen und Herren ({{ debtor_name }}),\n\ntrotz unserer Erinnerungen sind {{ total_due }} an "
        "{{ client_name }} offen. Bitte zahlen Sie innerhalb von 7 Tagen oder melden Sie sich bei uns.\n\n{list}\n"
        "{{ self_service_link }}\n\n{{ agency_name }} im Auftrag von {{ client_name }}",
    ),
}
TASK_TEXT = ("Call about {{ total_due }} overdue ({{ days_overdue }} days)", "Dunning step: {{ stage_name }}.")


def has_language(language: str) -> bool:
    return any(lang == language for lang, _tone in TEXTS)


def tone_for(days_past_due: int) -> str:
    return "friendly" if days_past_due < 10 else "neutral" if days_past_due < 30 else "firm"


def default_text(language: str, days_past_due: int, channel: str) -> tuple[str, str, str]:
    """(subject, body, tone) to start a template from."""
    tone = tone_for(days_past_due)
    if channel == "task":
        return TASK_TEXT[0], TASK_TEXT[1], tone
    lang = language if (language, tone) in TEXTS else "en"
    subject, body = TEXTS[(lang, tone)]
    return subject, body.replace("{list}", _INVOICE_LIST[lang]), tone
