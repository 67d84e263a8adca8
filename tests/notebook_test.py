"""Every notebook in notebooks/ runs top to bottom and shows its figures."""

import nbclient
import nbformat
import pytest

from tests.conftest import REPO


def _execute(name: str):
  """Runs notebooks/NAME top to bottom; returns (outputs without errors, PNG outputs, text)."""
  path = REPO / 'notebooks' / name
  nb = nbformat.read(path, as_version=4)
  client = nbclient.NotebookClient(nb, timeout=600, kernel_name='python3',
                                   resources={'metadata': {'path': str(path.parent)}})
  client.execute()
  outputs = [o for cell in nb.cells if cell.cell_type == 'code' for o in cell.get('outputs', [])]
  assert not [o for o in outputs if o.get('output_type') == 'error']
  images = [o for o in outputs if 'image/png' in o.get('data', {})]
  return images, ''.join(o.get('text', '') for o in outputs)


def test_quickstart_notebook_executes():
  images, text = _execute('quickstart.ipynb')
  assert len(images) >= 4  # sample grid, loss curve, fresh samples, codes of the test digits
  assert 'loss' in text and 'final metrics' in text


def test_pix2pix_notebook_executes():
  images, text = _execute('pix2pix.ipynb')
  assert len(images) >= 3  # training grid, curves, test strip
  assert 'psnr' in text and 'bicubic' in text and 'paired_bootstrap' in text


@pytest.mark.parametrize('name', sorted(p.name for p in (REPO / 'notebooks').glob('*.ipynb')))
def test_colab_cell_takes_the_repository_from_one_marked_variable(name):
  """Each notebook's install cell clones REPO_URL, set by the user, and no made-up address."""
  nb = nbformat.read(REPO / 'notebooks' / name, as_version=4)
  install = next(c.source for c in nb.cells if c.cell_type == 'code')
  assert 'SET THIS' in install and "REPO_URL = ''" in install
  assert 'http' not in install.replace('https://github.com/YOU/', '')
  assert "'git', 'clone', '--depth=1', REPO_URL" in install


def test_autoencoders_notebook_executes():
  images, text = _execute('autoencoders.ipynb')
  assert len(images) >= 3  # training grid, denoising curve, label-efficiency curve
  assert 'pca' in text and 'paired_bootstrap' in text and 'N=' in text


def test_text_to_image_notebook_executes():
  images, text = _execute('text_to_image.ipynb')
  assert len(images) >= 3  # loss curve, training grid, prompt samples
  assert 'perplexity' in text and 'faithful' in text


def test_graphical_models_notebook_executes():
  images, text = _execute('graphical_models.ipynb')
  assert len(images) >= 3  # denoising strip, learning curve, MRF vs Bernoulli samples
  assert 'P(x2|e) = [0.4 0.6]' in text and 'peanut butter + ice cream' in text
  assert 'error rate' in text and 'stationary' in text


def test_provenance_notebook_executes():
  images, text = _execute('provenance.ipynb')
  assert len(images) >= 4  # the keyed spectrum, p-value histogram, HiDDeN strip, neighbours
  assert 'p < 1e-3: keyed' in text and 'bit accuracy' in text and 'memorization' in text


def test_style_transfer_notebook_executes():
  images, text = _execute('style_transfer.ipynb')
  assert len(images) >= 2  # content | style | stylized | colour preserved, loss curves
  assert 'step 20: total' in text and 'scale1' in text


def test_diffusion_processes_notebook_executes():
  images, text = _execute('diffusion_processes.ipynb')
  assert len(images) >= 2  # samplers on Gaussian data, the three solvers' samples
  assert 'dpmpp_2m' in text and 'network calls' in text and 'bits/dim' in text
  assert 'ODE bits/dim' in text
