"""Billing (API §8): metering from the usage ledger, invoices, credits and the running estimate."""
