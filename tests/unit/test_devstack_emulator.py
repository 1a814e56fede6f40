"""The emulator's memoized backend lookup answers what moto's own does, for every host."""

from __future__ import annotations

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

from devstack import emulator

HOSTS = [
    None,
    "moto_api",
    "127.0.0.1:4566",
    "localhost:3000",
    "dynamodb.eu-west-1.amazonaws.com",
    "sqs.eu-west-1.amazonaws.com",
    "s3.amazonaws.com",
    "bucket.s3.eu-west-1.amazonaws.com",
    "kms.eu-west-1.amazonaws.com",
    "email.eu-west-1.amazonaws.com",
    "sts.amazonaws.com",
    "dynamodb",
    "sqs",
]


def test_the_memoized_lookup_answers_as_moto_does_and_asks_it_once_per_host() -> None:
    plain = DomainDispatcherApplication(create_backend_app)
    expected = {host: plain.get_backend_for_host(host) for host in HOSTS}
    original = DomainDispatcherApplication.get_backend_for_host
    asked: list[str | None] = []

    def counting(self: DomainDispatcherApplication, host: str | None) -> object:
        asked.append(host)
        return original(self, host)

    DomainDispatcherApplication.get_backend_for_host = counting  # type: ignore[method-assign]
    try:
        emulator.install()
        app = DomainDispatcherApplication(create_backend_app)
        for _ in range(3):
            assert {host: app.get_backend_for_host(host) for host in HOSTS} == expected
        emulator.install()  # idempotent: not wrapped twice
        assert app.get_backend_for_host("127.0.0.1:4566") == expected["127.0.0.1:4566"]
    finally:
        DomainDispatcherApplication.get_backend_for_host = original  # type: ignore[method-assign]
    assert sorted(asked, key=str) == sorted(HOSTS, key=str)
