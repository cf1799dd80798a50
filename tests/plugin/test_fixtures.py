"""The fixtures as a harness author uses them; the first test is the README's example."""


def test_my_prompt_set_still_merges(oompa_repo, oompa_swarm):
    oompa_repo.add_task("t1")
    oompa_repo.commit("seed a task")
    run = oompa_swarm(
        {
            "workers": [{"model": "claude:opus", "iterations": 2, "prompt": "executor.md"}],
            "reviewer": {"model": "codex:o3"},
        },
        prompts={"executor.md": "Implement the task you claim."},
        scenario={"workers": {"w0": {"reviewer": [{"verdict": "needs-changes"}, "default"]}}},
    )
    assert run.outcomes("w0") == ["merged", "merged"]
    assert run.workers["w0"].metrics.review_rounds_total == 3
    assert oompa_repo.tasks("complete") == ["t1"]
    assert [c["role"] for c in run.fake_calls][:4] == ["probe", "probe", "worker", "reviewer"]


def test_the_worker_prompt_reaches_the_agent(oompa_repo, oompa_swarm):
    run = oompa_swarm(
        {"probe": False, "workers": [{"model": "gemini:pro", "iterations": 1, "prompt": "p.md"}]},
        prompts={"p.md": "Write the changelog entry."},
    )
    (call,) = run.fake_calls
    prompt = call["argv"][-1]
    assert prompt.startswith(f"--prompt=[oompa:{run.result.swarm_id}:w0] ")
    assert "Write the changelog entry." in prompt and "## Task status" in prompt


def test_repo_helpers(oompa_repo):
    oompa_repo.add_task("a", difficulty="hard")
    oompa_repo.commit("task")
    assert oompa_repo.tasks("pending") == ["a"]
    assert "tasks/pending/a.json" in oompa_repo.files()
    assert oompa_repo.status() == [] and oompa_repo.branches() == ["main"]


def test_fake_model_api_fixture(fake_model_api, tmp_path):
    """The fixture serves the loopback API for one test; scripting is test_fake_api.py's."""
    import json
    import urllib.request

    env = fake_model_api.environment(tmp_path / "home", ["claude"])
    assert env["ANTHROPIC_BASE_URL"] == fake_model_api.url.rstrip("/")
    assert fake_model_api.url.startswith("http://127.0.0.1:")
    body = json.dumps(
        {
            "model": "m",
            "stream": True,
            "max_tokens": 10,
            "messages": [{"role": "user", "content": "hello"}],
        }
    ).encode()
    request = urllib.request.Request(
        f"{fake_model_api.url}/v1/messages", data=body, headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        events = [
            line[7:] for line in response.read().decode().splitlines() if line.startswith("event: ")
        ]
    assert events[0] == "message_start" and events[-1] == "message_stop"
    assert [r.path for r in fake_model_api.requests][-1].startswith("/v1/messages")
