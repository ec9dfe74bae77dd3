"""The web console: server-rendered pages at `/` whose scripts drive the JSON API (`/api/v1`)
with the session cookie, so every business rule stays in the API."""

from kupe.server.console.routes import install_console

__all__ = ["install_console"]
