#!/usr/bin/env bash
# The arms of the learned-use experiment (learned-use-plan.md, results in
# learned-use.md), run one after another in the background:
#
#   ARMS='F1-all-levers R1-reference-examples' nohup docs/bench-math/learned-use-arms.sh &
#
# Each arm runs in runs/learned-use/ARM (its log beside it, ARM.log); an arm whose
# directory exists is resumed (`--resume`), so the same command continues after a
# stop. XTASK names the binary (default: this checkout's, built first); give a frozen
# copy to keep a long run on one commit while the tree moves on.
#
# runs/ is not committed, and a machine's files go with it. `save` packs the run
# directories and the response cache into learned-use-runs.tar.xz beside this script
# (commit it); `restore` unpacks it on a fresh checkout, so the arms resume there and
# replay what was already asked.
set -euo pipefail
cd "$(dirname "$0")/../.."
archive=docs/bench-math/learned-use-runs.tar.xz
case "${1:-}" in
  save)
    tar --create --xz --file "$archive" --exclude=run.lock --directory runs learned-use cache
    ls -l "$archive"
    exit 0
    ;;
  restore)
    mkdir -p runs
    tar --extract --xz --file "$archive" --directory runs --keep-old-files
    exit 0
    ;;
  "") ;;
  *) echo "usage: [ARMS='A1-prefill ...'] $0 [save|restore]" >&2; exit 2 ;;
esac
if [ -z "${XTASK:-}" ]; then
  cargo build --quiet --package xtask
  XTASK=target/debug/xtask
fi
mkdir -p runs/learned-use

scope="--subject counting_and_probability,number_theory --level 2,3,4 --train-size 8
  --sampling-seed 0 --max-reply-tokens 768 --max-turns 4 --concurrency 2 --quiet"
ablation="$scope --test-size 60 --sample-seed 21"
final="$scope --test-size 200 --sample-seed 22"
trained="--epochs 2 --max-actions-per-step 3"
protocol="--function-style code --reply-prefill \`\`\`python\n --reply-stop \`\`\`output"
examples="--demonstrations first-message --bootstrap-demonstrations 1"
every_lever="$protocol $examples --retrieve 3 --execution-checks --use-statistics
  --from-what-worked --forced-call-demonstrations"
reference="--functions docs/bench-math/learned-use-reference-functions.json --epochs 0"

declare -A arms=(
  [A0-ag2]="$ablation $trained"
  [A1-prefill]="$ablation $trained $protocol"
  [A2-examples]="$ablation $trained $protocol $examples"
  [A3-retrieval]="$ablation $trained $protocol $examples --retrieve 3"
  [A4-checks]="$ablation $trained $protocol $examples --retrieve 3 --execution-checks --use-statistics"
  [A5-what-worked]="$ablation $trained $protocol $examples --retrieve 3 --execution-checks
    --use-statistics --from-what-worked"
  [A6-forced-examples]="$ablation $trained $every_lever"
  [R0-reference-listed]="$ablation $protocol $reference"
  [R1-reference-examples]="$ablation $protocol --demonstrations first-message --retrieve 3 $reference"
  [R2-reference-forced]="$ablation $protocol --demonstrations first-message --retrieve 3
    --force-call $reference"
  [R3-forced-no-examples]="$ablation $protocol --retrieve 3 --force-call $reference"
  [F0-ag2]="$final $trained"
  [F1-all-levers]="$final $trained $every_lever"
)

for arm in ${ARMS:?name the arms: ARMS='F1-all-levers ...'}; do
  [ -n "${arms[$arm]:-}" ] || { echo "unknown arm: $arm (known: ${!arms[*]})" >&2; exit 2; }
done
for arm in $ARMS; do
  dir=runs/learned-use/$arm
  echo "$(date -u +%FT%TZ) start $arm" >> runs/learned-use/arms.log
  if [ -d "$dir" ]; then
    args=(--resume --quiet)
  else
    # shellcheck disable=SC2206 # the flags are words on purpose
    args=(${arms[$arm]})
  fi
  status=0
  nice -n 10 "$XTASK" bench-math "${args[@]}" --run-dir "$dir" >> "runs/learned-use/$arm.log" 2>&1 \
    || status=$?
  echo "$(date -u +%FT%TZ) end $arm status=$status" >> runs/learned-use/arms.log
done
