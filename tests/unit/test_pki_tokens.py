"""Join tokens: their form, what a parse error names, and when a record admits a token."""

from __future__ import annotations

import random
import re

import pytest

from corral.pki.tokens import (
    JoinToken,
    JoinTokenRecord,
    TokenError,
    check,
    check_ca,
    make_token,
    parse_token,
    record_for,
    secret_sha256,
)

CA_HASH = "ab" * 32
OTHER_HASH = "cd" * 32
GOOD = f"abc123.0123456789abcdef.{CA_HASH}"


def test_a_made_token_has_the_agreed_form_and_parses_back() -> None:
    token = make_token(CA_HASH, random.Random(7).choice)
    text = str(token)
    tid, secret, ca_hash = text.split(".")
    assert re.fullmatch("[a-z0-9]{6}", tid) and re.fullmatch("[a-z0-9]{16}", secret)
    assert ca_hash == CA_HASH
    assert parse_token(text) == token
    # The random source decides: the same seed, the same token; another, another.
    assert make_token(CA_HASH, random.Random(7).choice) == token
    assert make_token(CA_HASH, random.Random(8).choice) != token


def test_tokens_from_the_system_random_source_differ() -> None:
    assert len({str(make_token(CA_HASH)) for _ in range(20)}) == 20


def test_the_secret_stays_out_of_repr() -> None:
    token = parse_token(GOOD)
    assert "0123456789abcdef" not in repr(token)


@pytest.mark.parametrize(("text", "names"), [
    ("abc123.0123456789abcdef", "found 2 parts"),
    (f"abc123.0123456789abcdef.{CA_HASH}.x", "found 4 parts"),
    (f"ABC123.0123456789abcdef.{CA_HASH}", "the id"),
    (f"abc12.0123456789abcdef.{CA_HASH}", "the id"),
    (f"abc123.0123456789abcde.{CA_HASH}", "the secret"),
    (f"abc123.0123456789abcdeF.{CA_HASH}", "the secret"),
    ("abc123.0123456789abcdef." + "ab" * 31, "the CA hash"),
    ("abc123.0123456789abcdef." + "AB" * 32, "the CA hash"),
])
def test_a_parse_error_names_the_part_that_is_wrong(text: str, names: str) -> None:
    with pytest.raises(TokenError) as e:
        parse_token(text)
    assert str(e.value).startswith("token: ") and names in str(e.value)


def test_a_parse_error_never_echoes_the_secret() -> None:
    with pytest.raises(TokenError) as e:
        parse_token(f"abc123.0123456789abcdeZ.{CA_HASH}")
    assert "0123456789abcde" not in str(e.value)


def test_surrounding_white_space_is_ignored() -> None:
    assert parse_token(f"  {GOOD}\n") == parse_token(GOOD)


def record(now: float = 1000.0, ttl: float = 3600.0) -> JoinTokenRecord:
    return record_for(parse_token(GOOD), now, ttl, "host")


def test_a_record_keeps_only_the_hash_of_the_secret() -> None:
    r = record()
    assert r.secret_sha256 == secret_sha256("0123456789abcdef")
    assert "0123456789abcdef" not in r.model_dump_json()
    assert (r.expires_at, r.created_at, r.purpose) == (4600.0, 1000.0, "host")
    assert JoinTokenRecord.model_validate_json(r.model_dump_json()) == r


def test_the_right_token_before_expiry_is_admitted() -> None:
    assert check(record(), parse_token(GOOD), now=4599.0) is None


def test_an_expired_token_is_refused() -> None:
    reason = check(record(), parse_token(GOOD), now=4600.0)
    assert reason is not None and "expired" in reason


def test_a_wrong_secret_is_refused() -> None:
    token = JoinToken("abc123", "0123456789abcdee", CA_HASH)
    assert check(record(), token, now=1001.0) == "token: wrong secret"


def test_a_token_of_another_id_is_refused() -> None:
    token = JoinToken("abc124", "0123456789abcdef", CA_HASH)
    reason = check(record(), token, now=1001.0)
    assert reason is not None and "id" in reason


def test_a_ca_of_another_hash_is_refused() -> None:
    token = parse_token(GOOD)
    assert check_ca(token, CA_HASH) is None
    reason = check_ca(token, OTHER_HASH)
    assert reason is not None and OTHER_HASH in reason and reason.startswith("token: ")


def test_a_record_with_a_malformed_field_does_not_decode() -> None:
    with pytest.raises(ValueError, match="secret_sha256"):
        JoinTokenRecord(id="abc123", secret_sha256="x", expires_at=1, created_at=0)
    with pytest.raises(ValueError, match="purpose"):
        JoinTokenRecord.model_validate({**record().model_dump(), "purpose": "admin"})
