"""Never crash on bad input: mutated Master Lists, SODs and Deviation Lists either parse or
raise the module's typed decode error, and the checkers report instead of raising."""

from __future__ import annotations

from functools import cache

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from icao_pki.cms import CmsDecodeError
from icao_pki.deviationlist import DeviationListDecodeError, build_deviation_list, parse_deviation_list
from icao_pki.masterlist import MasterListDecodeError, build_master_list, check_master_list, parse_master_list
from icao_pki.pa import check_pa
from icao_pki.sod import SodDecodeError, build_sod
from tests.icao.test_cms_pki import T0, pki
from tests.icao.test_sod import DATA_GROUPS

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@cache
def _ml() -> bytes:
    p = pki()
    return build_master_list(
        [p.csca.der, p.foreign_csca.der], signer=p.mls.signer, signer_certificate=p.mls.der,
        signer_csca_certificate=p.csca.der, signing_time=T0,
    )  # fmt: skip


@cache
def _sod() -> bytes:
    p = pki()
    return build_sod(DATA_GROUPS, ds_signer=p.ds.signer, ds_certificate=p.ds.der, signing_time=T0)


@cache
def _dl() -> bytes:
    p = pki()
    return build_deviation_list([], signer=p.dls.signer, signer_certificate=p.dls.der, signer_csca_certificate=p.csca.der, signing_time=T0)


def _mutate(data: bytes, edits: list[tuple[int, int]], cut: int | None) -> bytes:
    out = bytearray(data)
    for position, value in edits:
        out[position % len(out)] = value
    return bytes(out[:cut] if cut else out)


edits = st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), min_size=1, max_size=4)
cuts = st.one_of(st.none(), st.integers(1, 4000))


@SETTINGS
@given(edits, cuts)
def test_cms_robustness_master_list(e: list[tuple[int, int]], cut: int | None) -> None:
    data = _mutate(_ml(), e, cut)
    try:
        ml = parse_master_list(data)
    except MasterListDecodeError:
        return
    report = check_master_list(ml, trust_anchors=[pki().csca.der], at=T0)
    report.as_dict()
    if data != _ml():
        assert isinstance(report.valid, bool)


@SETTINGS
@given(edits, cuts)
def test_cms_robustness_sod_and_pa(e: list[tuple[int, int]], cut: int | None) -> None:
    data = _mutate(_sod(), e, cut)
    try:
        result = check_pa(data, DATA_GROUPS, trust=[pki().csca.der], at=T0)
    except SodDecodeError:
        return
    result.as_dict()


@SETTINGS
@given(edits, cuts)
def test_cms_robustness_deviation_list(e: list[tuple[int, int]], cut: int | None) -> None:
    try:
        parse_deviation_list(_mutate(_dl(), e, cut))
    except DeviationListDecodeError:
        pass


@SETTINGS
@given(st.binary(max_size=300))
def test_cms_robustness_random_bytes(data: bytes) -> None:
    for parse in (parse_master_list, parse_deviation_list):
        try:
            parse(data)
        except CmsDecodeError:
            pass
    try:
        check_pa(data, {}, trust=[], at=T0)
    except SodDecodeError:
        pass
