#!/usr/bin/env bash
# Every figure of the README's "Diffusion, second stage" from scratch: flow matching vs DDPM
# (3 seeds each, same U-Net, data and steps), the NFE sweep of DDIM, Heun and DPM-Solver++(2M)
# on one checkpoint of each, EDM on one seed, the speed of `genvision evaluate` with the
# recommended sampler, Monte-Carlo against all-T bits/dim, the probability-flow ODE
# likelihood, and latent diffusion on the deep autoencoder.
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

# the sweep's samplers: DDIM (= Euler on flow's straight paths, so Euler is not repeated), Heun
# and DPM-Solver++(2M) at 5, 10, 20 and 50 network calls, beside DDIM-50 on the same samples
sweep=(--nfe_sweep=$NFE --sweep_samples=$SWEEP --sweep_samplers=ddim,heun,dpmpp_2m)

lane() {  # lane CONFIG NAME: three seeds and their evaluations, the NFE sweep on seed 0
  local config=$1 name=$2
  for s in 0 1 2; do
    train "$name/seed_$s" "$config$V" --config.train.seed=$s
  done
  evaluate "$name/seed_0" "${sweep[@]}"   # + eval/nfe_sweep.json, nfe_sweep.png
  evaluate "$name/seed_1"
  evaluate "$name/seed_2"
}

bits() {  # bits RUN COPY [FLAGS...]: genvision bpd on RUN, its JSON copied to COPY (and the
  local run=$1 copy=$2  # per-example bounds to COPY's .npy, for the paired check)
  shift 2
  "$G" bpd --workdir="$run" --num=$BPD "$@" && cp "$run/eval/bits_per_dim.npy" "${copy%.json}.npy" \
    && cp "$run/eval/bits_per_dim.json" "$copy"
}

fast_evaluate() {  # fast_evaluate NAME: evaluate NAME again with the sweep's recommended sampler
  local name=$1 sampler steps
  read -r sampler steps < <(python3 -c "import json, sys; r = json.load(open(sys.argv[1]));
s = r['recommended'] or 'ddim'; p = r['nfe_to_reach_reference'].get(s, {'steps': 50})
print(s, p['steps'])" "$RUNS/ddpm/seed_0/eval/nfe_sweep.json")
  cp "$RUNS/$name/eval/metrics.json" "$OUT/${name//\//_}_default_metrics.json"
  "$G" evaluate --workdir="$RUNS/$name" --metrics=fd,manifold --num_samples=$NUM \
      --sampler="$sampler" --steps="$steps" \
    && cp "$RUNS/$name/eval/metrics.json" "$OUT/${name//\//_}_fast_metrics.json"
}

lane "$X/ddpm_mnist.py" ddpm &
ddpm_pid=$!
lane "$X/flow_mnist.py" flow
# latent diffusion on the deep autoencoder (32-d codes); its reconstruction FD beside
train ae32 "$X/ae/ae_mnist.py$AEV"
step evaluate_ae32 "$RUNS/ae32/eval/metrics.json" "$G" evaluate --workdir="$RUNS/ae32"
train ldm_ae32 "$X/latent_diffusion_mnist.py$LDMV" "--config.latent.autoencoder=$RUNS/ae32"
evaluate ldm_ae32
wait "$ddpm_pid"
step compare_flow_ddpm "$OUT/compare_flow_ddpm.json" "$G" compare "$RUNS/ddpm" "$RUNS/flow" \
    --out="$OUT/compare_flow_ddpm.png"
# EDM's preconditioning on the same U-Net (one seed, Heun 18 steps = 35 calls) in one lane; the
# recommended sampler's evaluate on a DDPM seed (the speed-up over DDIM-50) and bits/dim (the
# all-T bound and the Monte-Carlo estimate on the same test digits) in the other
train edm/seed_0 "$X/edm_mnist.py$V" &
edm_pid=$!
step evaluate_fast_ddpm_seed_1 "$OUT/ddpm_seed_1_fast_metrics.json" fast_evaluate ddpm/seed_1
step bpd_exact "$OUT/bpd_exact.json" bits "$RUNS/ddpm/seed_0" "$OUT/bpd_exact.json" \
    --estimator=exact
step bpd_mc "$OUT/bpd_mc.json" bits "$RUNS/ddpm/seed_0" "$OUT/bpd_mc.json"
step bpd_flow "$OUT/bpd_flow.json" bits "$RUNS/flow/seed_0" "$OUT/bpd_flow.json"
step bpd_mc_100 "$OUT/bpd_mc_100.json" bits "$RUNS/ddpm/seed_0" "$OUT/bpd_mc_100.json" \
    --num=$((BPD * 5))
# the probability-flow ODE likelihood (Hutchinson) on the same digits
step bpd_ode_ddpm "$OUT/bpd_ode_ddpm.json" bits "$RUNS/ddpm/seed_0" "$OUT/bpd_ode_ddpm.json" \
    --estimator=ode
step bpd_ode_flow "$OUT/bpd_ode_flow.json" bits "$RUNS/flow/seed_0" "$OUT/bpd_ode_flow.json" \
    --estimator=ode
step bpd_ode_flow_normal "$OUT/bpd_ode_flow_normal.json" bits "$RUNS/flow/seed_0" \
    "$OUT/bpd_ode_flow_normal.json" --estimator=ode --dequantization=normal
step bpd_ode_flow_100 "$OUT/bpd_ode_flow_100.json" bits "$RUNS/flow/seed_0" \
    "$OUT/bpd_ode_flow_100.json" --estimator=ode --num=$((BPD * 5))
wait "$edm_pid"
evaluate edm/seed_0
# each run's config, training log and evaluation records beside the outputs (what
# results/diffusion/tables.py reads)
for name in ddpm/seed_0 ddpm/seed_1 ddpm/seed_2 flow/seed_0 flow/seed_1 flow/seed_2 edm/seed_0 \
    ae32 ldm_ae32; do
  mkdir -p "$OUT/runs/$name/eval"
  cp "$RUNS/$name/config.json" "$RUNS/$name/metrics.jsonl" "$OUT/runs/$name/"
  cp "$RUNS/$name"/eval/*.json "$RUNS/$name"/eval/*.png "$OUT/runs/$name/eval/" 2>/dev/null || true
done
echo "all done; wall times in $OUT/timings.tsv, tables: python results/diffusion/tables.py $OUT"
