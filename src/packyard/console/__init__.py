"""The web console: server-rendered pages for people, served by `packyard serve` at `/` on the API's port
(docs/console.md). Accounts and sessions are auth/accounts.py's; every read and write goes through the
domain's services with the user acting as a principal of its role and scope (console/web.py)."""
