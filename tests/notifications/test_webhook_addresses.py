"""Where a webhook may go: URLs checked when saved, addresses checked once and connected
to as checked (no DNS rebinding), IPv4 inside IPv6 unwrapped, answers kept short."""

from __future__ import annotations

import base64
import ipaddress
import select
import socket
import ssl

import pytest

from tests.notifications.conftest import auth
from tests.notifications.receivers import WebhookReceiver, self_signed_tls
from workflow_service.notifications import delivery
from workflow_service.notifications.channels import (
    MAX_RECORDED_RESPONSE,
    PermanentDeliveryError,
    TransientDeliveryError,
    post_webhook,
)
from workflow_service.notifications.models import Delivery
from workflow_service.settings import NotificationSettings
from workflow_service.steps import webhook_urls

SECRET = "address-test-secret"
#: A public address (is_global; IANA's PCP anycast) with no webhook receiver behind it:
#: connecting to it is refused or times out, which is all these tests need.
PUBLIC = "192.0.0.9"


def settings(**overrides) -> NotificationSettings:
    return NotificationSettings(**{"webhook_secret": SECRET, "webhook_timeout_s": 1.0, **overrides})


def post(config, url, **options):
    return post_webhook(config, url, b"{}", delivery_id="d-1", secrets=[SECRET], **options)


class ScriptedResolver:
    """A DNS server under an attacker's control: each lookup gets the next answer."""

    def __init__(self, *answers: list[str]):
        self.answers = list(answers)
        self.lookups: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        return self.answers[min(len(self.lookups), len(self.answers)) - 1]


class LoopbackListener:
    """A TCP listener on 127.0.0.1 that only counts who connects to it."""

    def __init__(self):
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(8)
        self.port = self.socket.getsockname()[1]

    def connections(self) -> int:
        count = 0
        while select.select([self.socket], [], [], 0.2)[0]:
            conn, _ = self.socket.accept()
            conn.close()
            count += 1
        return count


@pytest.fixture
def loopback_listener():
    listener = LoopbackListener()
    yield listener
    listener.socket.close()


# -------------------------------------------------------------------- DNS rebinding


def test_rebinding_resolver_never_gets_a_connection_to_loopback(loopback_listener):
    # Given: a name that answers a public address first and loopback afterwards
    port = loopback_listener.port
    resolver = ScriptedResolver([PUBLIC], ["127.0.0.1"])
    # When: a webhook is posted to it
    with pytest.raises(TransientDeliveryError) as info:
        post(settings(), f"http://rebind.example.test:{port}/hook", resolve=resolver)
    # Then: the name was resolved once, the connection went to the checked address,
    # and nothing connected to loopback
    assert resolver.lookups == ["rebind.example.test"]
    assert PUBLIC in str(info.value)
    assert loopback_listener.connections() == 0


def test_a_name_with_a_public_and_a_loopback_address_is_refused(loopback_listener):
    port = loopback_listener.port
    resolver = ScriptedResolver([PUBLIC, "127.0.0.1"])
    with pytest.raises(PermanentDeliveryError, match=r"127\.0\.0\.1"):
        post(settings(), f"http://mixed.example.test:{port}/hook", resolve=resolver)
    assert loopback_listener.connections() == 0


@pytest.mark.parametrize(
    "address",
    [
        "::7f00:1",
        "::ffff:127.0.0.1",
        "::ffff:0:127.0.0.1",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b:1::a9fe:a9fe",
        "2002:a9fe:a9fe::",
        "2002:7f00:1::1",
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        "fe80::1",
        "ff02::1",
    ],
)
def test_a_name_resolving_to_ipv4_inside_ipv6_is_refused(address):
    resolver = ScriptedResolver([address])
    with pytest.raises(PermanentDeliveryError, match="WEBHOOK_ALLOW_PRIVATE_NETWORKS"):
        post(settings(), "http://v6.example.test/hook", resolve=resolver)


@pytest.mark.parametrize(
    ("address", "inner"),
    [
        ("::7f00:1", "127.0.0.1"),
        ("::ffff:10.0.0.1", "10.0.0.1"),
        ("::ffff:0:169.254.169.254", "169.254.169.254"),
        ("64:ff9b::a9fe:a9fe", "169.254.169.254"),
        ("2002:a9fe:a9fe::", "169.254.169.254"),
    ],
)
def test_embedded_ipv4_is_unwrapped(address, inner):
    found = webhook_urls.embedded_ipv4(ipaddress.IPv6Address(address))
    assert ipaddress.IPv4Address(inner) in found
    assert "carrying the IPv4 address" in webhook_urls.refusal_reason(ipaddress.ip_address(address))


