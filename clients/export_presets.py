"""Built-in presets for the invoice and receivables exports of accounting products, read as they are exported.

A preset says where an export keeps each field of a placement (its column names, with the alternatives the
product has used), how it writes dates, whether it has one row per invoice or one row per invoice *line*
(summed, or repeating the invoice's totals), which of its rows are not receivables (drafts, voids, income
lines of a journal export) and which are payments of an invoice. It is detected from the header (the preset
whose identifying columns are all there; the most specific when several are) or chosen on the upload form.

Each preset was written from the product's public documentation of the export and checked against a real
export where one is public (tests/samples/exports/SOURCES.md names each file, its source and its licence).
Nothing here guesses: a date format a product writes by region is the preset's default, shown on the preview
and changed on the form; an export without a currency column is read in the client's base currency, which the
preview says; an export without due dates needs the client's payment terms.
"""

from __future__ import annotations

from dataclasses import dataclass, field

LINE_MODES = {
    "": "one row per invoice",
    "sum": "several rows per invoice: the amounts of its lines are added up",
    "same": "several rows per invoice: each row repeats the invoice's total",
}


@dataclass(frozen=True)
class Rule:
    """What a row is, by the value of one column: `only` leaves out rows whose value is not one of `values`,
    `leave_out` rows whose value is, `refuse` makes those rows a problem, `payment` marks rows that are
    payments of the invoice they name (their amount is added, negative; their date is not compared)."""

    column: str
    values: frozenset[str]
    action: str
    reason: str

    def matches(self, value: str) -> bool:
        return value.strip().casefold() in self.values


def rule(column: str, action: str, reason: str, *values: str) -> Rule:
    return Rule(column, frozenset(v.casefold() for v in values), action, reason)


@dataclass(frozen=True)
class Preset:
    key: str
    product: str
    export: str  # which export of the product, as its menus name it
    signature: tuple[str, ...]  # columns that identify the export (all must be in the header)
    columns: dict[str, tuple[str, ...]]  # field -> the column names the export uses for it, preferred first
    date_format: str = "iso"  # the default; "mdy"/"dmy" where the product writes dates by region
    lines: str = ""
    rules: tuple[Rule, ...] = ()
    currency_from_client: bool = False  # the export has no currency column: the client's base currency
    source: str = ""  # the public documentation the preset was written from
    notes: str = ""
    decimal_mark: str = "."
    aliases: tuple[str, ...] = field(default=())

    @property
    def label(self) -> str:
        return f"{self.product}: {self.export}"


def _key(name: str) -> str:
    """A column name as presets compare it: case, spaces, underscores and a leading "*" (a required column in
    some templates, "*InvoiceNumber") do not matter."""
    return " ".join(name.strip().lstrip("*").replace("_", " ").split()).casefold()


