#!/usr/bin/env bash
# Every provenance figure of the README from scratch: the generator runs, the HiDDeN extractor,
# Stable Signature, the watermark robustness sweeps, fake-image detection, model attribution
# (families, GAN losses, seeds), memorization and the counterfactual check of attribution.
#
#   bash experiments/provenance/reproduce.sh RUNS_DIR OUT_DIR
#
# Two lanes run side by side (the HiDDeN extractor, the longest run, beside the generators and
# their analyses); the commands are the README's. A step whose output already exists is skipped,
# so an interrupted reproduction resumes where it stopped. OUT_DIR/timings.tsv gets the wall time
# of every step; OUT_DIR/*/ the JSON and figures of every analysis. SMOKE=1 runs the same
# pipeline on the configs' `:smoke` variants with a few samples (minutes; to check the script).
set -euo pipefail
if [[ $# -ne 2 ]]; then
  echo "usage: bash experiments/provenance/reproduce.sh RUNS_DIR OUT_DIR" >&2
  exit 2
fi
RUNS=$1
OUT=$2
G=${GENVISION:-genvision}
HERE=$(cd "$(dirname "$0")/../.." && pwd)
X=$HERE/experiments
mkdir -p "$RUNS" "$OUT"
if [[ -n ${SMOKE:-} ]]; then
  V=:smoke; NUM=24; DET=64; ATT=64; SIZES=10,32; TEST=32; WM=16; STEPS=20
else
  V=; NUM=1000; DET=2000; ATT=1000; SIZES=10,100,1000; TEST=500; WM=200; STEPS=2000
fi

# shellcheck source=../steps.sh
source "$X/steps.sh"  # step, train_and_mark, train

lane_hidden() {
  train hidden32 "$X/provenance/hidden_mnist.py$V"
}

lane_generators() {
  train dcgan "$X/dcgan_mnist.py$V"
  train vae "$X/vae_mnist.py$V"
  train wgan_gp "$X/gan/wgan_gp_mnist.py$V"
  train lsgan "$X/gan/lsgan_mnist.py$V"
  train dcgan_s1 "$X/dcgan_mnist.py$V" --config.train.seed=1
  train dcgan_s2 "$X/dcgan_mnist.py$V" --config.train.seed=2
  train ddpm "$X/ddpm_mnist.py$V"
  # memorization of every run; the cluster S of the counterfactual check and its random control
  for r in dcgan dcgan_s1 vae wgan_gp lsgan ddpm; do
    step "neighbours_$r" "$OUT/nn_$r/neighbours.json" \
        "$G" neighbours --workdir="$RUNS/$r" --out="$OUT/nn_$r" --num=$NUM
  done
  step subset_S "$OUT/nn_full/neighbours.json" "$G" neighbours --workdir="$RUNS/dcgan" \
      --out="$OUT/nn_full" --num=$NUM --subset="$OUT/S.npy" --make_subset=cluster:20:0
  local size  # the control R is as large as S (the python of the environment genvision is in)
  size=$("$(dirname "$(command -v "$G")")/python" -c \
         "import numpy; print(len(numpy.load('$OUT/S.npy')))")
  step subset_R "$OUT/nn_r/neighbours.json" "$G" neighbours --workdir="$RUNS/dcgan" \
      --out="$OUT/nn_r" --num=$NUM --subset="$OUT/R.npy" --make_subset="random:$size:0" \
      --avoid="$OUT/S.npy"
  train dcgan_minus_s "$X/dcgan_mnist.py$V" "--config.data.exclude=$OUT/S.npy"
  train dcgan_minus_r "$X/dcgan_mnist.py$V" "--config.data.exclude=$OUT/R.npy"
  for r in dcgan_minus_s dcgan_minus_r dcgan_s1; do
    step "subset_S_$r" "$OUT/nn_S_$r/neighbours.json" "$G" neighbours --workdir="$RUNS/$r" \
        --out="$OUT/nn_S_$r" --num=$NUM --subset="$OUT/S.npy"
  done
  step subset_R_minus_r "$OUT/nn_R_dcgan_minus_r/neighbours.json" "$G" neighbours \
      --workdir="$RUNS/dcgan_minus_r" --out="$OUT/nn_R_dcgan_minus_r" --num=$NUM \
      --subset="$OUT/R.npy"
  # fake-image detection: trained on two families, tested on them and on two it never saw
  step detect_train "$OUT/det/detector.npz" "$G" detect train --runs="$RUNS/dcgan,$RUNS/vae" \
      --out="$OUT/det" --num=$DET --train_steps=$STEPS
  step detect_evaluate "$OUT/det_eval/detect_eval.json" "$G" detect evaluate \
      --model="$OUT/det" --num=$TEST --unseen="$RUNS/ddpm,$RUNS/wgan_gp" --out="$OUT/det_eval" \
      --attacks=jpeg,blur,noise
  # model attribution across families, GAN losses and seeds of one config
  local a=(--num=$ATT --test_num=$TEST --train_steps=$STEPS --sizes=$SIZES)
  step attribute_families "$OUT/att_families/attribute.json" "$G" attribute \
      --runs="$RUNS/dcgan,$RUNS/vae,$RUNS/ddpm" --out="$OUT/att_families" "${a[@]}"
  step attribute_losses "$OUT/att_losses/attribute.json" "$G" attribute \
      --runs="$RUNS/dcgan,$RUNS/wgan_gp,$RUNS/lsgan" --out="$OUT/att_losses" "${a[@]}"
  step attribute_seeds "$OUT/att_seeds/attribute.json" "$G" attribute \
      --runs="$RUNS/dcgan,$RUNS/dcgan_s1,$RUNS/dcgan_s2" --out="$OUT/att_seeds" "${a[@]}"
  # Tree-Ring on the diffusion run (no training)
  step treering "$OUT/robust_treering/treering.json" "$G" watermark evaluate --scheme=treering \
      --workdir="$RUNS/ddpm" --out="$OUT/robust_treering" --num=$WM --key_seed=7 \
      --regen_run="$RUNS/ddpm"
}

lane_hidden &
hidden_pid=$!
lane_generators
wait "$hidden_pid"

step hidden "$OUT/robust_hidden/hidden.json" "$G" watermark evaluate --scheme=hidden \
    --workdir="$RUNS/hidden32" --run="$RUNS/dcgan" --out="$OUT/robust_hidden" --num=$WM \
    --key_seed=7 --regen_run="$RUNS/ddpm"
train sig "$X/provenance/signature_mnist.py$V" "--config.signature.generator=$RUNS/dcgan" \
    "--config.signature.extractor=$RUNS/hidden32"
step signature "$OUT/robust_signature/signature.json" "$G" watermark evaluate \
    --scheme=signature --workdir="$RUNS/sig" --out="$OUT/robust_signature" --num=$WM \
    --regen_run="$RUNS/ddpm"
echo "all done; wall times in $OUT/timings.tsv"
