"""The decree's limits: every row accepted at the limit and refused one unit past it."""

from __future__ import annotations

import calendar
import itertools
import re
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from icao_pki.policy import (
    DECREE_LIMITS,
    DEFAULT_POLICY,
    CertificateFormat,
    DocumentType,
    Policy,
    PolicyConfigurationError,
    PolicyViolation,
    Role,
    Window,
    add_months,
    check_provider_root,
    check_subscriber_change,
    check_subscriber_new,
    check_subscriber_renewal,
    check_within_issuer,
    cv_max_expiration,
    describe_span,
)

UTC = UTC
START = datetime(2026, 11, 21, 9, 30, tzinfo=UTC)
ALL = list(itertools.product(DocumentType, Role))

# REQUIREMENTS.md §2, written out independently of the table under test.
EXPECTED = {
    ("passport", "csca"): (180, 60, None, "Art. 23.1a"),
    ("passport", "ds"): (120, 3, 100_000, "Art. 23.1b"),
    ("passport", "cvca"): (36, 36, None, "Art. 23.2a"),
    ("passport", "dvca"): (3, 3, None, "Art. 23.2b"),
    ("passport", "is"): (1, 1, None, "Art. 23.2c"),
    ("idcard", "csca"): (324, 60, None, "Art. 26.1a"),
    ("idcard", "ds"): (264, 3, 100_000, "Art. 26.1b"),
    ("idcard", "cvca"): (36, 36, None, "Art. 26.2a"),
    ("idcard", "dvca"): (3, 3, None, "Art. 26.2b"),
    ("idcard", "is"): (1, 1, None, "Art. 26.2c"),
}


def test_policy_table_has_every_document_type_and_role() -> None:
    assert set(DECREE_LIMITS) == set(ALL)
    for (doc, role), (cert, key, sigs, article) in EXPECTED.items():
        row = DEFAULT_POLICY.limit(DocumentType(doc), Role(role))
        assert (row.certificate_validity_months, row.key_usage_months, row.max_signatures, row.article) == (
            cert,
            key,
            sigs,
            article,
        )


@pytest.mark.parametrize(("doc", "role"), ALL)
def test_policy_x509_validity_at_limit_accepted_one_day_over_refused(doc: DocumentType, role: Role) -> None:
    row = DEFAULT_POLICY.limit(doc, role)
    end = add_months(START, row.certificate_validity_months)
    DEFAULT_POLICY.check_certificate(role, doc, Window(START, end))
    with pytest.raises(PolicyViolation) as caught:
        DEFAULT_POLICY.check_certificate(role, doc, Window(START, end + timedelta(days=1)))
    assert caught.value.article == row.article
    assert str(caught.value).startswith(f"{row.article}: {role.label} certificate validity of ")
    # One second over is over, too: the limit is exact.
    with pytest.raises(PolicyViolation):
        DEFAULT_POLICY.check_certificate(role, doc, Window(START, end + timedelta(seconds=1)))


@pytest.mark.parametrize(("doc", "role"), ALL)
def test_policy_key_usage_at_limit_accepted_one_day_over_refused(doc: DocumentType, role: Role) -> None:
    row = DEFAULT_POLICY.limit(doc, role)
    cert = Window(START, add_months(START, row.certificate_validity_months))
    key_end = add_months(START, row.key_usage_months)
    DEFAULT_POLICY.check_certificate(role, doc, cert, key_usage=Window(START, key_end))
    with pytest.raises(PolicyViolation, match=rf"^{re.escape(row.article)}: .*private-key usage period of .* exceeds"):
        DEFAULT_POLICY.check_certificate(role, doc, cert, key_usage=Window(START, key_end + timedelta(days=1)))


@pytest.mark.parametrize(("doc", "role"), ALL)
def test_policy_cv_expiration_inclusive_day(doc: DocumentType, role: Role) -> None:
    row = DEFAULT_POLICY.limit(doc, role)
    months = min(row.certificate_validity_months, row.key_usage_months)
    effective = START.date()
    last = cv_max_expiration(effective, months)
    DEFAULT_POLICY.check_certificate(role, doc, Window(effective, last), certificate_format=CertificateFormat.CV)
    with pytest.raises(PolicyViolation) as caught:
        DEFAULT_POLICY.check_certificate(
            role, doc, Window(effective, last + timedelta(days=1)), certificate_format=CertificateFormat.CV
        )
    assert caught.value.article == row.article


def test_policy_message_names_article_and_excess_exactly() -> None:
    effective = date(2026, 1, 10)
    with pytest.raises(PolicyViolation) as caught:
        DEFAULT_POLICY.check_certificate(
            Role.IS,
            DocumentType.PASSPORT,
            Window(effective, date(2026, 2, 10)),  # valid through 10 Feb = 1 month and 1 day
            certificate_format=CertificateFormat.CV,
        )
    assert str(caught.value) == "Art. 23.2c: IS certificate validity of 1 month and 1 day exceeds 1 month"


