"""WhatsApp Cloud API adapter and the CRM store behind the webhook and admin routes."""
