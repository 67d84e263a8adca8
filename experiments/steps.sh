# Shared by the reproduction scripts (provenance/reproduce.sh, diffusion/reproduce.sh); sourced
# after they set G (the genvision command), RUNS and OUT.

step() {  # step NAME DONE_PATH COMMAND...: runs COMMAND unless DONE_PATH exists; logs its time
  local name=$1 done=$2
  shift 2
  if [[ -e $done ]]; then
    echo "skip $name ($done exists)"
    return 0
  fi
  local t0=$SECONDS log="$OUT/${name//\//_}.log"
  echo "start $name: $*"
  "$@" > "$log" 2>&1 || { echo "FAILED $name (see $log)" >&2; return 1; }
  printf '%s\t%d\n' "$name" $((SECONDS - t0)) >> "$OUT/timings.tsv"
  echo "done $name in $((SECONDS - t0)) s"
}

train_and_mark() {  # train_and_mark WORKDIR CONFIG [OVERRIDES...]: WORKDIR/DONE once finished
  local workdir=$1 config=$2
  shift 2
  "$G" train --config="$config" --workdir="$workdir" "$@" && touch "$workdir/DONE"
}

train() {  # train NAME CONFIG [OVERRIDES...]: the run RUNS/NAME, skipped once it has finished
  local name=$1
  shift
  step "train_$name" "$RUNS/$name/DONE" train_and_mark "$RUNS/$name" "$@"
}
