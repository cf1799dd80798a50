import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_oompa.core.config import (
    REASONING_LEVELS,
    ConfigError,
    CycleLimits,
    load_config,
    parse_model,
)

HARNESSES = ("claude", "codex", "opencode", "gemini")


@pytest.mark.parametrize(
    ("text", "harness", "model", "reasoning"),
    [
        ("claude:opus", "claude", "opus", None),
        ("codex:gpt-5.3-codex:medium", "codex", "gpt-5.3-codex", "medium"),
        ("codex:gpt-5:max", "codex", "gpt-5", "xhigh"),
        ("opencode:openrouter/x:free", "opencode", "openrouter/x:free", None),
        ("claude:opus:high", "claude", "opus:high", None),  # only codex takes a reasoning level
        ("gpt-5", "codex", "gpt-5", None),  # no known harness prefix: codex
        ("gpt-5:low", "codex", "gpt-5", "low"),
        ("gemini:gemini-2.5-pro", "gemini", "gemini-2.5-pro", None),
        ("codex:high", "codex", "high", None),  # a lone word is the model, not a level
    ],
)
def test_model_strings(text, harness, model, reasoning):
    spec = parse_model(text, HARNESSES)
    assert (spec.harness, spec.model, spec.reasoning) == (harness, model, reasoning)


@pytest.mark.parametrize("text", ["", "  ", "claude:", "codex:"])
def test_model_strings_without_a_model_are_refused(text):
    with pytest.raises(ValueError):
        parse_model(text, HARNESSES)


model_ids = st.text(
    alphabet=st.characters(whitelist_categories=("Ll", "Lu", "Nd"), whitelist_characters="-./_:"),
    min_size=1,
    max_size=30,
).filter(lambda s: s.strip(":") == s and s.strip())


@given(
    harness=st.sampled_from(HARNESSES),
    model=model_ids,
    level=st.none() | st.sampled_from(REASONING_LEVELS),
)
def test_model_string_round_trip(harness, model, level):
    """What parse_model splits, str() joins again, and a codex level always survives."""
    text = f"{harness}:{model}" + (f":{level}" if level else "")
    spec = parse_model(text, HARNESSES)
    assert spec.harness == harness
    if harness == "codex" and level:
        assert spec.reasoning == level
    assert parse_model(str(spec), HARNESSES) == spec


