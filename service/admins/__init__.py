"""Admin accounts, one-time login codes over Telegram, and sessions.

``accounts`` keeps the accounts in the database (``kervan admin add|list|disable``); ``otp`` and
``sessions`` keep codes and sessions in the state backend for a *kind* of principal;
``login.OtpLogin`` is the login flow over them for one kind (site people log in through it
too: ``service/tracking/people_auth.py``); ``facility.AdminAuth`` is the admin kind, for the
routes (``service/routes/admin_auth.py``), the admin guard (``service/auth.py``) and the
WebSocket handler.
"""