@pytest.mark.parametrize("doc", list(DocumentType))
def test_policy_signature_count_at_limit_accepted_one_over_refused(doc: DocumentType) -> None:
    DEFAULT_POLICY.check_signature_count(doc, Role.DS, 100_000)
    with pytest.raises(PolicyViolation) as caught:
        DEFAULT_POLICY.check_signature_count(doc, Role.DS, 100_001)
    assert caught.value.article == DEFAULT_POLICY.limit(doc, Role.DS).article
    assert "100,001" in str(caught.value) and "100,000" in str(caught.value)


def test_policy_key_usage_enforced_at_signing_time() -> None:
    window = Window(START, add_months(START, 3))
    DEFAULT_POLICY.check_key_usage_at(DocumentType.IDCARD, Role.DS, window, window.end)
    with pytest.raises(PolicyViolation, match=r"^Art\. 26\.1b: DS private-key usage period ended"):
        DEFAULT_POLICY.check_key_usage_at(DocumentType.IDCARD, Role.DS, window, window.end + timedelta(seconds=1))
    with pytest.raises(PolicyViolation, match="may not be used before"):
        DEFAULT_POLICY.check_key_usage_at(DocumentType.IDCARD, Role.DS, window, START - timedelta(seconds=1))


def test_policy_child_within_issuer() -> None:
    issuer = Window(START, add_months(START, 36))
    check_within_issuer(Window(START, add_months(START, 3)), issuer)
    with pytest.raises(PolicyViolation, match="not within the issuer"):
        check_within_issuer(Window(START, issuer.end + timedelta(seconds=1)), issuer)
    with pytest.raises(PolicyViolation, match="not within the issuer"):
        check_within_issuer(Window(START - timedelta(days=1), issuer.end), issuer)
    with pytest.raises(PolicyViolation, match=r"^Art\. 23\.2b"):
        DEFAULT_POLICY.check_certificate(
            Role.DVCA,
            DocumentType.PASSPORT,
            Window(START, add_months(START, 2)),
            issuer_validity=Window(START, add_months(START, 1)),
        )


def test_policy_key_window_must_lie_inside_certificate() -> None:
    with pytest.raises(PolicyViolation, match="outside the certificate validity"):
        DEFAULT_POLICY.check_certificate(
            Role.DS,
            DocumentType.PASSPORT,
            Window(START, add_months(START, 12)),
            key_usage=Window(START - timedelta(days=1), add_months(START, 2)),
        )


def test_policy_deployment_may_shorten_limits() -> None:
    policy = Policy.with_overrides({"passport.ds": {"key_usage_months": 1, "max_signatures": 50_000}})
    row = policy.limit(DocumentType.PASSPORT, Role.DS)
    assert (row.key_usage_months, row.max_signatures, row.certificate_validity_months) == (1, 50_000, 120)
    with pytest.raises(PolicyViolation):
        policy.check_signature_count(DocumentType.PASSPORT, Role.DS, 50_001)
    # The other document type keeps the decree's limit.
    policy.check_signature_count(DocumentType.IDCARD, Role.DS, 100_000)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            {"passport.ds": {"key_usage_months": 4}},
            "Art. 23.1b: configured passport DS private-key usage of 4 months exceeds the decree's 3 months",
        ),
        (
            {"idcard.ds": {"max_signatures": 100_001}},
            "Art. 26.1b: configured ID card DS signature count of 100,001 ID cards exceeds the decree's 100,000 ID cards",
        ),
        (
            [{"document_type": "passport", "role": "is", "certificate_validity_months": 2}],
            "Art. 23.2c: configured passport IS certificate validity of 2 months exceeds the decree's 1 month",
        ),
    ],
)
def test_policy_deployment_may_not_lengthen_limits(override: object, message: str) -> None:
    with pytest.raises(PolicyConfigurationError) as caught:
        Policy.with_overrides(override)  # type: ignore[arg-type]
    assert str(caught.value) == message


def test_policy_override_rejects_nonsense() -> None:
    with pytest.raises(PolicyConfigurationError, match="unknown document type or role"):
        Policy.with_overrides({"visa.ds": {"key_usage_months": 1}})
    with pytest.raises(PolicyConfigurationError, match="positive integer"):
        Policy.with_overrides({"passport.ds": {"key_usage_months": 0}})
    with pytest.raises(PolicyConfigurationError, match="sets no IS signature count limit"):
        Policy.with_overrides({"passport.is": {"max_signatures": 10}})


# --- month arithmetic ----------------------------------------------------------------------


