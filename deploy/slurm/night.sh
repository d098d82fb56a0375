#!/usr/bin/env bash
# A night on a Slurm cluster: a job array of simulated sweeps (and optionally one of real
# campaigns), then a merge job that runs after every task, however they ended
# (--dependency=afterany), into one report of unique failures.
#
#   FAULTLINE_BIN=/opt/faultline/bin NIGHT_DIR=/shared/faultline/$(date +%F) deploy/slurm/night.sh
#
# Every setting comes from the environment (defaults below); the job scripts read the same
# variables (sbatch passes the environment on). Prints one line per submitted job:
# `sim <jobid>`, `campaign <jobid>`, `merge <jobid>`. The morning report is
# $NIGHT_DIR/merged/index.html (and merged-campaign/ for the real runs).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

export FAULTLINE_BIN="${FAULTLINE_BIN:-/opt/faultline/bin}"   # harness, replica, replica-bugs
export REPLICA_BIN="${REPLICA_BIN:-$FAULTLINE_BIN/replica}" # the replica real campaigns run
export NIGHT_DIR="${NIGHT_DIR:-$HOME/faultline-nights/$(date -u +%F)}"
export SIM_TASKS="${SIM_TASKS:-10}"              # array tasks of the simulated sweep
export SIM_SEEDS="${SIM_SEEDS:-500000}"          # seeds over all of them
export SIM_FROM="${SIM_FROM:-1}"                 # first seed
export SIM_FLAGS="${SIM_FLAGS:-}"                # e.g. "--ops 400 --faults kill,partition"
export SIM_TIME="${SIM_TIME:-8:00:00}"           # each sim task's time limit
export CAMPAIGN_TASKS="${CAMPAIGN_TASKS:-0}"     # array tasks of real campaigns (0: none)
export CAMPAIGN_RUNS="${CAMPAIGN_RUNS:-100}"     # real runs over all of them
export CAMPAIGN_SEED="${CAMPAIGN_SEED:-1}"       # seed of the first run
export CAMPAIGN_FLAGS="${CAMPAIGN_FLAGS:---time 60s}"
export CAMPAIGN_TIME="${CAMPAIGN_TIME:-8:00:00}"
export MERGE_FLAGS="${MERGE_FLAGS:-}"            # e.g. --no-shrink
# Extra sbatch flags for every job (partition, account, qos...), e.g. "--partition=batch".
SBATCH_FLAGS="${SBATCH_FLAGS:-}"

mkdir -p "$NIGHT_DIR/logs"
# shellcheck disable=SC2086
submit() { sbatch --parsable --export=ALL $SBATCH_FLAGS "$@" | cut -d';' -f1; }

sim=$(submit --job-name=faultline-sim --array="1-$SIM_TASKS" --time="$SIM_TIME" \
  --output="$NIGHT_DIR/logs/sim-%A_%a.out" "$here/sim-task.sbatch")
echo "sim $sim"
after="afterany:$sim"
if [ "$CAMPAIGN_TASKS" -gt 0 ]; then
  campaign=$(submit --job-name=faultline-campaign --array="1-$CAMPAIGN_TASKS" \
    --time="$CAMPAIGN_TIME" --output="$NIGHT_DIR/logs/campaign-%A_%a.out" \
    "$here/campaign-task.sbatch")
  echo "campaign $campaign"
  after="$after:$campaign"
fi
merge=$(submit --job-name=faultline-merge --dependency="$after" \
  --output="$NIGHT_DIR/logs/merge-%j.out" "$here/merge.sbatch")
echo "merge $merge"
