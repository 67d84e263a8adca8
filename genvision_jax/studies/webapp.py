"""The human-rating page of `genvision humaneval serve`: a Starlette app over one session
database (studies/humaneval.py).

Routes (nothing else is served; the app never reads a file named by a request):
  GET  /               the rating page (a rater id, then one two-alternative choice at a time)
  GET  /app.js         its script
  POST /api/rater      {"rater": ID}: registers (or resumes) a rater
  GET  /api/trial      ?rater=ID: the rater's next trial (blinded: two opaque image URLs)
  POST /api/answer     {"rater": ID, "trial": T, "choice": "left"|"right"}: committed before
                       the reply, so a killed server loses no answer
  GET  /image/{id}     a pooled PNG, looked up by its random id in the database
Requests with a body over MAX_BODY bytes (413), not JSON (415/400), with an unknown rater,
trial or image (404), a trial of another rater (403) or answered twice (409) are refused.
"""

import json
import random
import re
import sqlite3
import time

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from genvision_jax.studies import humaneval

MAX_BODY = 1024
RATER_RE = re.compile(r'^[A-Za-z0-9_-]{1,64}$')
ID_RE = re.compile(r'^[0-9a-f]{16}$')
HEADERS = {'Content-Security-Policy': "default-src 'self'; img-src 'self' data:; "
                                      "style-src 'self' 'unsafe-inline'",
           'X-Content-Type-Options': 'nosniff', 'Cache-Control': 'no-store'}

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Rate images</title>
<link rel="icon" href="data:,">
<style>
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 40em; text-align: center; }
button.choice { border: 2px solid #ccc; background: #fff; padding: 6px; margin: 1em; cursor: pointer; }
button.choice:hover { border-color: #36c; }
button.choice img { width: 168px; height: 168px; image-rendering: pixelated; display: block; }
#trial, #done { display: none; }
</style></head>
<body>
<h1>Which image?</h1>
<div id="login">
<p>Enter your rater id (letters, digits, - and _). You will see pairs of images and pick one.</p>
<input id="rater" maxlength="64" autocomplete="off"> <button id="start">Start</button>
<p id="error" style="color:#a00"></p>
</div>
<div id="trial">
<p id="question"></p>
<button class="choice" id="left"><img id="left-img" alt="left image"></button>
<button class="choice" id="right"><img id="right-img" alt="right image"></button>
<p id="progress"></p>
</div>
<div id="done"><p>Thank you: all trials are answered.</p></div>
<script src="/app.js"></script>
</body></html>
"""

SCRIPT = """'use strict';
let rater = null, trial = null, busy = false;
const $ = (id) => document.getElementById(id);
function fail(msg) { $('error').textContent = msg; }
async function post(url, body) {
  const r = await fetch(url, {method: 'POST', headers: {'Content-Type': 'application/json'},
                              body: JSON.stringify(body)});
  const data = await r.json();
  if (!r.ok) throw new Error(data.error || r.statusText);
  return data;
}
async function next() {
  const r = await fetch('/api/trial?rater=' + encodeURIComponent(rater));
  const data = await r.json();
  if (!r.ok) throw new Error(data.error || r.statusText);
  if (data.done) { $('trial').style.display = 'none'; $('done').style.display = 'block'; return; }
  trial = data.trial;
  $('question').textContent = data.question;
  $('left-img').src = data.left;
  $('right-img').src = data.right;
  $('progress').textContent = 'trial ' + (data.index + 1) + ' of ' + data.total;
  $('progress').dataset.trial = data.trial;
  $('trial').style.display = 'block';
}
async function answer(choice) {
  if (busy || trial === null) return;
  busy = true;
  try { await post('/api/answer', {rater: rater, trial: trial, choice: choice}); await next(); }
  catch (e) { fail(e.message); }
  finally { busy = false; }
}
$('start').addEventListener('click', async () => {
  try {
    const data = await post('/api/rater', {rater: $('rater').value.trim()});
    rater = data.rater;
    $('login').style.display = 'none';
    await next();
  } catch (e) { fail(e.message); }
});
$('left').addEventListener('click', () => answer('left'));
$('right').addEventListener('click', () => answer('right'));
"""


def _error(status: int, message: str) -> JSONResponse:
  return JSONResponse({'error': message}, status_code=status, headers=HEADERS)


async def _read_json(request: Request) -> dict:
  if request.headers.get('content-type', '').split(';')[0].strip() != 'application/json':
    raise HTTPException(415, 'send application/json')
  length = request.headers.get('content-length')
  if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
    raise HTTPException(413, f'request body over {MAX_BODY} bytes')
  body = b''
  async for chunk in request.stream():
    body += chunk
    if len(body) > MAX_BODY:
      raise HTTPException(413, f'request body over {MAX_BODY} bytes')
  try:
    data = json.loads(body)
  except (ValueError, UnicodeDecodeError):
    raise HTTPException(400, 'the body is not JSON') from None
  if not isinstance(data, dict):
    raise HTTPException(400, 'the body must be a JSON object')
  return data


def _rater(value) -> str:
  if not isinstance(value, str) or not RATER_RE.match(value):
    raise HTTPException(400, 'rater ids are 1-64 letters, digits, - or _')
  return value


def create_app(db_path: str, seed: int | None = None) -> Starlette:
  """The app over the session database at `db_path` (which must hold a session)."""
  db = humaneval.connect(db_path)
  meta = humaneval.read_meta(db)
  if 'mode' not in meta:
    raise humaneval.HumanEvalError(f'{db_path} holds no session')
  rnd = random.Random(seed) if seed is not None else random.SystemRandom()

  async def page(request):
    del request
    return HTMLResponse(PAGE, headers=HEADERS)

  async def script(request):
    del request
    return Response(SCRIPT, media_type='text/javascript', headers=HEADERS)

  async def register(request):
    rater = _rater((await _read_json(request)).get('rater'))
    db.execute('INSERT OR IGNORE INTO raters VALUES (?, ?)', (rater, time.time()))
    return JSONResponse({'rater': rater}, headers=HEADERS)

  def known_rater(rater: str) -> str:
    if db.execute('SELECT 1 FROM raters WHERE id = ?', (rater,)).fetchone() is None:
      raise HTTPException(404, 'unknown rater: register first')
    return rater

  async def trial(request):
    rater = known_rater(_rater(request.query_params.get('rater')))
    t = humaneval.next_trial(db, rater, meta, rnd)
    return JSONResponse(t if t is not None else {'done': True}, headers=HEADERS)

  async def answer(request):
    data = await _read_json(request)
    rater = known_rater(_rater(data.get('rater')))
    trial_id, choice = data.get('trial'), data.get('choice')
    if not isinstance(trial_id, str) or not ID_RE.match(trial_id):
      raise HTTPException(400, 'trial must be a trial id')
    if choice not in ('left', 'right'):
      raise HTTPException(400, "choice must be 'left' or 'right'")
    row = db.execute('SELECT rater, answer FROM trials WHERE id = ?', (trial_id,)).fetchone()
    if row is None:
      raise HTTPException(404, 'unknown trial')
    if row[0] != rater:
      raise HTTPException(403, 'this trial belongs to another rater')
    cur = db.execute('UPDATE trials SET answer = ?, answered = ? WHERE id = ? AND answer IS NULL',
                     (choice, time.time(), trial_id))  # autocommit: on disk before the reply
    if cur.rowcount != 1:
      raise HTTPException(409, 'this trial is already answered')
    return JSONResponse({'ok': True}, headers=HEADERS)

  async def image(request):
    image_id = request.path_params['image_id']
    if not ID_RE.match(image_id):
      raise HTTPException(404, 'no such image')
    row = db.execute('SELECT png FROM images WHERE id = ?', (image_id,)).fetchone()
    if row is None:
      raise HTTPException(404, 'no such image')
    return Response(bytes(row[0]), media_type='image/png', headers=HEADERS)

  async def http_error(request, exc):
    del request
    return _error(exc.status_code, exc.detail)

  async def db_error(request, exc):
    del request
    return _error(500, f'database error: {exc}')

  app = Starlette(
      routes=[Route('/', page), Route('/app.js', script),
              Route('/api/rater', register, methods=['POST']),
              Route('/api/trial', trial), Route('/api/answer', answer, methods=['POST']),
              Route('/image/{image_id}', image)],
      exception_handlers={HTTPException: http_error, sqlite3.Error: db_error})
  app.state.db = db
  return app
