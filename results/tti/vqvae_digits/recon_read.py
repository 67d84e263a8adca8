"""Faithfulness of a tokenizer run's reconstructions of test canvases (the ceiling of Parti)."""
import sys, numpy as np, jax
from genvision_jax.training import loop
from genvision_jax import data as data_lib
from genvision_jax.evaluation import faithfulness as F
from genvision_jax.features import digits
wd = sys.argv[1]; n = int(sys.argv[2]) if len(sys.argv) > 2 else 500
config, method, state = loop.load_run(wd)
real = data_lib.load_split('digit_scenes/two', 'test', 32, None, config.data.resize_method).arrays()
images = data_lib.to_model_range(real['image'])[:n]
clf = digits.DigitFeatures()
ref = F.read_reference({'tokens': real['tokens'], 'image': images}, n, clf)
rec = np.concatenate([np.asarray(jax.jit(method.reconstruct)(state, images[i:i+250])) for i in range(0, n, 250)])
rec = np.clip(rec, -1, 1)
s = F.score(ref['asked'], F.read_canvases(rec, clf))
print('step', int(state.step), 'recon mse', float(np.mean((rec - images) ** 2)))
for k, v in s.items():
  print(k, 'recon %.3f' % np.nanmean(v), 'real %.3f' % np.nanmean(ref['scores'][k]))
