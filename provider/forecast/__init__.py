"""Cash forecast and payment behaviour: a per-debtor time-to-payment model learned from each client's own ledger
(model.py), behaviour segments, risk grades and credit limits (segments.py), the 13-week collections forecast with its
80 % interval and the standing backtest (forecast.py), the nightly refit (services.py, jobs.py), pages, API and CLI."""
