#!/usr/bin/env bash
# The suite's long runs (issue 22), one training job at a time (each uses both cores), every one resumable: after a
# stop, start this script again the same way and it goes on where it stopped (finished runs are skipped).
#   nohup nice -n 19 bash bench/peer/queue.sh >> bench/peer/queue.log 2>&1 &
# 1. the reference's screen: seed 0, 300k steps, on candidate games (then more candidates if fewer than 3 are clear)
# 2. the reference on the 3 chosen games, seeds 1 and 2 (seed 0 is the screen's run)
# 3. the suite's runs of the defaults, then of the 2018 configuration
set -u
cd "$(dirname "$0")/../.."
PEER=bench/peer/.venv/bin/python
PROJECT=.venv/bin/python
STEPS=300000

step() {
    echo "== $(date -u +%FT%TZ) start: $*"
    "$@"
    echo "== $(date -u +%FT%TZ) exit $?: $*"
}
peer() { step "$PEER" bench/peer/ppo_reference.py --game "ALE/$1-v5" --seed "$2" --steps "$STEPS"; }
chosen() { "$PROJECT" bench/learning.py --list-games | grep '^ALE/' | sed 's|^ALE/||; s|-v5$||'; }

if [ "$(chosen | wc -l)" -lt 3 ]; then
    for game in Seaquest Qbert MsPacman SpaceInvaders; do peer "$game" 0; done
    step "$PROJECT" bench/learning.py --screen
fi
if [ "$(chosen | wc -l)" -lt 3 ]; then
    for game in BeamRider Freeway Enduro Pong; do peer "$game" 0; done
    step "$PROJECT" bench/learning.py --screen
fi
for seed in 1 2; do
    for game in $(chosen); do peer "$game" "$seed"; done
done
step "$PROJECT" bench/learning.py --suite --configs defaults
step "$PROJECT" bench/learning.py --suite --configs 2018
echo "== $(date -u +%FT%TZ) queue done"