PRESETS: dict[str, Preset] = {
    p.key: p
    for p in (
        Preset(
            "quickbooks_online",
            "QuickBooks Online",
            "invoices CSV (one row per product or service line)",
            signature=("InvoiceNo", "Customer", "InvoiceDate", "DueDate", "ItemAmount"),
            columns={
                "invoice_number": ("InvoiceNo",),
                "debtor_ref": ("Customer",),
                "debtor_name": ("Customer",),
                "issue_date": ("InvoiceDate",),
                "due_date": ("DueDate",),
                "amount": ("ItemAmount",),
                "tax": ("ItemTaxAmount", "TaxAmount"),
                "currency": ("Currency", "Currency Code"),
            },
            date_format="mdy",
            lines="sum",
            currency_from_client=True,
            source="https://quickbooks.intuit.com/learn-support/en-us/help-article/import-export-data-files/import-invoices-quickbooks-online/L2yVO4q3W_US_en_US",
            notes="Dates are written in the company's region (MM/DD/YYYY in the US; choose DD/MM/YYYY elsewhere).",
        ),
        Preset(
            "xero",
            "Xero",
            "sales invoices export (Business > Invoices > Export)",
            signature=("ContactName", "InvoiceNumber", "InvoiceDate", "DueDate", "Total"),
            columns={
                "invoice_number": ("InvoiceNumber",),
                "debtor_ref": ("ContactName",),
                "debtor_name": ("ContactName",),
                "issue_date": ("InvoiceDate",),
                "due_date": ("DueDate",),
                "amount": ("Total",),
                "paid": ("InvoiceAmountPaid",),
                "balance": ("InvoiceAmountDue",),
                "currency": ("Currency",),
                "po_reference": ("Reference",),
            },
            date_format="dmy",
            lines="same",
            rules=(
                rule("Status", "leave_out", "draft or not approved", "DRAFT", "SUBMITTED"),
                rule("Status", "leave_out", "voided or deleted", "VOIDED", "DELETED"),
            ),
            source="https://central.xero.com/s/article/Export-invoices-and-bills",
            notes="One row per invoice line, each repeating the invoice's Total, InvoiceAmountPaid and "
            "InvoiceAmountDue; dates in the organisation's region (DD/MM/YYYY in the UK, AU and NZ).",
        ),
        Preset(
            "sage_50",
            "Sage 50 Accounts",
            "audit trail transactions CSV (type SI: sales invoices)",
            signature=("Type", "Account Reference", "Nominal A/C Ref", "Net Amount", "Tax Amount"),
            columns={
                "invoice_number": ("Reference",),
                "debtor_ref": ("Account Reference",),
                "issue_date": ("Date",),
                "amount": ("Net Amount",),
                "tax": ("Tax Amount",),
                "po_reference": ("Extra Reference",),
            },
            date_format="dmy",
            lines="sum",
            rules=(rule("Type", "only", "not a sales invoice (type SI)", "SI"),),
            currency_from_client=True,
            source="https://gb-kb.sage.com/portal/app/portlet/ka/Sage50/import-audit-trail-transactions",
            notes="Net and tax amounts are added; the file has no due dates (give the client's payment terms).",
        ),
        Preset(
            "sage_accounting",
            "Sage Business Cloud Accounting",
            "sales invoices list export (Sales > Sales Invoices > Export)",
            signature=("Invoice No.", "Customer", "Date", "Due Date", "Total", "Outstanding"),
            columns={
                "invoice_number": ("Invoice No.", "Invoice Number"),
                "debtor_ref": ("Customer Reference", "Customer"),
                "debtor_name": ("Customer", "Customer Name"),
                "issue_date": ("Date", "Invoice Date"),
                "due_date": ("Due Date",),
                "amount": ("Total",),
                "balance": ("Outstanding",),
                "currency": ("Currency",),
                "po_reference": ("Reference",),
            },
            date_format="dmy",
            rules=(rule("Status", "leave_out", "draft or void", "Draft", "Void"),),
            currency_from_client=True,
            source="https://help.accounting.sage.com/en-gb/accounting/sales/sales-invoices.html",
            notes="No public export file was found: the preset follows the list's documented columns.",
        ),
        Preset(
            "zoho_invoice",
            "Zoho Invoice",
            "invoices export (Invoices > Export Invoices, one row per item)",
            signature=("Invoice Date", "Invoice Number", "Invoice Status", "Customer Name", "Due Date"),
            columns={
                "invoice_number": ("Invoice Number",),
                "debtor_ref": ("Customer ID", "Customer Name"),
                "debtor_name": ("Customer Name", "Company Name"),
                "issue_date": ("Invoice Date",),
                "due_date": ("Due Date",),
                "amount": ("Total",),
                "balance": ("Balance",),
                "currency": ("Currency Code", "Currency"),
                "po_reference": ("PurchaseOrder",),
            },
            lines="same",
            rules=(
                rule("Invoice Status", "leave_out", "draft (never sent)", "Draft"),
                rule("Invoice Status", "leave_out", "void", "Void"),
            ),
            source="https://www.zoho.com/invoice/help/settings/export-data.html",
            notes="Total and Balance are the invoice's, repeated on each item row.",
        ),
        Preset(
            "freshbooks",
            "FreshBooks",
            "invoice details report CSV (one row per line)",
            signature=("Client Name", "Invoice #", "Date Issued", "Invoice Status", "Line Total"),
            columns={
                "invoice_number": ("Invoice #",),
                "debtor_ref": ("Client Name",),
                "debtor_name": ("Client Name",),
                "issue_date": ("Date Issued",),
                "due_date": ("Date Due", "Due Date"),
                "amount": ("Line Total",),
                "currency": ("Currency",),
            },
            lines="sum",
            rules=(
                rule("Invoice Status", "leave_out", "draft (never sent)", "draft"),
                rule("Invoice Status", "leave_out", "paid", "paid", "auto-paid"),
                rule(
                    "Invoice Status",
                    "refuse",
                    "is partly paid and the export does not say how much is still open; place it by hand",
                    "partial",
                ),
            ),
            source="https://support.freshbooks.com/hc/en-us/articles/115012172828-Export-Invoice-Details",
            notes="Without a Date Due column the due date comes from the client's payment terms.",
        ),
        Preset(
            "wave",
            "Wave",
            "accounting transactions export (Reports > Account Transactions CSV)",
            signature=("Transaction ID", "Transaction Date", "Account Name", "Invoice Number", "Account Type"),
            columns={
                "invoice_number": ("Invoice Number",),
                "debtor_ref": ("Customer",),
                "debtor_name": ("Customer",),
                "issue_date": ("Transaction Date",),
                "amount": ("Amount (One column)",),
            },
            lines="sum",
            rules=(
                rule("Account Type", "only", "not a receivables line", "System Receivable Invoice"),
                rule("Transaction Description", "payment", "payment of the invoice", "Invoice Payment"),
            ),
            currency_from_client=True,
            source="https://support.waveapps.com/hc/en-us/articles/208621636-Export-your-accounting-data",
            notes="Only the Accounts Receivable lines are read: an invoice's line less its payments is what is "
            "open; the file has no due dates (give the client's payment terms).",
        ),
        Preset(
            "wave_invoices",
            "Wave",
            "invoices export (one row per invoice)",
            signature=("Invoice Number", "Customer Name", "Invoice Date", "Invoice Total", "Invoice Paid"),
            columns={
                "invoice_number": ("Invoice Number",),
                "debtor_ref": ("Customer Name",),
                "debtor_name": ("Customer Name",),
                "issue_date": ("Invoice Date",),
                "due_date": ("Due Date",),
                "amount": ("Invoice Total",),
                "paid": ("Invoice Paid",),
                "currency": ("Currency",),
            },
            date_format="dmy_dash",
            currency_from_client=True,
            source="https://support.waveapps.com/hc/en-us/articles/208621636-Export-your-accounting-data",
            notes="Dates as DD-MM-YYYY (27-01-2022) unless chosen otherwise; YYYY-MM-DD is always read.",
        ),
        Preset(
            "odoo",
            "Odoo",
            "customer invoices list export (Invoicing > Customers > Invoices > Export)",
            signature=("Number", "Invoice/Bill Date", "Due Date"),
            columns={
                "invoice_number": ("Number",),
                "debtor_ref": ("Partner", "Customer", "Invoice Partner Display Name"),
                "debtor_name": ("Partner", "Customer", "Invoice Partner Display Name"),
                "issue_date": ("Invoice/Bill Date", "Invoice Date"),
                "due_date": ("Due Date",),
                "amount": ("Total", "Total Signed", "Total in Currency"),
                "balance": ("Amount Due", "Amount Due Signed"),
                "currency": ("Currency",),
                "po_reference": ("Reference", "Customer Reference"),
            },
            rules=(rule("Status", "leave_out", "draft or cancelled", "Draft", "Cancelled"),),
            currency_from_client=True,
            source="https://www.odoo.com/documentation/17.0/applications/essentials/export_import_data.html",
        ),
        Preset(
            "odoo_import_compatible",
            "Odoo",
            "customer invoices, import-compatible export (technical field names)",
            signature=("name", "invoice_date", "invoice_date_due", "amount_total"),
            columns={
                "invoice_number": ("name",),
                "debtor_ref": ("partner_id", "partner_id/id", "invoice_partner_display_name"),
                "debtor_name": ("partner_id", "invoice_partner_display_name"),
                "issue_date": ("invoice_date",),
                "due_date": ("invoice_date_due",),
                "amount": ("amount_total", "amount_total_signed"),
                "balance": ("amount_residual", "amount_residual_signed"),
                "currency": ("currency_id",),
                "po_reference": ("ref",),
            },
            rules=(
                rule("state", "leave_out", "draft or cancelled", "draft", "cancel"),
                rule("move_type", "only", "not a customer invoice", "out_invoice", "Customer Invoice"),
            ),
            currency_from_client=True,
            source="https://www.odoo.com/documentation/17.0/applications/essentials/export_import_data.html",
            notes="Exported with “I want to update data (import-compatible export)”: field names, not labels.",
        ),
        Preset(
            "erpnext_receivable",
            "ERPNext",
            "Accounts Receivable report export",
            signature=("Voucher Type", "Voucher No", "Due Date", "Outstanding Amount"),
            columns={
                "invoice_number": ("Voucher No",),
                "debtor_ref": ("Party", "Customer"),
                "debtor_name": ("Customer Name", "Party Name", "Party", "Customer"),
                "issue_date": ("Posting Date",),
                "due_date": ("Due Date",),
                "amount": ("Invoiced Amount",),
                "balance": ("Outstanding Amount",),
                "currency": ("Currency",),
                "po_reference": ("Customer LPO", "PO No"),
            },
            date_format="dmy_dash",
            rules=(rule("Voucher Type", "only", "not a sales invoice", "Sales Invoice"),),
            currency_from_client=True,
            source="https://docs.erpnext.com/docs/user/manual/en/accounts-receivable",
            notes="Dates as the site's System Settings write them (DD-MM-YYYY by default).",
        ),
        Preset(
            "erpnext_sales_invoice",
            "ERPNext",
            "Sales Invoice list export (Report view > Export)",
            signature=("Customer", "Posting Date", "Grand Total", "Outstanding Amount"),
            columns={
                "invoice_number": ("ID", "Name", "Sales Invoice"),
                "debtor_ref": ("Customer",),
                "debtor_name": ("Customer Name", "Customer"),
                "issue_date": ("Posting Date",),
                "due_date": ("Due Date", "Payment Due Date"),
                "amount": ("Grand Total",),
                "balance": ("Outstanding Amount",),
                "currency": ("Currency",),
                "po_reference": ("Customer's Purchase Order", "PO No"),
            },
            date_format="dmy_dash",
            rules=(rule("Status", "leave_out", "draft, cancelled or a return", "Draft", "Cancelled", "Return"),),
            currency_from_client=True,
            source="https://docs.erpnext.com/docs/user/manual/en/sales-invoice",
        ),
        Preset(
            "invoice_ninja",
            "Invoice Ninja",
            "invoices export (Settings > Import | Export, CSV)",
            signature=("Client", "Invoice Number", "Amount", "Paid", "Invoice Date", "Due Date"),
            columns={
                "invoice_number": ("Invoice Number",),
                "debtor_ref": ("Client",),
                "debtor_name": ("Client",),
                "issue_date": ("Invoice Date",),
                "due_date": ("Due Date",),
                "amount": ("Amount",),
                "paid": ("Paid",),
                "currency": ("Currency",),
                "po_reference": ("PO Number",),
            },
            lines="same",
            rules=(rule("Status", "leave_out", "draft", "Draft"),),
            currency_from_client=True,
            source="https://invoiceninja.github.io/en/import-and-export/",
            notes="One row per item, each repeating the invoice's Amount and Paid; amounts may carry the "
            "currency's symbol ($13.50).",
        ),
        Preset(
            "invoice_ninja_v5",
            "Invoice Ninja",
            "invoices report export (Reports > Invoices > Export)",
            signature=("Invoice Number", "Amount", "Balance", "Date", "Due Date"),
            columns={
                "invoice_number": ("Invoice Number",),
                "debtor_ref": ("Client Number", "Client Name", "Client"),
                "debtor_name": ("Client Name", "Client"),
                "issue_date": ("Date", "Invoice Date"),
                "due_date": ("Due Date",),
                "amount": ("Amount",),
                "balance": ("Balance",),
                "currency": ("Currency",),
                "po_reference": ("PO Number",),
            },
            rules=(rule("Status", "leave_out", "draft or cancelled", "Draft", "Cancelled"),),
            currency_from_client=True,
            source="https://invoiceninja.github.io/en/reports/",
        ),
        Preset(
            "invoice2go",
            "Invoice2go",
            "invoices export (CSV)",
            signature=("DocumentNumber", "DocumentDate", "Name", "TotalAmount", "BalanceDueAmount"),
            columns={
                "invoice_number": ("DocumentNumber",),
                "debtor_ref": ("Name",),
                "debtor_name": ("Name",),
                "issue_date": ("DocumentDate",),
                "amount": ("TotalAmount",),
                "balance": ("BalanceDueAmount",),
                "currency": ("CurrencyCode",),
            },
            rules=(rule("DocumentStatus", "leave_out", "void or deleted", "void", "voided", "deleted"),),
            currency_from_client=True,
            source="https://support.invoice2go.com/hc/en-us/articles/360001009063-Export-your-data",
            notes="Items and taxes are packed into single quoted cells; the file has no due dates (give the "
            "client's payment terms).",
        ),
        Preset(
            "invoicely",
            "Invoicely",
            "invoices export (CSV)",
            signature=("Date", "Due", "Details", "Client", "Status", "Total"),
            columns={
                "invoice_number": ("Details",),
                "debtor_ref": ("Client",),
                "debtor_name": ("Client",),
                "issue_date": ("Date",),
                "due_date": ("Due",),
                "amount": ("Total",),
                "currency": ("Currency",),
            },
            date_format="mon_d_y",
            rules=(
                rule("Status", "leave_out", "draft", "Draft"),
                rule("Status", "leave_out", "paid", "Paid"),
                rule(
                    "Status",
                    "refuse",
                    "is partly paid and the export does not say how much is still open; place it by hand",
                    "Partial",
                    "Partially Paid",
                ),
            ),
            currency_from_client=True,
            source="https://invoicely.com/",
            notes="Dates are written with the month's name (Jan 28 2021).",
        ),
    )
}


def preset_choices() -> list[tuple[str, str]]:
    """(key, label) of every preset, for the upload form."""
    return [(p.key, p.label) for p in PRESETS.values()]


def detect(header: list[str]) -> Preset | None:
    """The preset whose identifying columns are all in `header` (the one that names most, when several do)."""
    keys = {_key(h) for h in header}
    found = [p for p in PRESETS.values() if all(_key(c) in keys for c in p.signature)]
    return max(found, key=lambda p: len(p.signature), default=None)


def columns_in(preset: Preset, header: list[str]) -> dict[str, str]:
    """For each field of the preset, the header's name of the first of its columns that the file has (the
    preferred name when none is there, so that a missing column is named as the product names it)."""
    by_key = {_key(h): h for h in header if h.strip()}
    out = {}
    for field_name, names in preset.columns.items():
        out[field_name] = next((by_key[_key(n)] for n in names if _key(n) in by_key), "")
        if not out[field_name] and field_name in ("invoice_number", "debtor_ref", "issue_date", "amount"):
            out[field_name] = names[0]
    return out


def column_key(name: str) -> str:
    return _key(name)
