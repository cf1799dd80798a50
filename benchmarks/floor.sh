#!/usr/bin/env bash
# The "git floor": the bare git work of a swarm iteration, from bash, with the same agent.
#
#   FLOOR_REPO=/path/repo FLOOR_AGENT=/path/to/claude FLOOR_PROMPT_FILE=prompt.txt \
#   FLOOR_STATE=/tmp/state FLOOR_OUT=/tmp/out bash benchmarks/floor.sh WORKERS ITERATIONS
#
# WORKERS bash loops run in parallel; each runs ITERATIONS iterations of
#   git worktree add -b oompa/wX-iN .wX-iN main     (retried on git's transient failures)
#   the agent, in the worktree (same argv, prompt and environment as the engine's claude call)
#   git status --porcelain                          (in the worktree)
#   git rev-list --count main..HEAD                 (ahead count)
#   git diff --name-only main...HEAD                (diff names)
#   git add -A ; git commit                         ("nothing to commit" is accepted only when
#                                                    status was empty: the agent committed)
#   git checkout main ; git merge --no-edit BRANCH  (in the root; under flock when WORKERS > 1)
#   git worktree remove --force --force ; git branch -D
# i.e. 10 git spawns + 1 agent per iteration. With WORKERS > 1 the merge (checkout + merge) and
# the worktree commands (add; remove + branch -D) each hold a flock, as the engine's locks do:
# +3 flock spawns per iteration. (Without the worktree lock, concurrent `git worktree add/remove`
# fail with "failed to read .git/worktrees/.../commondir" and leave half-made branches behind.)
# Worktree/branch commands that still hit a transient failure are retried, and every retry is
# reported. Fails (exit 1) on any other failure, a reply without the merge signal, an iteration
# with no changes, or a failed merge.
#
# Writes "$FLOOR_OUT/times" (one line per finished iteration: worker, iteration,
# $EPOCHREALTIME; "start" lines first), "$FLOOR_OUT/retries" (one line per retry).
# The agent's environment is the caller's (OOMPA_FAKE_*, IS_SANDBOX=1 set by the caller).
set -u
WORKERS=${1:?workers}
ITERATIONS=${2:?iterations}
REPO=${FLOOR_REPO:?}
AGENT=${FLOOR_AGENT:?}
OUT=${FLOOR_OUT:?}
PROMPT_BODY=$(<"${FLOOR_PROMPT_FILE:?}")
SWARM=${FLOOR_SWARM:-floor}
LOCK="$REPO/.git/floor-merge.lock"
WTLOCK="$REPO/.git/floor-worktree.lock"
TRANSIENT='commondir|index\.lock|could not lock|cannot lock ref|Unable to create .*\.lock|unable to create directory|File exists'

fail() {
    printf 'floor: %s\n' "$*" >&2
    exit 1
}

# The git environment the engine gives its own git calls (pytest_oompa/git.py _BASE_ENV).
# Exported for git; unset again for the agent, which gets the caller's environment as in the
# engine.
export GIT_TERMINAL_PROMPT=0 LC_ALL=C GIT_OPTIONAL_LOCKS=0

# flock on a fresh descriptor (one flock spawn); closing the descriptor releases the lock.
lock() {
    ((WORKERS > 1)) || return 0
    exec {lockfd}>"$1"
    flock "$lockfd" || fail "flock $1"
}
unlock() {
    ((WORKERS > 1)) || return 0
    exec {lockfd}>&-
}

# git with retries of known transient failures, like the engine's _with_retries.
# stderr goes to a file: reading it costs no spawn.
retrying() {
    local w=$1 attempt delay=0.02 err
    shift
    for attempt in 1 2 3 4 5 6; do
        if git "$@" 2>"$OUT/err.$w"; then
            return 0
        fi
        IFS= read -rd '' err <"$OUT/err.$w"
        [[ $attempt -lt 6 && $err =~ $TRANSIENT ]] || fail "git $*: $err"
        printf 'w%s git %s: %s\n' "$w" "$*" "${err%%$'\n'*}" >>"$OUT/retries"
        sleep "$delay"
        delay=$(awk "BEGIN{print $delay*2}")
    done
}

worker() {
    local w=$1 n name wt br uuid reply st ahead files lockfd
    printf 'w%s 0 %s start\n' "$w" "$EPOCHREALTIME" >>"$OUT/times"
    for ((n = 1; n <= ITERATIONS; n++)); do
        name="w$w-i$n"
        wt="$REPO/.$name"
        br="oompa/$name"
        lock "$WTLOCK"
        retrying "$w" -C "$REPO" worktree add -q -b "$br" "$wt" main
        unlock
        read -r uuid </proc/sys/kernel/random/uuid
        (
            cd "$wt" || exit 1
            unset GIT_TERMINAL_PROMPT LC_ALL GIT_OPTIONAL_LOCKS
            exec "$AGENT" -p --dangerously-skip-permissions --output-format json --model opus \
                --session-id "$uuid" -- "[oompa:$SWARM:w$w] $PROMPT_BODY"
        ) </dev/null >"$OUT/agent.$w" 2>"$OUT/agent-err.$w" || fail "$name: agent exit $?"
        IFS= read -rd '' reply <"$OUT/agent.$w"
        [[ $reply == *COMPLETE_AND_READY_FOR_MERGE* ]] || fail "$name: no merge signal: $reply"
        st=$(git -C "$wt" status --porcelain) || fail "$name: status"
        ahead=$(git -C "$wt" rev-list --count main..HEAD) || fail "$name: rev-list"
        files=$(git -C "$wt" diff --name-only main...HEAD) || fail "$name: diff"
        git -C "$wt" add -A || fail "$name: add"
        if ! git -C "$wt" commit -q --no-verify -m "floor: work from $name" >/dev/null 2>&1; then
            [[ -z $st ]] || fail "$name: commit failed with a dirty worktree"
        fi
        [[ -n $files || $ahead -gt 0 || -n $st ]] || fail "$name: no changes"
        lock "$LOCK"
        git -C "$REPO" checkout -q main || fail "$name: checkout main"
        git -C "$REPO" merge -q --no-edit -m "floor: merge $name" "$br" >/dev/null 2>"$OUT/err.$w" ||
            fail "$name: merge: $(<"$OUT/err.$w")"
        unlock
        lock "$WTLOCK"
        retrying "$w" -C "$REPO" worktree remove --force --force "$wt"
        retrying "$w" -C "$REPO" branch -D -q "$br"
        unlock
        printf 'w%s %s %s\n' "$w" "$n" "$EPOCHREALTIME" >>"$OUT/times"
    done
}

: >"$OUT/times"
: >"$OUT/retries"
pids=()
for ((w = 0; w < WORKERS; w++)); do
    worker "$w" &
    pids+=($!)
done
rc=0
for pid in "${pids[@]}"; do
    wait "$pid" || rc=1
done
exit $rc
