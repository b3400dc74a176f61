"""Signing and the e-mail / webhook senders against real servers in the test process."""

from __future__ import annotations

import dataclasses
import json

import pytest

from tests.notifications.receivers import SmtpServer, WebhookReceiver, self_signed_tls
from tests.support import free_port
from workflow_service.notifications import signing
from workflow_service.notifications.channels import (
    PermanentDeliveryError,
    TransientDeliveryError,
    build_email,
    post_webhook,
    send_email,
    webhook_body,
)
from workflow_service.settings import NotificationSettings

SECRET = "webhook-test-secret"


def settings(**overrides) -> NotificationSettings:
    base = {
        "webhook_secret": SECRET,
        "webhook_timeout_s": 2.0,
        "smtp_timeout_s": 2.0,
        "webhook_allow_private": True,  # the test receivers listen on 127.0.0.1
    }
    return NotificationSettings(**{**base, **overrides})


# ---------------------------------------------------------------------------- signing


def test_signature_round_trip_and_tampering():
    body = b'{"a":1}'
    headers = signing.sign(SECRET, body, delivery_id="d-1", timestamp=1_700_000_000)
    assert headers["X-Signature"].startswith("sha256=")
    assert headers["X-Delivery-Id"] == "d-1"
    assert signing.verify_signature(SECRET, headers, body, clock=lambda: 1_700_000_010) == (
        1_700_000_000
    )
    lowercase = {k.lower(): v for k, v in headers.items()}
    signing.verify_signature(SECRET, lowercase, body, clock=lambda: 1_700_000_000)
    for bad_body, bad_secret in ((b'{"a":2}', SECRET), (body, "other-secret")):
        with pytest.raises(signing.InvalidSignature, match="does not match"):
            signing.verify_signature(bad_secret, headers, bad_body, clock=lambda: 1_700_000_000)
    # The timestamp is signed too: moving it forward to dodge the replay check fails.
    moved = {**headers, "X-Signature-Timestamp": "1700000300"}
    with pytest.raises(signing.InvalidSignature, match="does not match"):
        signing.verify_signature(SECRET, moved, body, clock=lambda: 1_700_000_300)


def test_a_replay_under_a_new_delivery_id_fails():
    # Given: a captured delivery, replayed at once (inside the window) under a new id,
    # so that a receiver deduping on X-Delivery-Id would act on it again
    body = b'{"a":1}'
    headers = signing.sign(SECRET, body, delivery_id="d-1", timestamp=1_000)
    replay = {**headers, "X-Delivery-Id": "d-2"}
    with pytest.raises(signing.InvalidSignature, match="does not match"):
        signing.verify_signature(SECRET, replay, body, clock=lambda: 1_000)
    # An id that could shift bytes between the id and the body is refused outright
    shifted = {**headers, "X-Delivery-Id": "d-1.x"}
    with pytest.raises(signing.InvalidSignature, match="delivery id"):
        signing.verify_signature(SECRET, shifted, body, clock=lambda: 1_000)
    without = {k: v for k, v in headers.items() if k != "X-Delivery-Id"}
    with pytest.raises(signing.InvalidSignature, match="missing"):
        signing.verify_signature(SECRET, without, body, clock=lambda: 1_000)


def test_two_secrets_sign_during_a_rotation_and_either_verifies():
    body = b"{}"
    headers = signing.sign(["new-secret", "old-secret"], body, delivery_id="d", timestamp=5)
    new, old = headers["X-Signature"].split(",")
    assert new.startswith("sha256=") and old.startswith("sha256=") and new != old
    # A receiver still on the old secret, one moved to the new, one holding both
    for held in ("old-secret", "new-secret", ["new-secret", "old-secret"]):
        assert signing.verify_signature(held, headers, body, clock=lambda: 5) == 5
    with pytest.raises(signing.InvalidSignature, match="does not match"):
        signing.verify_signature("third-secret", headers, body, clock=lambda: 5)
    # After the grace period only the new one signs
    later = signing.sign(["new-secret"], body, delivery_id="d", timestamp=5)
    assert "," not in later["X-Signature"]
    with pytest.raises(signing.InvalidSignature, match="does not match"):
        signing.verify_signature("old-secret", later, body, clock=lambda: 5)


