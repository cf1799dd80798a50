import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_oompa.engine import prompts
from pytest_oompa.engine.markers import (
    MAX_CLAIM_IDS,
    MAX_REASON_CHARS,
    parse_signals,
    parse_verdict,
)
from pytest_oompa.engine.tasks import valid_task_id


def test_claim_merge_done():
    s = parse_signals("I will take these.\nCLAIM(a-1, b_2)\nCOMPLETE_AND_READY_FOR_MERGE\n__DONE__")
    assert s.claims == ("a-1", "b_2")
    assert s.merge and s.done


def test_no_signals():
    s = parse_signals("still thinking about it")
    assert (s.claims, s.invalid_claims, s.merge, s.done) == ((), (), False, False)
    assert (s.needs_followup, s.followup_reason) == (False, "")


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


# -- NEEDS_FOLLOWUP (oompa 0.7.3) -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("NEEDS_FOLLOWUP: the schema migration is missing", "the schema migration is missing"),
        ("NEEDS_FOLLOWUP", ""),
        # upstream's own test reply: the reason in the next paragraph
        (
            "NEEDS_FOLLOWUP\n\nNeed one sharper pass to finish the merge-ready diff.",
            "Need one sharper pass to finish the merge-ready diff.",
        ),
        ("  NEEDS_FOLLOWUP - blocked on t2", "blocked on t2"),
        ("**NEEDS_FOLLOWUP**: tests need a database", "tests need a database"),
        ("## NEEDS_FOLLOWUP. too big", "too big"),
        ("> NEEDS_FOLLOWUP: quoted", "quoted"),
        ("NEEDS_FOLLOWUP — `db` is down", "`db` is down"),
        # an agent that explains itself first still signals, from the line that opens with it
        ("I tried two approaches.\nNEEDS_FOLLOWUP: both break the API", "both break the API"),
        ("NEEDS_FOLLOWUP: first\nNEEDS_FOLLOWUP: second", "first\nNEEDS_FOLLOWUP: second"),
    ],
)
def test_needs_followup_and_its_reason(text, reason):
    s = parse_signals(text)
    assert s.needs_followup
    assert s.followup_reason == reason


@pytest.mark.parametrize(
    "text",
    [
        "Do not output NEEDS_FOLLOWUP again unless you are still blocked.",  # quoting
        "signal NEEDS_FOLLOWUP with a short explanation",
        "NEEDS_FOLLOWUPS are rare",  # another word
        "needs_followup: lower case",  # signals are upper case, as the others are
        "xNEEDS_FOLLOWUP: glued",
    ],
)
def test_needs_followup_only_where_it_opens_a_line(text):
    assert not parse_signals(text).needs_followup


def test_needs_followup_keeps_the_other_signals():
    s = parse_signals("NEEDS_FOLLOWUP: half done\nCLAIM(t1)\nCOMPLETE_AND_READY_FOR_MERGE")
    assert s.needs_followup and s.claims == ("t1",) and s.merge


def test_a_long_reason_is_cut():
    s = parse_signals("NEEDS_FOLLOWUP: " + "x" * 5000)
    assert len(s.followup_reason) == MAX_REASON_CHARS
    assert s.followup_reason.endswith("…")


_SEPARATORS = " \t:.-\u2013\u2014*`"  # and the en and em dash
reasons = st.text(max_size=MAX_REASON_CHARS).filter(
    lambda r: r == r.strip() and r[:1] not in _SEPARATORS
)


@given(reasons)
def test_the_reason_given_is_the_reason_read(reason):
    s = parse_signals(f"NEEDS_FOLLOWUP: {reason}")
    assert s.needs_followup
    assert s.followup_reason == reason


@given(st.text(), st.text(max_size=40))
def test_the_reason_is_always_short_and_the_marker_must_open_a_line(before, after):
    s = parse_signals(f"{before}NEEDS_FOLLOWUP{after}")
    assert len(s.followup_reason) <= MAX_REASON_CHARS
    line = before.rsplit("\n", 1)[-1]
    # \w is what str.isalnum() says plus "_" (the re module's definition)
    glued = any(c.isalnum() or c == "_" for c in line)
    if glued and "NEEDS_FOLLOWUP" not in before + after:
        assert not s.needs_followup


def test_the_follow_up_prompt_is_upstreams():
    text = prompts.needs_followup(
        "s1", "w0", ["t2", "t1"], "the schema is missing\n", "Pending: 1, In Progress: 2"
    )
    assert text.startswith("[oompa:s1:w0] ## NEEDS_FOLLOWUP Follow-up\n\n")
    assert "You still own these claimed tasks: t1, t2\n" in text
    assert "Continue the SAME cycle and finish a merge-ready artifact." in text
    assert "Do not output NEEDS_FOLLOWUP again unless" in text
    assert "Your previous explanation:\nthe schema is missing\n\n" in text
    assert "## Task status\nPending: 1, In Progress: 2\n" in text
    assert text.endswith("When ready, signal COMPLETE_AND_READY_FOR_MERGE.")
    # an agent that echoes the prompt has not asked for another follow-up
    assert not parse_signals(text).needs_followup


def test_the_follow_up_prompt_without_claims_or_reason():
    text = prompts.needs_followup("s1", "w3", [], "  ", "Pending: 0")
    assert "You do not currently own any claimed tasks." in text
    assert "previous explanation" not in text
