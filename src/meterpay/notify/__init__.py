"""Notifications: an outbox of messages to owners and integrators, and the channels that
carry them (in-app, SMS, email, WeChat, webhooks). See docs/notifications.md."""
