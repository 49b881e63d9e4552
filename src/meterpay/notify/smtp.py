"""Email over SMTP (smtplib): plain text, one message per recipient.

A refused recipient or a 5xx answer is final; a 4xx answer, a dropped connection or a
timeout is worth another try. The Message-ID names the outbox message, so the provider
id in the delivery log finds the mail in the server's logs.
"""

from __future__ import annotations

import smtplib
import ssl
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

from meterpay.config import Settings
from meterpay.notify.configuration import blank_settings
from meterpay.notify.model import Outgoing, SendResult


class SmtpEmail:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def send(self, outgoing: Outgoing, now: datetime) -> SendResult:
        email = self._compose(outgoing, now)
        try:
            self._deliver(email)
        except smtplib.SMTPRecipientsRefused as exc:
            return SendResult.failed(f"recipient refused: {exc.recipients}")
        except smtplib.SMTPNotSupportedError as exc:
            return SendResult.failed(f"the server does not offer it (MP_SMTP_STARTTLS?): {exc}")
        except smtplib.SMTPResponseException as exc:
            error = f"smtp {exc.smtp_code}: {exc.smtp_error!r}"
            return SendResult.failed(error) if exc.smtp_code >= 500 else SendResult.retry(error)
        except (OSError, smtplib.SMTPException) as exc:
            return SendResult.retry(f"{type(exc).__name__}: {exc}")
        return SendResult.sent(str(email["Message-ID"]))

    def _compose(self, outgoing: Outgoing, now: datetime) -> EmailMessage:
        message, sender = outgoing.message, self._settings.smtp_from
        domain = parseaddr(sender)[1].rpartition("@")[2] or "meterpay.invalid"
        email = EmailMessage()
        email["Subject"] = message.title
        email["From"] = sender
        email["To"] = message.recipient
        email["Date"] = format_datetime(now)
        email["Message-ID"] = f"<notification-{message.id}@{domain}>"
        email.set_content(message.body)
        return email

    def _deliver(self, email: EmailMessage) -> None:
        s = self._settings
        timeout = s.notify_http_timeout_s
        context = ssl.create_default_context()
        smtp = (
            smtplib.SMTP_SSL(s.smtp_host, s.smtp_port, timeout=timeout, context=context)
            if s.smtp_ssl
            else smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=timeout)
        )
        with smtp:
            if s.smtp_starttls and not s.smtp_ssl:
                smtp.starttls(context=context)
            if s.smtp_user:
                smtp.login(s.smtp_user, s.smtp_password.get_secret_value())
            smtp.send_message(email)


def smtp_from(settings: Settings) -> SmtpEmail | str:
    """The configured SMTP server, or why there is none."""
    if not settings.smtp_host.strip():
        return "email is not configured (MP_SMTP_HOST is empty)"
    return blank_settings(settings, "smtp_from") or SmtpEmail(settings)
