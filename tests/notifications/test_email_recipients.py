"""An e-mail delivery goes to exactly one checked address: nothing in a stored address
or a header can add a recipient."""

from __future__ import annotations

import pytest

from tests.notifications.receivers import SmtpServer
from tests.support import free_port
from workflow_service.notifications.channels import (
    PermanentDeliveryError,
    build_email,
    send_email,
)
from workflow_service.settings import NotificationSettings

SNEAKY = [
    "olivia@example.org, eve@evil.example",
    "olivia@example.org,eve@evil.example",
    "Olivia <olivia@example.org>",
    "olivia@example.org\r\nBcc: eve@evil.example",
    '"olivia,eve"@example.org',
]


def _settings(port: int) -> NotificationSettings:
    return NotificationSettings(
        webhook_secret="webhook-test-secret",
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_from="gov@example.org",
        smtp_timeout_s=2.0,
    )


def _mail(config, to="olivia@example.org"):
    return build_email(config, to=to, subject="s", text="t", html=None, message_id="<m@x>")


@pytest.mark.parametrize("address", SNEAKY)
def test_an_address_with_a_second_recipient_is_refused_for_good(address):
    with pytest.raises(PermanentDeliveryError, match="exactly one e-mail address"):
        _mail(_settings(free_port()), to=address)


@pytest.mark.parametrize("header", ["To", "Cc", "Bcc"])
def test_sending_never_adds_a_recipient_from_the_headers(header):
    # Given a message whose headers were changed after it was built
    with SmtpServer() as smtp:
        config = _settings(smtp.port)
        msg = _mail(config)
        if header == "To":
            del msg["To"]
            msg["To"] = "olivia@example.org, eve@evil.example"
        else:
            msg[header] = "eve@evil.example"
        # Then nothing is sent
        with pytest.raises(PermanentDeliveryError, match="exactly one e-mail address"):
            send_email(config, msg)
        assert smtp.sink.envelopes == []


def test_the_envelope_names_only_the_checked_address():
    with SmtpServer() as smtp:
        config = _settings(smtp.port)
        send_email(config, _mail(config))
        smtp.wait_for(lambda m: m["Message-ID"] == "<m@x>")
        assert smtp.sink.envelopes == [("gov@example.org", ["olivia@example.org"])]