def test_add_months_clamps_end_of_month() -> None:
    assert add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert add_months(date(2028, 1, 31), 1) == date(2028, 2, 29)
    assert add_months(date(2028, 2, 29), 12) == date(2029, 2, 28)
    assert add_months(datetime(2026, 8, 31, 23, 59, tzinfo=UTC), 3) == datetime(2026, 11, 30, 23, 59, tzinfo=UTC)


dates = st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31))


@given(dates, st.integers(min_value=0, max_value=400))
def test_add_months_properties(start: date, months: int) -> None:
    end = add_months(start, months)
    # Calendar months: year*12+month advances by exactly `months`.
    assert (end.year * 12 + end.month) - (start.year * 12 + start.month) == months
    # The day is kept unless the target month is shorter, then clamped to its last day.
    last = calendar.monthrange(end.year, end.month)[1]
    assert end.day == min(start.day, last)
    # Monotonic: one more month never ends earlier.
    assert add_months(start, months + 1) > end


@given(dates, st.sampled_from([Role.CVCA, Role.DVCA, Role.IS]), st.sampled_from(list(DocumentType)))
def test_cv_limit_is_last_day_before_the_month_boundary(effective: date, role: Role, doc: DocumentType) -> None:
    months = DEFAULT_POLICY.limit(doc, role).key_usage_months
    last = cv_max_expiration(effective, months)
    assert last + timedelta(days=1) == add_months(effective, months)
    DEFAULT_POLICY.check_certificate(role, doc, Window(effective, last), certificate_format=CertificateFormat.CV)
    with pytest.raises(PolicyViolation):
        DEFAULT_POLICY.check_certificate(
            role, doc, Window(effective, last + timedelta(days=1)), certificate_format=CertificateFormat.CV
        )


@given(dates.filter(lambda d: d.month in (1, 2) or d.day >= 28))
def test_is_validity_month_end_and_leap_years(effective: date) -> None:
    last = cv_max_expiration(effective, 1)
    DEFAULT_POLICY.check_certificate(
        Role.IS, DocumentType.IDCARD, Window(effective, last), certificate_format=CertificateFormat.CV
    )
    with pytest.raises(PolicyViolation, match=r"^Art\. 26\.2c"):
        DEFAULT_POLICY.check_certificate(
            Role.IS,
            DocumentType.IDCARD,
            Window(effective, last + timedelta(days=1)),
            certificate_format=CertificateFormat.CV,
        )


def test_describe_span() -> None:
    assert describe_span(date(2026, 1, 1), date(2026, 2, 2)) == "1 month and 1 day"
    assert describe_span(date(2026, 1, 1), date(2041, 1, 1)) == "15 years"
    assert describe_span(START, START + timedelta(days=93, hours=1)) == "3 months, 1 day and 1 hour"


# --- general official-use certificates (Art. 9, 12, 14) -----------------------------------


def test_provider_root_and_new_subscriber_limits() -> None:
    check_provider_root(Window(START, add_months(START, 240)))
    with pytest.raises(PolicyViolation, match=r"^Art\. 9\.1"):
        check_provider_root(Window(START, add_months(START, 240) + timedelta(days=1)))
    check_subscriber_new(Window(START, add_months(START, 60)))
    with pytest.raises(PolicyViolation, match=r"^Art\. 9\.2"):
        check_subscriber_new(Window(START, add_months(START, 60) + timedelta(days=1)))


def test_subscriber_renewal_rules() -> None:
    current = Window(START, add_months(START, 60))
    early = current.end - timedelta(days=30)
    check_subscriber_renewal(current, add_months(current.end, 36), previous_renewals=0, when=early)
    with pytest.raises(PolicyViolation, match=r"^Art\. 12\.1: renewal needs at least 30 days"):
        check_subscriber_renewal(current, add_months(current.end, 36), 0, early + timedelta(seconds=1))
    with pytest.raises(PolicyViolation, match=r"^Art\. 12\.1: a certificate may be renewed only once"):
        check_subscriber_renewal(current, add_months(current.end, 12), 1, early)
    with pytest.raises(PolicyViolation, match=r"^Art\. 9\.3"):
        check_subscriber_renewal(current, add_months(current.end, 36) + timedelta(days=1), 0, early)


def test_subscriber_change_of_information_rules() -> None:
    current = Window(START, add_months(START, 24))
    check_subscriber_change(current, current, current.end - timedelta(days=30))
    with pytest.raises(PolicyViolation, match=r"^Art\. 14\.1: a change of information needs at least 30 days"):
        check_subscriber_change(current, current, current.end - timedelta(days=29))
    with pytest.raises(PolicyViolation, match="must not change the certificate's validity"):
        check_subscriber_change(current, Window(START, current.end + timedelta(days=1)), START)
