"""Human evaluation: the statistics against hand computations, the web app's refusals and
persistence (Starlette's TestClient), and a simulated rater clicking through 20 trials of the
real server in a real headless browser."""

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from starlette.testclient import TestClient

from genvision_jax.studies import humaneval
from genvision_jax.studies import webapp
from tests.conftest import REPO, chromium, run_cli
from tests.studies_test import smoke_study  # noqa: F401 (the fixture: two trained GAN runs)


def test_binomial_and_wilson_match_hand_computations():
  # P(X >= 9) + P(X <= 1) for X ~ Bin(10, 1/2) = 2 (10 + 1) / 1024
  assert humaneval.binomial_p(9, 10) == pytest.approx(22 / 1024)
  z, n, p = 1.959963984540054, 10, 0.9
  centre = (p + z * z / (2 * n)) / (1 + z * z / n)
  half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
  assert humaneval.wilson(9, 10) == pytest.approx((centre - half, centre + half))


def test_bradley_terry_recovers_a_known_preference_matrix():
  truth = np.array([0.0, 0.7, -0.4, 1.5])
  models = ['a', 'b', 'c', 'd']
  sigmoid = lambda x: 1 / (1 + np.exp(-x))
  wins = {(models[i], models[j]): 100 * sigmoid(truth[i] - truth[j])
          for i in range(4) for j in range(4) if i != j}  # expected counts: the MLE is truth
  np.testing.assert_allclose(humaneval.bradley_terry(models, wins), truth, atol=1e-4)
  # Two models: the score difference is the logit of the preference rate.
  s = humaneval.bradley_terry(['x', 'y'], {('x', 'y'): 30, ('y', 'x'): 10})
  assert s[1] - s[0] == pytest.approx(-math.log(3), abs=1e-5)


def _trials(rater, pairs, attention):
  out = [{'rater': rater, 'idx': i, 'kind': 'pair', 'chosen': a, 'other': b}
         for i, (a, b) in enumerate(pairs)]
  out += [{'rater': rater, 'idx': 100 + i, 'kind': 'attention', 'chosen': c, 'other': o}
          for i, (c, o) in enumerate(attention)]
  return out


def test_analysis_excludes_inattentive_raters_and_counts():
  good = _trials('good', [('A', 'B')] * 7 + [('B', 'A')] * 3, [('real', 'noise')] * 2)
  bad = _trials('bad', [('B', 'A')] * 10, [('real', 'noise'), ('noise', 'real')])
  silent = _trials('silent', [('B', 'A')] * 5, [])
  r = humaneval.analyze_trials(good + bad + silent, 'pair', ['A', 'B'], bootstrap=50)
  assert r['raters']['total'] == 3 and sorted(r['raters']['excluded']) == ['bad', 'silent']
  assert r['raters']['attention_accuracy']['bad'] == 0.5
  (q,) = r['pairs']
  assert (q['a'], q['b'], q['n'], q['wins_a']) == ('A', 'B', 10, 7)
  assert q['p_value'] == pytest.approx(humaneval.binomial_p(7, 10))
  assert (q['low'], q['high']) == pytest.approx(humaneval.wilson(7, 10))
  bt = {s['model']: s for s in r['bradley_terry']['scores']}
  assert bt['B']['score'] - bt['A']['score'] == pytest.approx(-math.log(7 / 3), abs=1e-5)
  # Real vs generated: picking the real image as the model's is being fooled.
  fool = [{'rater': 'r', 'idx': i, 'kind': 'real', 'chosen': 'real' if i < 4 else 'A',
           'other': 'A' if i < 4 else 'real'} for i in range(10)]
  fool += _trials('r', [], [('noise', 'real')])
  r = humaneval.analyze_trials(fool, 'real', ['A'], bootstrap=0)
  assert r['fooling'][0]['fooled'] == 4 and r['fooling'][0]['n'] == 10
  assert r['raters']['excluded'] == []


@pytest.fixture
def session_db(tmp_path):
  path = str(tmp_path / 'h.sqlite')
  db = humaneval.connect(path, create=True)
  rng = np.random.default_rng(0)
  models = {'A': rng.uniform(-1, 1, (4, 8, 8, 1)), 'B': rng.uniform(-1, 1, (4, 8, 8, 1))}
  humaneval.create_session(db, models, rng.uniform(-1, 1, (4, 8, 8, 1)), 'pair', 6, 3, 0,
                           {'A': '/runs/A', 'B': '/runs/B'})
  db.close()
  return path


