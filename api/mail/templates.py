"""The customer emails Ledgerline sends, as plain text. Each template names the values it needs;
rendering fails loudly (KeyError) when one is missing rather than sending a hole."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class EmailTemplate(enum.StrEnum):
    PAYMENT_FAILED = "payment_failed"
    RETRY_FAILED = "retry_failed"
    FINAL_NOTICE = "final_notice"
    TRIAL_ENDING = "trial_ending"


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    body: str


_PAY_LINK = "Pay or update your card here: {pay_url}\n"

_TEMPLATES: dict[EmailTemplate, tuple[str, str]] = {
    EmailTemplate.PAYMENT_FAILED: (
        "Your payment for invoice {invoice_number} failed",
        "Hello {customer_name},\n\n"
        "We could not collect {amount} for invoice {invoice_number}. Your bank or card issuer declined "
        "the payment. We will try again in a few days; to avoid an interruption, please check your "
        "payment details.\n\n" + _PAY_LINK,
    ),
    EmailTemplate.RETRY_FAILED: (
        "We tried again: invoice {invoice_number} is still unpaid",
        "Hello {customer_name},\n\n"
        "We retried the payment of {amount} for invoice {invoice_number} and it failed again. Please "
        "update your payment method so that the next attempt succeeds.\n\n" + _PAY_LINK,
    ),
    EmailTemplate.FINAL_NOTICE: (
        "Final notice: invoice {invoice_number} is unpaid",
        "Hello {customer_name},\n\n"
        "Invoice {invoice_number} ({amount}) is still unpaid after several attempts. Without a payment, "
        "your account will be suspended on {deadline}.\n\n" + _PAY_LINK,
    ),
    EmailTemplate.TRIAL_ENDING: (
        "Your trial ends on {trial_end}",
        "Hello {customer_name},\n\n"
        "Your trial ends on {trial_end}. From then on, your subscription is billed to your payment "
        "method on file; if you have none yet, please add one before that date.\n",
    ),
}


def render(template: EmailTemplate, values: dict[str, Any]) -> Rendered:
    subject, body = _TEMPLATES[template]
    return Rendered(subject.format(**values), body.format(**values) + "\n-- \nThe Ledgerline billing team\n")
