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
