import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_oompa.engine.markers import MAX_CLAIM_IDS, parse_signals, parse_verdict
from pytest_oompa.engine.tasks import valid_task_id


def test_claim_merge_done():
    s = parse_signals("I will take these.\nCLAIM(a-1, b_2)\nCOMPLETE_AND_READY_FOR_MERGE\n__DONE__")
    assert s.claims == ("a-1", "b_2")
    assert s.merge and s.done


def test_no_signals():
    s = parse_signals("still thinking about it")
    assert (s.claims, s.invalid_claims, s.merge, s.done) == ((), (), False, False)


@pytest.mark.parametrize("bad", ["../x", "../../etc/passwd", "a/b", ".", "..", "a b", "x\\y", "é"])
def test_claim_of_a_path_is_refused(bad):
    s = parse_signals(f"CLAIM({bad})")
    assert s.claims == ()
    assert s.invalid_claims == (bad,)


def test_empty_claim_and_duplicates():
    assert parse_signals("CLAIM()").claims == ()
    assert parse_signals("CLAIM(a, a, 'b')").claims == ("a", "b")


def test_a_thousand_ids_are_capped():
    s = parse_signals("CLAIM(" + ", ".join(f"t{i}" for i in range(1000)) + ")")
    assert len(s.claims) == MAX_CLAIM_IDS
    assert len(s.invalid_claims) == 1000 - MAX_CLAIM_IDS


@given(st.lists(st.text(max_size=12), max_size=8))
def test_claimed_ids_are_always_valid_task_ids(ids):
    s = parse_signals("CLAIM(" + ", ".join(ids) + ")")
    assert all(valid_task_id(t) for t in s.claims)
    assert not set(s.claims) & set(s.invalid_claims)


@given(st.text())
def test_parsing_never_fails(text):
    parse_signals(text)
    assert parse_verdict(text) in ("approved", "needs-changes", "rejected")


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("Looks good.\nVERDICT: APPROVED", "approved"),
        ("VERDICT: NEEDS_CHANGES\n- add tests", "needs-changes"),
        ("**VERDICT: REJECTED**", "rejected"),
        # quoting the instructions first, then answering: the last verdict line wins
        (
            "VERDICT: APPROVED\nVERDICT: NEEDS_CHANGES\nVERDICT: REJECTED\n\n"
            "VERDICT: NEEDS_CHANGES",
            "needs-changes",
        ),
        ("APPROVED, nice work", "approved"),
        ("REJECTED: wrong approach", "rejected"),
        ("approved-ish, maybe", "needs-changes"),  # bare words count only in upper case
        ("", "needs-changes"),
    ],
)
def test_verdicts(text, verdict):
    assert parse_verdict(text) == verdict