def test_old_and_future_timestamps_are_rejected_as_replays():
    body = b"{}"
    headers = signing.sign(SECRET, body, delivery_id="d", timestamp=1_000)
    with pytest.raises(signing.InvalidSignature, match="window"):
        signing.verify_signature(SECRET, headers, body, clock=lambda: 1_000 + 301)
    with pytest.raises(signing.InvalidSignature, match="window"):
        signing.verify_signature(SECRET, headers, body, clock=lambda: 1_000 - 301)
    with pytest.raises(signing.InvalidSignature, match="missing"):
        signing.verify_signature(SECRET, {}, body)


# ---------------------------------------------------------------------------- webhook


def post(config, url, body, delivery_id="d", **options):
    return post_webhook(config, url, body, delivery_id=delivery_id, secrets=[SECRET], **options)


def test_webhook_post_is_signed_and_the_receiver_verifies_it():
    with WebhookReceiver(SECRET, [200]) as receiver:
        body = webhook_body({"event": "policy.approved", "id": "p-1"})
        receipt = post(settings(), receiver.url, body, delivery_id="d-1")
        (request,) = receiver.wait_for(1)
    assert receipt.status == 200
    assert request.signature_ok, request.signature_error
    assert request.headers["X-Delivery-Id"] == "d-1"
    assert json.loads(request.body) == {"event": "policy.approved", "id": "p-1"}


@pytest.mark.parametrize("status", [500, 503, 408, 429])
def test_webhook_retryable_answers(status):
    with (
        WebhookReceiver(SECRET, [status]) as receiver,
        pytest.raises(TransientDeliveryError) as info,
    ):
        post(settings(), receiver.url, b"{}")
    assert info.value.status == status


@pytest.mark.parametrize("status", [400, 401, 404, 410, 302])
def test_webhook_other_answers_are_permanent_with_the_answer_recorded(status):
    with (
        WebhookReceiver(SECRET, [status]) as receiver,
        pytest.raises(PermanentDeliveryError) as info,
    ):
        post(settings(), receiver.url, b"{}")
    assert info.value.status == status
    assert "scripted" in info.value.response


def test_webhook_connection_refused_is_transient():
    url = f"http://127.0.0.1:{free_port()}/hook"
    with pytest.raises(TransientDeliveryError, match="failed"):
        post(settings(), url, b"{}")


def test_webhook_url_must_be_http():
    with pytest.raises(PermanentDeliveryError, match="http"):
        post(settings(), "file:///etc/passwd", b"{}")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/hook",
        "http://[::1]/hook",
        "http://localhost/hook",
        # IPv4 inside IPv6: compatible, mapped, SIIT, NAT64, 6to4, Teredo
        "http://[::7f00:1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[::ffff:0:a9fe:a9fe]/hook",
        "http://[64:ff9b::a9fe:a9fe]/hook",
        "http://[64:ff9b:1::a00:1]/hook",
        "http://[2002:a9fe:a9fe::]/hook",
        "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/hook",
        # IPv4 spelled as the C resolver reads it
        "http://2130706433/hook",
        "http://0x7f.1/hook",
    ],
)
def test_webhooks_into_the_network_are_refused_by_default(url):
    default = NotificationSettings(webhook_secret=SECRET)
    with pytest.raises(PermanentDeliveryError, match="WEBHOOK_ALLOW_PRIVATE_NETWORKS"):
        post(default, url, b"{}")


# ----------------------------------------------------------------------------- e-mail