def write(tmp_path: Path, data, name="oompa.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def problems(tmp_path, data) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, data), HARNESSES)
    return dict(info.value.problems)


def test_a_full_config_resolves(tmp_path):
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts/a.md").write_text("first\n")
    (tmp_path / "prompts/b.md").write_text("second\n")
    config = load_config(
        write(
            tmp_path,
            {
                "workers": [
                    {
                        "model": "claude:opus",
                        "prompt": ["prompts/a.md", "prompts/b.md"],
                        "iterations": 5,
                        "count": 1,
                        "wait_between": 2,
                    },
                    {
                        "model": "codex:gpt-5:high",
                        "prompt": "prompts/a.md",
                        "count": 2,
                        "can_plan": False,
                    },
                ],
                "reviewer": {"model": "claude:sonnet", "prompt": ["prompts/b.md"]},
                "planner": {"model": "claude:opus", "prompt": "prompts/a.md", "max_pending": 4},
            },
        ),
        HARNESSES,
    )
    assert [w.id for w in config.workers] == ["w0", "w1", "w2"]
    w0, w1, w2 = config.workers
    assert w0.agent.prompt_text == "first\n\nsecond"
    assert (w0.iterations, w0.wait_between, w0.can_plan) == (5, 2, True)
    assert (w1.agent.harness, w1.agent.reasoning, w1.iterations, w1.can_plan) == (
        "codex",
        "high",
        10,
        False,
    )
    assert w2.agent == w1.agent
    assert config.reviewer.model == "sonnet"
    assert config.planner.max_pending == 4


def test_legacy_review_model(tmp_path):
    config = load_config(
        write(tmp_path, {"workers": [{"model": "claude:opus"}], "review_model": "codex:o3"}),
        HARNESSES,
    )
    assert (config.reviewer.harness, config.reviewer.model) == ("codex", "o3")


@pytest.mark.parametrize(
    ("data", "where", "says"),
    [
        ({}, "workers", "required"),
        ({"workers": []}, "workers", "at least 1"),
        (
            {"workers": [{"model": "claude:opus", "iterations": 0}]},
            "workers[0].iterations",
            "greater than or equal to 1",
        ),
        (
            {"workers": [{"model": "claude:opus", "iterations": "5"}]},
            "workers[0].iterations",
            "valid integer",
        ),
        ({"workers": [{"model": "claude:opus", "count": -1}]}, "workers[0].count", ">= 1"),
        (
            {"workers": [{"model": "claude:opus", "can_plan": "yes"}]},
            "workers[0].can_plan",
            "valid boolean",
        ),
        (
            {"workers": [{"model": "claude:opus", "wait_between": -1}]},
            "workers[0].wait_between",
            "greater than or equal to 0",
        ),
        (
            {"workers": [{"model": "claude:opus", "itterations": 3}]},
            "workers[0].itterations",
            "unknown field; expected one of: model, prompt",
        ),
        ({"workers": [{"model": "claude:"}]}, "workers[0].model", "no model"),
        ({"workers": [{"prompt": "x.md"}]}, "workers[0].model", "required"),
        (
            {
                "workers": [{"model": "claude:opus"}],
                "planner": {"model": "claude:x", "max_pending": 0},
            },
            "planner.max_pending",
            "greater than or equal to 1",
        ),
        (
            {
                "workers": [{"model": "claude:opus"}],
                "reviewer": {"model": "claude:x"},
                "review_model": "claude:y",
            },
            "<root>",
            "not both",
        ),
        ({"workers": [{"model": "claude:opus"}], "gait": 3}, "gait", "unknown field"),
        (
            {"workers": [{"model": "claude:opus"}], "sandbox": "docker"},
            "sandbox",
            "Input should be 'none' or 'bwrap'",
        ),
        (
            {"workers": [{"model": "claude:opus"}], "limits": {"cost_usd": 0}},
            "limits.cost_usd",
            "greater than 0",
        ),
        (
            {"workers": [{"model": "claude:opus"}], "limits": {"tokens": "many"}},
            "limits.tokens",
            "valid integer",
        ),
        (
            {"workers": [{"model": "claude:opus", "limits": {"cost": 1}}]},
            "workers[0].limits.cost",
            "unknown field; expected one of: cost_usd, tokens",
        ),
    ],
)
def test_broken_configs_name_the_field(tmp_path, data, where, says):
    found = problems(tmp_path, data)
    key = "" if where == "<root>" else where
    assert key in found, found
    assert says.replace(">= 1", "greater than or equal to 1") in found[key]


def test_every_problem_is_reported_at_once(tmp_path):
    found = problems(
        tmp_path,
        {
            "workers": [
                {"model": "claude:opus", "iterations": 0, "colour": "red"},
                {"model": "codex:o3", "count": "2"},
            ]
        },
    )
    assert set(found) == {"workers[0].iterations", "workers[0].colour", "workers[1].count"}


def test_missing_prompt_file_is_an_error_not_a_skip(tmp_path):
    found = problems(tmp_path, {"workers": [{"model": "claude:opus", "prompt": ["nope.md"]}]})
    assert "not found" in found["workers[0].prompt[0]"]
    assert str(tmp_path) in found["workers[0].prompt[0]"]


def test_invalid_json_names_line_and_column(tmp_path):
    with pytest.raises(ConfigError, match=r"not valid JSON at line 2 column"):
        load_config(write(tmp_path, '{"workers": [\n  {"model": }]}'), HARNESSES)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_config(tmp_path / "absent.json", HARNESSES)


def test_prompts_resolve_against_the_config_folder(tmp_path, monkeypatch):
    sub = tmp_path / "cfg"
    sub.mkdir()
    (sub / "p.md").write_text("hello")
    monkeypatch.chdir(tmp_path)  # cwd is not where prompts are looked up
    config = load_config(
        write(sub, {"workers": [{"model": "claude:opus", "prompt": "p.md"}]}), HARNESSES
    )
    assert config.workers[0].agent.prompt_files == ((sub / "p.md").resolve(),)


def test_limits_and_sandbox_resolve(tmp_path):
    config = load_config(
        write(
            tmp_path,
            {
                "workers": [
                    {"model": "claude:opus", "count": 2, "limits": {"tokens": 2000}},
                    {"model": "codex:o3"},
                ],
                "limits": {"cost_usd": 5, "tokens": 2000000},
                "sandbox": "bwrap",
            },
        ),
        HARNESSES,
    )
    assert (config.limits.cost_usd, config.limits.tokens) == (5.0, 2000000)
    assert config.sandbox == "bwrap"
    assert [w.limits.tokens for w in config.workers] == [2000, 2000, None]
    assert not config.workers[2].limits.active
    defaults = load_config(write(tmp_path, {"workers": [{"model": "claude:opus"}]}), HARNESSES)
    assert defaults.sandbox == "none" and not defaults.limits.active


# -- oompa 0.7.0 iterations and oompa 0.7.3 cycles ---------------------------------------------


def test_a_config_written_for_oompa_0_7_3_is_accepted(tmp_path):
    config = load_config(
        write(tmp_path, {"workers": [{"model": "claude:opus", "max_cycle": 5}]}), HARNESSES
    )
    (w0,) = config.workers
    assert w0.mode == "0.7.3"
    assert w0.cycles == CycleLimits(
        max_cycle=5, max_resumes=7, max_needs_followups=1, max_wait_for_tasks=600
    )
    assert w0.iterations == 0  # nothing counting iterations can run it as a 0.7.0 worker
    assert w0.sync_before_merge  # on by default in 0.7.3 mode


def test_a_worker_with_neither_key_stays_an_oompa_0_7_0_worker(tmp_path):
    config = load_config(write(tmp_path, {"workers": [{"model": "claude:opus"}]}), HARNESSES)
    (w0,) = config.workers
    assert (w0.mode, w0.iterations, w0.sync_before_merge) == ("0.7.0", 10, False)


def test_every_0_7_3_key_resolves_and_any_one_makes_a_0_7_3_worker(tmp_path):
    config = load_config(
        write(
            tmp_path,
            {
                "workers": [
                    {
                        "model": "claude:opus",
                        "max_cycle": 3,
                        "max_resumes": 2,
                        "max_needs_followups": 0,
                        "max_wait_for_tasks": 30,
                        "count": 2,
                    },
                    {"model": "codex:o3", "max_resumes": 4},
                    {"model": "codex:o3", "iterations": 4},
                ],
                "sync_before_merge": False,
            },
        ),
        HARNESSES,
    )
    w0, w1, w2, w3 = config.workers
    assert w0.cycles == w1.cycles == CycleLimits(3, 2, 0, 30.0)
    assert (w2.mode, w2.cycles) == ("0.7.3", CycleLimits(max_resumes=4))
    assert (w3.mode, w3.iterations) == ("0.7.0", 4)
    assert [w.section for w in config.workers] == [0, 0, 1, 2]
    assert not any(w.sync_before_merge for w in config.workers)  # the file's false wins


def test_sync_before_merge_given_applies_to_0_7_0_workers_too(tmp_path):
    data = {"workers": [{"model": "claude:opus", "iterations": 2}], "sync_before_merge": True}
    assert load_config(write(tmp_path, data), HARNESSES).workers[0].sync_before_merge


BOTH = "iterations and max_cycle exclude each other: iterations is oompa 0.7.0's"


@pytest.mark.parametrize(
    ("worker", "where", "says"),
    [
        ({"iterations": 5, "max_cycle": 5}, "workers[0]", BOTH),
        ({"iterations": 5, "max_resumes": 2}, "workers[0].max_resumes", "0.7.3 cycle limit"),
        ({"iterations": 5, "max_wait_for_tasks": 1}, "workers[0].max_wait_for_tasks", "0.7.0"),
        ({"max_cycle": 0}, "workers[0].max_cycle", "greater than or equal to 1"),
        ({"max_cycle": "5"}, "workers[0].max_cycle", "valid integer"),
        ({"max_resumes": 0}, "workers[0].max_resumes", "greater than or equal to 1"),
        ({"max_needs_followups": -1}, "workers[0].max_needs_followups", ">= 0"),
        ({"max_needs_followups": True}, "workers[0].max_needs_followups", "valid integer"),
        ({"max_wait_for_tasks": -1}, "workers[0].max_wait_for_tasks", ">= 0"),
        ({"max_cycles": 5}, "workers[0].max_cycles", "unknown field; expected one of: model"),
    ],
)
def test_broken_0_7_3_workers_name_the_field(tmp_path, worker, where, says):
    found = problems(tmp_path, {"workers": [{"model": "claude:opus", **worker}]})
    assert where in found, found
    assert says.replace(">= ", "greater than or equal to ") in found[where]


def test_an_unknown_worker_key_lists_the_0_7_3_keys(tmp_path):
    found = problems(tmp_path, {"workers": [{"model": "claude:opus", "max_cycles": 5}]})
    for key in ("iterations", "max_cycle", "max_resumes", "max_needs_followups"):
        assert key in found["workers[0].max_cycles"]


def test_sync_before_merge_is_a_boolean(tmp_path):
    data = {"workers": [{"model": "claude:opus"}], "sync_before_merge": "yes"}
    assert "valid boolean" in problems(tmp_path, data)["sync_before_merge"]


def test_both_versions_in_one_worker_are_reported_with_every_other_problem(tmp_path):
    found = problems(
        tmp_path,
        {
            "workers": [
                {"model": "claude:opus", "iterations": 2, "max_cycle": 3, "colour": "red"},
                {"model": "codex:o3", "max_cycle": 0},
            ],
            "sync_before_merge": 1,
        },
    )
    assert set(found) == {
        "workers[0]",
        "workers[0].colour",
        "workers[1].max_cycle",
        "sync_before_merge",
    }
    assert found["workers[0]"].startswith(BOTH)


def test_units_are_iterations_or_cycles(tmp_path):
    data = {
        "workers": [
            {"model": "claude:opus", "iterations": 2},
            {"model": "codex:o3", "max_cycle": 3},
        ]
    }
    w0, w1 = load_config(write(tmp_path, data), HARNESSES).workers
    assert (w0.units, w0.unit, w0.cycles_mode) == (2, "i", False)
    assert (w1.units, w1.unit, w1.cycles_mode) == (3, "c", True)


def test_outcome_verdicts_know_the_0_7_3_outcomes(tmp_path):
    data = {"workers": [{"model": "claude:opus"}], "outcomes": {"stuck": "xfail"}}
    config = load_config(write(tmp_path, data), HARNESSES)
    assert config.outcomes["stuck"] == "xfail"
    assert config.outcomes["interrupted"] == "skip"
    for failed in ("merge-failed", "sync-failed", "needs-followup"):
        assert config.outcomes[failed] == "fail"
