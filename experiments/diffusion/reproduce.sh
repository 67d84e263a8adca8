#!/usr/bin/env bash
# Every figure of the README's "Diffusion, second stage" from scratch: flow matching vs DDPM
# (3 seeds each, same U-Net, data and steps), the NFE sweep of every sampler on one checkpoint of
# each, the speed of `genvision evaluate` with the recommended sampler, Monte-Carlo against
# all-T bits/dim, and latent diffusion on the deep autoencoder.
#
#   bash experiments/diffusion/reproduce.sh RUNS_DIR OUT_DIR
#
# Two lanes run side by side; a step whose output exists is skipped (an interrupted
# reproduction resumes); OUT_DIR/timings.tsv gets each step's wall time. SMOKE=1 runs it on the
# `:smoke` variants with few samples (to check the script).
set -euo pipefail
if [[ $# -ne 2 ]]; then
  echo "usage: bash experiments/diffusion/reproduce.sh RUNS_DIR OUT_DIR" >&2
  exit 2
fi
RUNS=$1
OUT=$2
G=${GENVISION:-genvision}
HERE=$(cd "$(dirname "$0")/../.." && pwd)
X=$HERE/experiments
mkdir -p "$RUNS" "$OUT"
if [[ -n ${SMOKE:-} ]]; then
  V=:smoke; AEV=:smoke; LDMV=:smoke; NUM=20; SWEEP=10; NFE=2,4; BPD=2; SAMPLERS=ddim,heun
else
  V=; AEV=; LDMV=; NUM=1000; SWEEP=500; NFE=5,10,20,50; BPD=20; SAMPLERS=
fi

# shellcheck source=../steps.sh
source "$X/steps.sh"  # step, train_and_mark, train

evaluate() {  # evaluate NAME [FLAGS...]: genvision evaluate on RUNS/NAME (fd, manifold)
  local name=$1
  shift
  step "evaluate_$name" "$RUNS/$name/eval/metrics.json" "$G" evaluate --workdir="$RUNS/$name" \
      --metrics=fd,manifold --num_samples=$NUM "$@"
}

sweep=(--nfe_sweep=$NFE --sweep_samples=$SWEEP)
if [[ -n $SAMPLERS ]]; then sweep+=(--sweep_samplers=$SAMPLERS); fi

lane() {  # lane CONFIG NAME: three seeds and their evaluations, the NFE sweep on seed 0
  local config=$1 name=$2
  for s in 0 1 2; do
    train "$name/seed_$s" "$config$V" --config.train.seed=$s
  done
  evaluate "$name/seed_0" "${sweep[@]}"   # + eval/nfe_sweep.json, nfe_sweep.png
  evaluate "$name/seed_1"
  evaluate "$name/seed_2"
}

bits() {  # bits RUN COPY [FLAGS...]: genvision bpd on RUN, its JSON copied to COPY
  local run=$1 copy=$2
  shift 2
  "$G" bpd --workdir="$run" --num=$BPD "$@" && cp "$run/eval/bits_per_dim.json" "$copy"
}

lane "$X/ddpm_mnist.py" ddpm &
ddpm_pid=$!
lane "$X/flow_mnist.py" flow
# latent diffusion on the deep autoencoder (32-d codes); its reconstruction FD beside
train ae32 "$X/ae/ae_mnist.py$AEV"
step evaluate_ae32 "$RUNS/ae32/eval/metrics.json" "$G" evaluate --workdir="$RUNS/ae32"
train ldm_ae32 "$X/latent_diffusion_mnist.py$LDMV" "--config.latent.autoencoder=$RUNS/ae32"
evaluate ldm_ae32
# EDM's preconditioning on the same U-Net (one seed): does it learn, which ODE solver suits it
train edm/seed_0 "$X/edm_mnist.py$V"
evaluate edm/seed_0 --nfe_sweep=$NFE --sweep_samples=$SWEEP --sweep_samplers=euler,heun,dpmpp_2m
wait "$ddpm_pid"
# bits/dim: the all-T bound and the Monte-Carlo estimate on the same test digits
step bpd_exact "$OUT/bpd_exact.json" bits "$RUNS/ddpm/seed_0" "$OUT/bpd_exact.json" \
    --estimator=exact
step bpd_mc "$OUT/bpd_mc.json" bits "$RUNS/ddpm/seed_0" "$OUT/bpd_mc.json"
step bpd_flow "$OUT/bpd_flow.json" bits "$RUNS/flow/seed_0" "$OUT/bpd_flow.json"
step compare_flow_ddpm "$OUT/compare_flow_ddpm.json" "$G" compare "$RUNS/ddpm" "$RUNS/flow" \
    --out="$OUT/compare_flow_ddpm.png"
echo "all done; wall times in $OUT/timings.tsv"
