#!/usr/bin/env bash
# One part of study (a) round 2 (issue 29; benchmarks/results/study_a_round2/README.md):
#   benchmarks/study_a_round2_part.sh shapes|textures SEED [ARMS]
# runs `taast experiment` for that family and data seed into runs/a2_<family>_<seed>[_<arms>]
# (resumed if it is there), then copies what the study commits (results.json, report.md,
# experiment.yaml) to benchmarks/results/study_a_round2/<family>_<seed>[_<arms>]/.
# ARMS: "rest" runs textures seed 21's three arms other than random, "random" random alone (the two
# parts of textures seed 21; a seed's parts must run on the same kind of CPU: a warm-up trained on
# an Intel Xeon and one on an AMD EPYC differed, APr@L0 0.008 against 0.017). One part takes one
# core for 40-80 min on the 2-core development machine; run at most two side by side, and never
# beside `make test` or a benchmark.
set -euo pipefail
family=$1 seed=$2 arms=${3:-}
cd "$(dirname "$0")/.."
case $family in
  shapes) config=benchmarks/experiments/study_a_round2.yaml ;;
  textures) config=benchmarks/experiments/study_a_round2_textures.yaml ;;
  *) echo "family: shapes or textures, got '$family'" >&2; exit 2 ;;
esac
name=${family}_${seed}${arms:+_$arms}
extra=()
if [[ $arms == rest ]]; then
  extra=(--set 'strategies=[{name: entropy-pseudo, strategy: entropy, pseudo_labels: true}, taast, {name: class-balanced-pseudo, strategy: class-balanced, pseudo_labels: true}]'
         --set reference=taast)
elif [[ $arms == random ]]; then
  extra=(--set 'strategies=[random]' --set reference=random)
elif [[ -n $arms ]]; then
  echo "arms: 'rest', 'random' or nothing, got '$arms'" >&2; exit 2
fi
out=runs/a2_$name
resume=()
[[ -f $out/experiment.yaml ]] && resume=(--resume)
echo "[study] $name at $(git rev-parse --short HEAD), $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)"
start=$(date +%s)
.venv/bin/taast experiment --config "$config" --out "$out" --set "seeds=[$seed]" "${extra[@]}" "${resume[@]}"
mkdir -p "benchmarks/results/study_a_round2/$name"
cp "$out"/{results.json,report.md,experiment.yaml} "benchmarks/results/study_a_round2/$name/"
echo "[study] $name done in $(( ($(date +%s) - start) / 60 )) min -> benchmarks/results/study_a_round2/$name/"
