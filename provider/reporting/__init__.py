"""KPIs, daily snapshots and monthly client reports (DESIGN §7).

formulas.py   the KPI formulas as pure functions of sums (DSO, countback, BPDSO, ADD, CEI, recovery)
kpi.py        the set-based SQL over the journal that produces those sums, as of any date
models.py     frozen monthly reports (with their PDF) and daily KPI snapshots
reports.py    generate / re-issue a monthly report (services: flush, never commit)
charts.py     SVG charts (pygal), the same for the page and the PDF
render.py     report HTML and PDF (WeasyPrint, no URL fetching)
schedule.py   the client's Nth business day
hooks.py      figures owned by other packages (SLA, disputes, promises, collector activity)
jobs.py       the snapshot job, the monthly scheduler and the per-client render job
views.py      manager pages (agency dashboard, client KPIs, reports, runs) and the portal's reports
"""