def test_public_addresses_inside_ipv6_are_allowed():
    for address in ("64:ff9b::808:808", "2002:808:808::1", "2606:4700:4700::1111", "8.8.8.8"):
        assert webhook_urls.refusal_reason(ipaddress.ip_address(address)) is None


def test_the_pinned_connection_keeps_the_host_name():
    # Given: a receiver on loopback, reached through a name (private networks allowed)
    with WebhookReceiver(SECRET, [200]) as receiver:
        resolver = ScriptedResolver(["127.0.0.1"])
        url = f"http://hooks.example.test:{receiver.port}/hook?x=1"
        receipt = post(settings(webhook_allow_private=True), url, resolve=resolver)
        (request,) = receiver.wait_for(1)
    # Then: it connected to the resolved address, asking for the name
    assert receipt.status == 200 and request.signature_ok
    assert request.headers["Host"] == f"hooks.example.test:{receiver.port}"
    assert request.path == "/hook?x=1"


def test_tls_names_the_host_and_verifies_its_certificate(tmp_path):
    # Given: an HTTPS receiver whose certificate names hooks.example.test only
    server_tls, ca_file = self_signed_tls(tmp_path, dns_name="hooks.example.test")
    seen_names = []
    server_tls.sni_callback = lambda sock, name, ctx: seen_names.append(name)
    client_tls = ssl.create_default_context(cafile=ca_file)
    allowed = settings(webhook_allow_private=True)
    with WebhookReceiver(SECRET, [200], tls=server_tls) as receiver:
        # When: it is reached by that name, pinned to 127.0.0.1
        url = f"https://hooks.example.test:{receiver.port}/hook"
        resolver = ScriptedResolver(["127.0.0.1"])
        assert post(allowed, url, resolve=resolver, tls=client_tls).status == 200
        # Then: SNI carried the name, and the certificate was checked against it
        assert seen_names == ["hooks.example.test"]
        (request,) = receiver.wait_for(1)
        assert request.headers["Host"] == f"hooks.example.test:{receiver.port}"
        # ...so another name pinned to the same address fails verification
        other = f"https://other.example.test:{receiver.port}/hook"
        with pytest.raises(TransientDeliveryError, match="CERTIFICATE_VERIFY_FAILED"):
            post(allowed, other, resolve=ScriptedResolver(["127.0.0.1"]), tls=client_tls)
    assert len(receiver.requests) == 1


def test_userinfo_is_sent_as_basic_credentials():
    with WebhookReceiver(SECRET, [200]) as receiver:
        url = receiver.url.replace("http://", "http://hook%40user:p%3Ass@")
        post(settings(webhook_allow_private=True), url)
        (request,) = receiver.wait_for(1)
    expected = base64.b64encode(b"hook@user:p:ss").decode()
    assert request.headers["Authorization"] == f"Basic {expected}"


# ---------------------------------------------------------------- bad URLs, answers


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://hooks.example.org:99999/x", "port"),
        ("http://hooks.example.org:0/x", "port"),
        ("http://hooks.example.org:http/x", "port"),
        ("ftp://hooks.example.org/x", "http"),
        ("http:///x", "host"),
        ("http://exa mple.org/x", "spaces"),
        ("http://ex_ample..org/x", "host name"),
    ],
)
def test_a_bad_url_fails_at_once(url, problem):
    with pytest.raises(PermanentDeliveryError, match=problem):
        post(settings(), url)


def test_a_delivery_to_a_bad_url_fails_without_retries(execution):
    (delivery_id,) = delivery.plan(
        tenant_id="acme",
        execution_id=execution.id,
        step_key="1",
        entity_type="policy",
        entity_id="p-1",
        items=[
            delivery.PlannedDelivery(
                recipient="http://hooks.example.org:99999/x",
                channel="webhook",
                address="http://hooks.example.org:99999/x",
                payload={},
            )
        ],
    )
    with pytest.raises(PermanentDeliveryError, match="port"):
        delivery.attempt(delivery_id, settings(), last_attempt=False)
    # Then: failed for good (the actor lists PermanentDeliveryError in ``throws``)
    row = Delivery.get_by_id(delivery_id)
    assert (row.status, row.attempts) == ("failed", 1)
    assert delivery.attempt(delivery_id, settings(), last_attempt=False) == "failed"


