"""Admin accounts, one-time login codes over Telegram, and sessions.

``accounts`` keeps the accounts in the database (``kervan admin add|list|disable``); ``otp`` and
``sessions`` keep codes and sessions in the state backend for a *kind* of principal, so site
members can later log in through the same layer; ``facility.AdminAuth`` puts them together
for the routes (``service/routes/admin_auth.py``), the admin guard (``service/auth.py``) and
the WebSocket handler.
"""
