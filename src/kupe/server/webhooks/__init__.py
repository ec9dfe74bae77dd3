"""Webhook machinery below the services and the reconciler: URL safety checks (SSRF), the
sealing of signing secrets, and the signed HTTP delivery itself. It knows no database."""