def test_email_reaches_a_real_smtp_server():
    with SmtpServer() as smtp:
        config = settings(smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_from="gov@example.org")
        msg = build_email(
            config,
            to="olivia@example.org",
            subject="Approved:\r\nBcc: x@y",
            text="Your policy was approved.",
            html="<p>approved</p>",
            message_id="<d-1@governance>",
        )
        send_email(config, msg)
        (received,) = smtp.wait_for(lambda m: m["Message-ID"] == "<d-1@governance>")
    assert received["To"] == "olivia@example.org"
    assert received["Subject"] == "Approved: Bcc: x@y"  # no header injection
    assert received["Bcc"] is None
    assert "approved" in received.get_body(("plain",)).get_content()
    assert smtp.sink.envelopes[0] == ("gov@example.org", ["olivia@example.org"])


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_email_logs_in_with_the_configured_credentials():
    with SmtpServer(credentials=("mailer", "s3cret")) as smtp:
        config = settings(
            smtp_host="127.0.0.1",
            smtp_port=smtp.port,
            smtp_username="mailer",
            smtp_password="s3cret",
        )
        msg = build_email(
            config, to="a@example.org", subject="s", text="t", html=None, message_id="<auth@y>"
        )
        send_email(config, msg)
        smtp.wait_for(lambda m: m["Message-ID"] == "<auth@y>")
        assert smtp.logins == ["mailer"]
        anonymous = settings(smtp_host="127.0.0.1", smtp_port=smtp.port)
        with pytest.raises(PermanentDeliveryError) as info:
            send_email(anonymous, msg)
        assert info.value.status == 530  # authentication required


def test_email_goes_over_starttls_to_a_server_that_requires_it(tmp_path):
    tls, ca_file = self_signed_tls(tmp_path)
    with SmtpServer(credentials=("mailer", "s3cret"), tls=tls) as smtp:
        secure = settings(
            smtp_host="127.0.0.1",
            smtp_port=smtp.port,
            smtp_starttls=True,
            smtp_ca_file=ca_file,
            smtp_username="mailer",
            smtp_password="s3cret",
        )
        msg = build_email(
            secure, to="a@example.org", subject="s", text="t", html=None, message_id="<tls@y>"
        )
        send_email(secure, msg)
        smtp.wait_for(lambda m: m["Message-ID"] == "<tls@y>")
        assert smtp.logins == ["mailer"]  # the password went over TLS

        # Without STARTTLS the server refuses to go on: a permanent error, not a retry
        plain = dataclasses.replace(secure, smtp_starttls=False, smtp_username=None)
        with pytest.raises(PermanentDeliveryError) as info:
            send_email(plain, msg)
        assert info.value.status == 530
        # A certificate the client does not trust is never accepted
        untrusting = dataclasses.replace(secure, smtp_ca_file=None)
        with pytest.raises(TransientDeliveryError, match="CERTIFICATE_VERIFY_FAILED"):
            send_email(untrusting, msg)
        assert len(smtp.messages) == 1


def test_email_to_an_unreachable_server_is_transient():
    config = settings(smtp_host="127.0.0.1", smtp_port=free_port())
    msg = build_email(
        config, to="a@example.org", subject="s", text="t", html=None, message_id="<x@y>"
    )
    with pytest.raises(TransientDeliveryError):
        send_email(config, msg)


def test_settings_come_from_the_environment_and_hide_secrets():
    from workflow_service.settings import WorkflowSettings

    env = {
        "APP_ENV": "development",
        "SMTP_HOST": "mail.example.org",
        "SMTP_PORT": "2525",
        "SMTP_STARTTLS": "true",
        "SMTP_USERNAME": "mailer",
        "SMTP_PASSWORD": "pw-123",
        "SMTP_FROM": "gov@example.org",
        "WEBHOOK_SECRET": "hook-456",
        "WEBHOOK_TIMEOUT_SECONDS": "3",
        "DELIVERY_CLAIM_LEASE_SECONDS": "90",
    }
    config = WorkflowSettings.from_env(env).notifications
    assert (config.smtp_host, config.smtp_port, config.smtp_starttls) == (
        "mail.example.org",
        2525,
        True,
    )
    assert (config.smtp_username, config.smtp_password, config.smtp_from) == (
        "mailer",
        "pw-123",
        "gov@example.org",
    )
    assert (config.webhook_secret, config.webhook_timeout_s, config.claim_lease_s) == (
        "hook-456",
        3.0,
        90.0,
    )
    assert "pw-123" not in repr(config) and "hook-456" not in repr(config)
    assert WorkflowSettings.from_env({"APP_ENV": "development"}).notifications.smtp_port == 25