def test_webapp_refuses_bad_requests_and_keeps_answers_across_restarts(session_db):
  client = TestClient(webapp.create_app(session_db, seed=0))
  assert client.get('/').status_code == 200
  assert client.post('/api/rater', json={'rater': '../etc'}).status_code == 400
  assert client.post('/api/rater', content=b'{bad', headers={
      'content-type': 'application/json'}).status_code == 400
  assert client.post('/api/rater', content=b'rater=x').status_code == 415
  assert client.post('/api/rater', content=b'{"rater": "' + b'x' * 5000 + b'"}', headers={
      'content-type': 'application/json'}).status_code == 413
  assert client.get('/api/trial?rater=nobody').status_code == 404
  assert client.post('/api/rater', json={'rater': 'r1'}).json() == {'rater': 'r1'}
  assert client.post('/api/rater', json={'rater': 'r2'}).status_code == 200
  t = client.get('/api/trial?rater=r1').json()
  assert t['index'] == 0 and t['total'] == 6 and t['question'] == humaneval.QUESTIONS['pair']
  assert client.get('/api/trial?rater=r1').json()['trial'] == t['trial']  # same until answered
  image = client.get(t['left'])
  assert image.status_code == 200 and image.content.startswith(b'\x89PNG')
  assert 'A' not in t['left'] + t['right'] and 'B' not in t['left'] + t['right']  # blinded
  for bad in ('/image/..%2F..%2Fetc%2Fpasswd', '/image/../../etc/passwd', '/image/0123',
              '/etc/passwd', '/static/../h.sqlite', '/h.sqlite'):
    assert client.get(bad).status_code == 404, bad
  answer = {'rater': 'r1', 'trial': t['trial'], 'choice': 'left'}
  assert client.post('/api/answer', json={**answer, 'choice': 'up'}).status_code == 400
  assert client.post('/api/answer', json={**answer, 'trial': 'f' * 16}).status_code == 404
  assert client.post('/api/answer', json={**answer, 'rater': 'r2'}).status_code == 403
  assert client.post('/api/answer', json=answer).status_code == 200
  assert client.post('/api/answer', json=answer).status_code == 409
  # A new server process on the same database: the answer is there, the rater goes on.
  client = TestClient(webapp.create_app(session_db, seed=1))
  db = humaneval.connect(session_db)
  assert db.execute('SELECT answer FROM trials WHERE id = ?', (t['trial'],)).fetchone() == (
      'left',)
  db.close()
  kinds = []
  for i in range(1, 6):
    t = client.get('/api/trial?rater=r1').json()
    assert t['index'] == i
    client.post('/api/answer', json={'rater': 'r1', 'trial': t['trial'], 'choice': 'right'})
  assert client.get('/api/trial?rater=r1').json() == {'done': True}
  db = humaneval.connect(session_db)
  kinds = [k for (k,) in db.execute("SELECT kind FROM trials WHERE rater = 'r1' ORDER BY idx")]
  db.close()
  assert kinds == ['pair', 'pair', 'attention'] * 2  # every 3rd trial


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _serve(args, log):
  proc = subprocess.Popen([sys.executable, '-m', 'genvision_jax', 'humaneval', 'serve', *args],
                          cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
  return proc


def _wait_for(port: int, proc, log_path, timeout: float = 240):
  deadline = time.time() + timeout
  while time.time() < deadline:
    if proc.poll() is not None:
      raise AssertionError(open(log_path).read()[-3000:])
    with socket.socket() as s:
      if s.connect_ex(('127.0.0.1', port)) == 0:
        return
    time.sleep(0.5)
  raise AssertionError('the server did not start: ' + open(log_path).read()[-3000:])


def test_a_rater_clicks_through_20_trials_in_a_real_browser(smoke_study, tmp_path):  # noqa: F811
  path, _ = smoke_study
  runs = f'--runs={path}/runs/hinge/seed_0,{path}/runs/non_saturating/seed_0'
  db, port, log_path = tmp_path / 'rate.sqlite', _free_port(), tmp_path / 'serve.log'
  args = [runs, f'--db={db}', f'--port={port}', '--images=8', '--trials=20',
          '--attention_every=5']
  with open(log_path, 'w') as log:
    proc = _serve(args, log)
  try:
    _wait_for(port, proc, log_path)
    driver = chromium()
    try:
      from selenium.webdriver.common.by import By
      from selenium.webdriver.support.ui import WebDriverWait
      driver.get(f'http://127.0.0.1:{port}/')
      driver.find_element(By.ID, 'rater').send_keys('tester_1')
      driver.find_element(By.ID, 'start').click()
      wait = WebDriverWait(driver, 20)
      seen = []
      for i in range(20):
        wait.until(lambda d, i=i: d.find_element(By.ID, 'progress').text == f'trial {i + 1} of 20')
        seen.append(driver.find_element(By.ID, 'progress').get_attribute('data-trial'))
        driver.find_element(By.ID, 'left' if i % 2 else 'right').click()
      wait.until(lambda d: d.find_element(By.ID, 'done').is_displayed())
      images = driver.execute_script('return [document.getElementById("left-img").naturalWidth,'
                                     ' document.getElementById("right-img").naturalWidth]')
      assert images[0] > 0 and images[1] > 0
      errors = [e for e in driver.get_log('browser') if e['level'] == 'SEVERE']
      assert not errors, errors
    finally:
      driver.quit()
  finally:
    proc.send_signal(signal.SIGKILL)  # a kill, not a shutdown: nothing may be lost
    proc.wait()
  assert len(set(seen)) == 20
  # Restarted on the same database: the session resumes and every answer is there.
  port = _free_port()
  with open(log_path, 'a') as log:
    proc = _serve([runs, f'--db={db}', f'--port={port}'], log)
  try:
    _wait_for(port, proc, log_path)
    assert 'resuming the session' in open(log_path).read()
    client_db = humaneval.connect(str(db))
    rows = client_db.execute("SELECT id, answer FROM trials WHERE rater = 'tester_1' ORDER BY "
                             'idx').fetchall()
    client_db.close()
    assert [r[0] for r in rows] == seen
    assert [r[1] for r in rows] == ['right' if i % 2 == 0 else 'left' for i in range(20)]
  finally:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
  r = run_cli('humaneval', 'analyze', str(db), f'--out={tmp_path / "an"}', '--bootstrap=100')
  assert r.returncode == 0, r.stderr[-2000:]
  result = json.loads((tmp_path / 'an' / 'humaneval.json').read_text())
  assert result['raters']['total'] == 1
  # The 4 attention checks (real vs noise) were answered by position: this rater may fail them.
  used = 0 if result['raters']['excluded'] else 16
  assert result['trials_used'] == used
  assert os.path.isfile(tmp_path / 'an' / 'humaneval.png') or not used
