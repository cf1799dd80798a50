"""The throwaway project the example swarm works on."""


def hello(name: str) -> str:
    return f"hello {name}"