def test_only_the_first_256_characters_of_an_answer_are_kept(execution):
    long_answer = ("x" * 1999 + "!").encode()
    with WebhookReceiver(SECRET, [400], answer=long_answer) as receiver:
        (delivery_id,) = delivery.plan(
            tenant_id="acme",
            execution_id=execution.id,
            step_key="1",
            entity_type="policy",
            entity_id="p-1",
            items=[
                delivery.PlannedDelivery(
                    recipient=receiver.url, channel="webhook", address=receiver.url, payload={}
                )
            ],
        )
        with pytest.raises(PermanentDeliveryError):
            delivery.attempt(delivery_id, settings(webhook_allow_private=True), last_attempt=False)
    row = Delivery.get_by_id(delivery_id)
    assert MAX_RECORDED_RESPONSE == 256
    assert row.response == "x" * 256


# ------------------------------------------------------------------- saving a workflow


def webhook_workflow(url: str, *, nested: bool = False) -> dict:
    step = {"kind": "webhook", "url": url}
    if nested:
        step = {
            "kind": "notify",
            "recipients": ["role:approver"],
            "channels": ["webhook"],
            "webhook_url": url,
            "subject": "hi",
        }
    return {"name": "hook", "entity_type": "policy", "trigger": "manual", "steps": [step]}


@pytest.mark.parametrize(
    ("url", "option", "problem"),
    [
        ("http://hooks.example.org:99999/x", "url", "port"),
        ("gopher://hooks.example.org/x", "url", "http"),
        ("https://", "url", "host"),
        ("http://127.0.0.1:8080/x", "url", "WEBHOOK_ALLOW_PRIVATE_NETWORKS"),
        ("http://[::7f00:1]/x", "url", "127.0.0.1"),
        ("http://169.254.169.254/latest", "url", "WEBHOOK_ALLOW_PRIVATE_NETWORKS"),
        ("http://localhost/x", "url", "WEBHOOK_ALLOW_PRIVATE_NETWORKS"),
        ("http://hooks.example.org:99999/x", "webhook_url", "port"),
        ("http://10.0.0.8/x", "webhook_url", "WEBHOOK_ALLOW_PRIVATE_NETWORKS"),
    ],
)
def test_a_bad_webhook_url_is_refused_when_the_workflow_is_saved(make_web, url, option, problem):
    web = make_web()
    body = webhook_workflow(url, nested=option == "webhook_url")
    resp = web.simulate_post("/workflows", json=body, headers=auth())
    assert resp.status_code == 422, resp.text
    (error,) = resp.json["errors"]
    assert error["field"] == f"steps.0.{option}"
    assert problem in error["message"]
    assert resp.json["title"] and resp.json["description"]


def test_a_bad_webhook_url_is_refused_when_a_workflow_is_edited(make_web):
    web = make_web()
    created = web.simulate_post(
        "/workflows", json=webhook_workflow("https://hooks.example.org/x"), headers=auth()
    )
    assert created.status_code == 201, created.text
    resp = web.simulate_patch(
        f"/workflows/{created.json['id']}",
        json={
            "steps": [{"kind": "webhook", "url": "https://hooks.example.org:65536/x"}],
            "version": 1,
        },
        headers=auth(),
    )
    assert resp.status_code == 422, resp.text
    assert resp.json["errors"][0]["field"] == "steps.0.url"


def test_private_addresses_may_be_saved_when_allowed(make_web):
    web = make_web(webhook_allow_private=True)
    resp = web.simulate_post(
        "/workflows", json=webhook_workflow("http://127.0.0.1:8080/x"), headers=auth()
    )
    assert resp.status_code == 201, resp.text
    # ...but an invalid port is still refused
    resp = web.simulate_post(
        "/workflows", json=webhook_workflow("http://127.0.0.1:99999/x"), headers=auth()
    )
    assert resp.status_code == 422, resp.text


def test_a_stored_step_that_became_invalid_fails_without_quoting_its_url():
    from workflow_service.features import install
    from workflow_service.steps import StepFailed, build_step_or_fail

    install()
    url = "https://user:pw-123@hooks.example.org:99999/x?token=t-456"
    with pytest.raises(StepFailed) as info:
        build_step_or_fail({"kind": "webhook", "url": url})
    message = str(info.value)
    assert message.startswith("invalid webhook step: url: ") and "port" in message
    assert "pw-123" not in message and "t-456" not in message
