"""Starting texts of the dunning templates (English and German), by how far along the sequence a step is."""

from __future__ import annotations

_INVOICE_LIST = {
    "en": "{% for invoice in invoices %}- {{ invoice.number }}, due {{ invoice.due_date }}: {{ invoice.amount }}\n"
    "{% endfor %}",
    "de": "{% for invoice in invoices %}- {{ invoice.number }}, fällig am {{ invoice.due_date }}: "
    "{{ invoice.amount }}\n{% endfor %}",
    "fr": "{% for invoice in invoices %}- {{ invoice.number }}, échue le {{ invoice.due_date }} : "
    "{{ invoice.amount }}\n{% endfor %}",
    "es": "{% for invoice in invoices %}- {{ invoice.number }}, vencida el {{ invoice.due_date }}: "
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
    ("fr", "friendly"): (
        "Petit rappel de {{ client_name }}",
        "Bonjour {{ debtor_name }},\n\nsauf erreur de notre part, {{ invoice_count }} facture(s) de {{ client_name }} "
        "sont échues, pour un total de {{ total_due }}.\n\n{list}\nConsultez-les, téléchargez un relevé, indiquez-nous "
        "une date de paiement ou signalez un problème ici :\n{{ self_service_link }}\n\nSi vous avez déjà payé, "
        "merci, et ne tenez pas compte de ce message.\n\nCordialement,\n{{ agency_name }} pour {{ client_name }}",
    ),
    ("fr", "neutral"): (
        "Deuxième rappel : {{ total_due }} impayés",
        "Bonjour {{ debtor_name }},\n\nnous n'avons pas encore reçu le paiement de {{ total_due }} ; la plus ancienne "
        "facture était due le {{ oldest_due_date }}.\n\n{list}\nMerci de régler ou de convenir d'une date :\n"
        "{{ self_service_link }}\n\nCordialement,\n{{ agency_name }}",
    ),
    ("fr", "firm"): (
        "Mise en demeure : {{ total_due }}",
        "Madame, Monsieur ({{ debtor_name }}),\n\nmalgré nos rappels, {{ total_due }} restent dus à {{ client_name }}. "
        "Merci de régler sous 7 jours ou de nous contacter.\n\n{list}\n{{ self_service_link }}\n\n"
        "{{ agency_name }} pour {{ client_name }}",
    ),
    ("es", "friendly"): (
        "Recordatorio amistoso de {{ client_name }}",
        "Estimado/a {{ debtor_name }}:\n\nquizá se le pasó: {{ invoice_count }} factura(s) de {{ client_name }} han "
        "vencido, {{ total_due }} en total.\n\n{list}\nPuede verlas, descargar un extracto, indicarnos cuándo pagará "
        "o comunicarnos un problema aquí:\n{{ self_service_link }}\n\nSi ya ha pagado, gracias; ignore este "
        "mensaje.\n\nAtentamente,\n{{ agency_name }} en nombre de {{ client_name }}",
    ),
    ("es", "neutral"): (
        "Segundo recordatorio: {{ total_due }} vencidos",
        "Estimado/a {{ debtor_name }}:\n\ntodavía no hemos recibido el pago de {{ total_due }}; la factura más antigua "
        "venció el {{ oldest_due_date }}.\n\n{list}\nPague o acuerde una fecha con nosotros:\n"
        "{{ self_service_link }}\n\nAtentamente,\n{{ agency_name }}",
    ),
    ("es", "firm"): (
        "Último requerimiento: {{ total_due }}",
        "Estimado/a {{ debtor_name }}:\n\npese a nuestros recordatorios, siguen pendientes {{ total_due }} con "
        "{{ client_name }}. Pague en 7 días o contáctenos.\n\n{list}\n{{ self_service_link }}\n\n"
        "{{ agency_name }} en nombre de {{ client_name }}",
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
