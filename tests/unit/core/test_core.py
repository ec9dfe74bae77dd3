"""Pure rules shared by server, SDK and CLI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from hypothesis import given
from hypothesis import strategies as st

from kupe.core.errors import (
    ERRORS_BY_CODE,
    BadRequest,
    PreconditionFailed,
    UnsupportedUpgrade,
    UnsupportedVersion,
)
from kupe.core.etag import check_if_match, etag, none_match, parse_etags
from kupe.core.merge_patch import merge_patch
from kupe.core.names import is_valid_name
from kupe.core.pagination import decode_continue, encode_continue
from kupe.core.versions import DEFAULT_VERSION, VersionCatalogue, patch_version
from kupe.server.providers.pki import issue_cluster_pki


def test_etag_forms() -> None:
    assert etag(42) == '"42"'
    assert parse_etags('"42"') == {"42"}
    assert parse_etags("42") == {"42"}
    assert parse_etags('W/"42", "43"') == {"42", "43"}
    assert parse_etags("*") is None
    assert parse_etags('"-1"') == set()  # a well-formed opaque tag: valid, never a match
    for bad in ("", "abc", '"4 2"', "1" * 30):
        with pytest.raises(BadRequest):
            parse_etags(bad)
    check_if_match(None, 1)
    check_if_match('"7"', 7)
    with pytest.raises(PreconditionFailed):
        check_if_match('"6"', 7)
    assert none_match('"7"', 7)
    assert not none_match('"6"', 7)


@given(st.integers(min_value=0, max_value=2**62))
def test_etag_round_trip(version: int) -> None:
    assert parse_etags(etag(version)) == {str(version)}


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=63))
def test_continue_token_round_trip(name: str) -> None:
    assert decode_continue(encode_continue(name)) == name


def test_merge_patch_follows_rfc7396_examples() -> None:
    assert merge_patch({"a": "b"}, {"a": "c"}) == {"a": "c"}
    assert merge_patch({"a": "b"}, {"b": "c"}) == {"a": "b", "b": "c"}
    assert merge_patch({"a": "b"}, {"a": None}) == {}
    assert merge_patch({"a": "b", "b": "c"}, {"a": None}) == {"b": "c"}
    assert merge_patch({"a": ["b"]}, {"a": "c"}) == {"a": "c"}
    assert merge_patch({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}) == {"a": {"b": "d"}}
    assert merge_patch({"e": None}, {"a": 1}) == {"e": None, "a": 1}
    assert merge_patch([1, 2], {"a": "b", "c": None}) == {"a": "b"}
    assert merge_patch({}, {"a": {"bb": {"ccc": None}}}) == {"a": {"bb": {}}}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=10,
)


@given(st.dictionaries(st.text(max_size=3), json_values, max_size=4))
def test_merging_an_object_with_itself_minus_nulls_is_stable(doc: dict[str, object]) -> None:
    once = merge_patch({}, doc)
    assert merge_patch(once, once) == once


def test_names() -> None:
    for good in ("ab", "web-1", "a" * 63, "0x"):
        assert is_valid_name(good)
    for bad in ("a", "A1", "-ab", "ab-", "a_b", "a" * 64, "ab\n", "wеb", "a.b", "../ab"):
        assert not is_valid_name(bad)


def test_versions() -> None:
    assert DEFAULT_VERSION == "1.37"
    assert patch_version("1.32") == "v1.32.13"
    catalogue = VersionCatalogue()
    assert catalogue.available() == [f"1.{minor}" for minor in range(31, 38)]
    catalogue.check_upgrade("1.31", "1.32")
    catalogue.check_upgrade("1.32", "1.32")
    with pytest.raises(UnsupportedUpgrade):
        catalogue.check_upgrade("1.31", "1.33")
    with pytest.raises(UnsupportedUpgrade):
        catalogue.check_upgrade("1.32", "1.31")
    with pytest.raises(UnsupportedVersion):
        catalogue.check_upgrade("1.31", "1.40")


def test_a_provider_narrows_the_versions_on_offer() -> None:
    offered: list[str] | None = ["1.36", "1.37", "1.99"]
    catalogue = VersionCatalogue(offered=lambda: offered)
    assert catalogue.available() == ["1.36", "1.37"]
    assert catalogue.default() == "1.37"
    with pytest.raises(UnsupportedVersion, match=r"available: 1\.36, 1\.37"):
        catalogue.check_supported("1.35")
    offered = []
    with pytest.raises(UnsupportedVersion, match="no Kubernetes version"):
        catalogue.default()


def test_every_error_code_maps_back_to_its_class() -> None:
    for code, cls in ERRORS_BY_CODE.items():
        assert cls.code == code
        assert 400 <= cls.status <= 599


def test_cluster_pki_is_a_real_ca_and_a_serving_cert_it_signed() -> None:
    now = datetime(2026, 4, 6, tzinfo=UTC)
    pki = issue_cluster_pki("acme/web", "web.acme.kupe.localhost", now)
    ca = x509.load_pem_x509_certificate(pki.ca_certificate_pem.encode())
    serving = x509.load_pem_x509_certificate(pki.serving_certificate_pem.encode())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign
    assert usage.crl_sign
    assert ca.not_valid_after_utc - ca.not_valid_before_utc > timedelta(days=3000)
    serving.verify_directly_issued_by(ca)
    sans = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["web.acme.kupe.localhost"]
    eku = serving.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    assert not serving.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
