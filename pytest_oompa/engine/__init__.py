"""The swarm engine: the swarm, its workers, harness calls in their process groups, git, the
task queue, prompts and reply markers. Never imports pytest.
"""
