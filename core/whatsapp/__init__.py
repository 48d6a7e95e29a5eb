"""WhatsApp Cloud API domain logic: signatures, webhook parsing, status rules, consent keywords,
the customer-service window, Graph API error classes and localized texts. Pure: no I/O."""
