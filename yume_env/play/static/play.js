// yume-env play: keyboard in, streamed frames out. No framework, no CDN: plain DOM + fetch + EventSource.
"use strict";

const TOKEN_KEY = "yume-play-token";
const MOVE = { KeyW: "W", KeyA: "A", KeyS: "S", KeyD: "D" };
const LOOK = { ArrowUp: "up", ArrowDown: "down", ArrowLeft: "left", ArrowRight: "right" };
const KEEP_CHUNKS = 400; // received chunks kept in memory (window.yumePlay.received)
// A world whose actions are not Yume's keys x camera moves: one key row per action component, a
// key's place in its row is the choice it takes (1 -> 0, 2 -> 1, ..., 0 -> 9; Q -> 0, ...). P stays
// Pause, so the Q row stops at O. Choices past a row's keys (and components past the fourth): click.
const ROWS = [
  ["Digit1", "Digit2", "Digit3", "Digit4", "Digit5", "Digit6", "Digit7", "Digit8", "Digit9", "Digit0"],
  ["KeyQ", "KeyW", "KeyE", "KeyR", "KeyT", "KeyY", "KeyU", "KeyI", "KeyO"],
  ["KeyA", "KeyS", "KeyD", "KeyF", "KeyG", "KeyH", "KeyJ", "KeyK", "KeyL"],
  ["KeyZ", "KeyX", "KeyC", "KeyV", "KeyB", "KeyN", "KeyM"],
];
// The server's secret for this run, written into the page it served; every API call sends it back.
const SESSION = document.querySelector('meta[name="yume-play-session"]').content;

// Everything the page knows, in one object (also what the browser test reads).
const play = (window.yumePlay = {
  token: null, config: null, status: {}, branches: [], held: new Set(), received: [], framesShown: 0,
  sentAction: "0,0", wantAction: [0, 0], sending: false, autoPaused: false, source: null, session: SESSION,
  // other worlds' actions: the choice per component taken while none of its keys is held (clicks and
  // arrows change it), and which component and choice each key code stands for
  standing: [], keymap: {}, choicesBuilt: false,
});

const $ = (id) => document.getElementById(id);

function say(text, kind = "info") {
  const m = $("message");
  m.textContent = text;
  m.className = kind;
}

async function api(path, body = {}) {
  const res = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Play-Token": play.token || "", "X-Play-Session": SESSION },
    body: JSON.stringify(body),
  });
  const data = await res.json().catch(() => ({ error: `HTTP ${res.status}` }));
  if (!res.ok) {
    const err = new Error(data.error || `HTTP ${res.status}`);
    err.status = res.status;
    throw err;
  }
  return data;
}

// ---- one player at a time -------------------------------------------------------------------
function banner(text) {
  $("banner").textContent = text || "";
  $("banner").hidden = !text;
}

async function claim() {
  try {
    const data = await api("/api/claim", { token: sessionStorage.getItem(TOKEN_KEY) });
    play.token = data.token;
    play.config = data.config;
    sessionStorage.setItem(TOKEN_KEY, data.token);
    setupControls(data.config);
    const model = data.config.model;
    $("world-name").textContent = model ? model.split(/[\\/]/).filter(Boolean).pop() : "default world";
    $("world-name").title = model || "the shipped default world";
    $("replay-command").textContent = `yume-env record${model ? ` --model ${model}` : ""} --agent yume-play-actions.json`;
    banner("");
    updateDownloads();
    resync(); // a new player starts with nothing held on the server
    openStream();
  } catch (err) {
    banner(err.message);
    setConnection("waiting", "off");
    setTimeout(claim, 2000); // queue: connect as soon as the other tab is gone
  }
}

function openStream() {
  if (play.source) play.source.close();
  const source = new EventSource(`/api/stream?${query()}`);
  play.source = source;
  source.onopen = () => { setConnection(...badge(play.status)); resync(); }; // a closed stream let go of the keys
  source.onmessage = (e) => onUpdate(JSON.parse(e.data));
  source.onerror = () => {
    setConnection("reconnecting…", "off");
    if (source.readyState === EventSource.CLOSED) { // refused (409): claim again
      play.source = null;
      setTimeout(claim, 1000);
    }
  };
}

// The query that GET routes (the stream, the downloads) carry: the tab's lease and the session token.
function query() {
  return `token=${encodeURIComponent(play.token)}&session=${encodeURIComponent(SESSION)}`;
}

function setConnection(text, cls) {
  const c = $("connection");
  c.textContent = text;
  c.className = `pill ${cls}`;
}

// ---- what the server pushes ----------------------------------------------------------------
let frameTimers = [];

function showFrames(frames) {
  frameTimers.forEach(clearTimeout);
  const cfg = play.config || { render_fps: 8, frames_per_step: frames.length };
  const dt = 1000 / Math.max(1, cfg.render_fps * cfg.frames_per_step);
  frameTimers = frames.map((url, i) => setTimeout(() => {
    $("frame").src = url;
    play.framesShown += 1;
  }, i * dt));
}

function onUpdate(u) {
  play.status = u;
  if (u.frames && u.frames.length) {
    play.received.push({ step: u.step, frames: u.frames });
    if (play.received.length > KEEP_CHUNKS) play.received.splice(0, play.received.length - KEEP_CHUNKS);
    showFrames(u.frames);
  }
  $("step").textContent = u.step;
  $("steps-per-s").textContent = (u.steps_per_s || 0).toFixed(1);
  $("latency").textContent = u.latency_s ? `${(u.latency_s * 1000).toFixed(0)} ms` : "–";
  const mem = u.memory || {};
  $("memory").textContent = mem.history_chunks === undefined ? "–"
    : `${mem.history_chunks} chunks · ${mem.history_latents} latents · ${mem.memory_tokens} tokens`;
  let ev = u.event ? u.event : "(none)";
  if (u.pending_event !== null && u.pending_event !== undefined && u.pending_event !== u.event) {
    ev += ` → next chunk: ${u.pending_event || "(none)"}`;
  }
  $("event").textContent = ev;
  $("event-overlay").textContent = u.event || "";
  $("event-overlay").hidden = !u.event;
  $("reward").textContent = `${(u.reward || 0).toFixed(3)} (total ${(u.total_reward || 0).toFixed(2)})`;
  $("seed").textContent = u.seed ?? "–";
  $("recorded").textContent = `${u.recorded_steps} steps`;
  if (u.action_text) $("action-text").textContent = u.action_text;
  $("pause").textContent = u.paused ? "Resume (P)" : "Pause (P)";
  $("download-start").hidden = !u.start_image; // record reads it beside the log
  showStopped(u);
  setConnection(...badge(u));
  if (u.branches) { // sent only when the list may have changed
    play.branches = u.branches;
    renderBranches(u.branches);
  }
}

// The badge's [text, class]: a failed step or an ended episode outranks pause, and both outrank live.
function badge(u) {
  if (u.error) return ["stopped: error", "bad"];
  if (u.ended) return [`episode ${u.ended}`, "ended"];
  if (u.paused) return ["paused", "paused"];
  return ["live", "on"];
}

// The notice over the frame while the world cannot go on; other messages never replace it, and it
// stays (with its Reset button) until a reset or a branch restore starts the world again.
function showStopped(u) {
  const text = u.error ? `${u.error}. Reset to go on.`
    : u.ended ? `Episode ${u.ended} at step ${u.step}: reset (or restore a branch) to play on.` : "";
  $("stopped").hidden = !text;
  $("stopped").className = u.error ? "bad" : "";
  $("stopped-text").textContent = text;
}

function renderBranches(branches) {
  const key = branches.map((b) => b.id).join(",");
  const list = $("branches");
  if (list.dataset.key === key) return;
  list.dataset.key = key;
  list.replaceChildren(...branches.map((b) => {
    const li = document.createElement("li");
    const img = document.createElement("img");
    img.src = b.thumbnail;
    img.alt = "";
    const label = document.createElement("span");
    label.textContent = `#${b.id} · step ${b.step}${b.event ? " · " + b.event : ""}`;
    const btn = document.createElement("button");
    btn.type = "button";
    btn.textContent = "Restore";
    btn.dataset.branch = b.id;
    btn.onclick = () => request(async () => { await api("/api/branch/restore", { id: b.id }); resync(); }, `restored branch #${b.id}`);
    li.append(img, label, btn);
    return li;
  }));
}

// ---- keyboard -> action ---------------------------------------------------------------------
// Whether the world takes Yume's keys x camera moves (WASD + arrows); a server without a vocabulary
// in its config is one of those.
function yume() {
  const v = play.config && play.config.vocabulary;
  return !v || v.is_yume;
}

function keyLabel(code) {
  return code.replace(/^(Digit|Key)/, "");
}

// The buttons, key map and help of the world's vocabulary (built once: a server plays one world).
function setupControls(cfg) {
  if (yume() || play.choicesBuilt) return;
  play.choicesBuilt = true;
  const vocab = cfg.vocabulary, single = vocab.nvec.length === 1;
  play.standing = vocab.nvec.map(() => 0);
  play.keymap = {};
  const help = [];
  const rows = vocab.nvec.map((n, i) => {
    const keys = (ROWS[i] || []).slice(0, n);
    keys.forEach((code, j) => { play.keymap[code] = [i, j]; });
    const row = document.createElement("div");
    row.className = "component";
    row.dataset.component = i;
    const label = document.createElement("div");
    label.className = "label";
    label.textContent = `${single ? "action" : `component ${i}`} · ${n} choices`
      + (keys.length ? ` · keys ${keyLabel(keys[0])}…${keyLabel(keys[keys.length - 1])}` : " · click");
    row.append(label);
    for (let j = 0; j < n; j++) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "choice";
      b.dataset.component = i;
      b.dataset.choice = j;
      b.append(document.createTextNode(vocab.names.length ? vocab.names[i][j] : String(j)));
      if (keys[j]) {
        const k = document.createElement("kbd");
        k.textContent = keyLabel(keys[j]);
        b.append(k);
      }
      b.title = `choice ${j}${keys[j] ? ` (hold ${keyLabel(keys[j])})` : ""}: click to take it while no key is held`;
      b.onclick = () => { play.standing[i] = j; renderHeld(); pushAction(); };
      row.append(b);
    }
    if (keys.length) help.push(`${keyLabel(keys[0])}…${keyLabel(keys[keys.length - 1])} for ${single ? "its choices" : `component ${i}`}`);
    return row;
  });
  $("choices").replaceChildren(...rows);
  $("choices").hidden = false;
  $("move-pad").hidden = true;
  $("look-pad").hidden = true;
  $("hud").classList.add("solo");
  $("help-yume").hidden = true;
  $("help-choices").hidden = false;
  $("help-choices").textContent = (single
    ? `Hold a key for a choice: ${help.join("") || "no keys"} (a key's place in the row is the choice: 1 → 0, 2 → 1, …, 0 → 9). `
      + "←/→ or a click on a button set the choice taken while no key is held. "
    : `One key row per component: ${help.join(", ")} (a key's place in its row is the choice: 1 → 0, Q → 0, …). `
      + "Hold a key for its choice; a click on a button sets that component's choice taken while none of its keys is held. ")
    + "Choices without a key: click. P pauses. Keys work when no text box has focus.";
  play.wantAction = play.standing.slice();
  play.sentAction = play.standing.join(); // the server holds all zeros at first
  renderHeld();
}

// What the server holds when the page has said nothing: all zeros (Yume's "None ·").
function restAction() {
  return yume() ? [0, 0] : play.config.vocabulary.nvec.map(() => 0);
}

// After the server let go of the keys (a new player, a reset, a closed stream): sends the page's action again.
function resync() {
  if (!play.config || play.sending) return;
  play.sentAction = restAction().join();
  pushAction();
}

function heldAction() {
  const h = play.held, cfg = play.config;
  if (!yume()) { // the standing choices, with a held key's choice over its component's (the last pressed wins)
    const action = play.standing.slice();
    for (const code of h) {
      const m = play.keymap[code];
      if (m) action[m[0]] = m[1];
    }
    return action;
  }
  const fw = h.has("KeyW") && !h.has("KeyS"), bw = h.has("KeyS") && !h.has("KeyW");
  const lf = h.has("KeyA") && !h.has("KeyD"), rt = h.has("KeyD") && !h.has("KeyA");
  const key = [fw ? "W" : bw ? "S" : "", lf ? "A" : rt ? "D" : ""].filter(Boolean).join("+") || "None";
  const up = h.has("ArrowUp") && !h.has("ArrowDown"), dn = h.has("ArrowDown") && !h.has("ArrowUp");
  const tl = h.has("ArrowLeft") && !h.has("ArrowRight"), tr = h.has("ArrowRight") && !h.has("ArrowLeft");
  const cam = (up ? "↑" : dn ? "↓" : "") + (tr ? "→" : tl ? "←" : "") || "·";
  return [cfg.keys.indexOf(key), cfg.cameras.indexOf(cam)];
}

// Posts the held action; one request in flight at a time so a quick tap never arrives out of order.
async function pushAction() {
  if (!play.config) return;
  play.wantAction = heldAction();
  if (play.sending || play.wantAction.join() === play.sentAction) return;
  play.sending = true;
  const action = play.wantAction;
  try {
    await api("/api/action", { action });
    play.sentAction = action.join();
  } catch (err) {
    say(err.message, "error");
    play.sentAction = action.join();
  } finally {
    play.sending = false;
  }
  if (heldAction().join() !== play.sentAction) pushAction();
}

function renderHeld() {
  if (!yume()) {
    const action = heldAction();
    document.querySelectorAll("button.choice").forEach((b) => {
      const i = Number(b.dataset.component), j = Number(b.dataset.choice);
      b.classList.toggle("on", action[i] === j);
      b.classList.toggle("standing", play.standing[i] === j);
    });
    const names = [...play.held].filter((c) => play.keymap[c]).map(keyLabel);
    $("held-keys").textContent = names.length ? names.join(" ") : "none";
    return;
  }
  document.querySelectorAll("kbd[data-key]").forEach((k) => k.classList.toggle("held", play.held.has(k.dataset.key)));
  const names = [...play.held].map((c) => MOVE[c] || { up: "↑", down: "↓", left: "←", right: "→" }[LOOK[c]]);
  $("held-keys").textContent = names.length ? names.join(" ") : "none";
}

function typing(e) {
  const t = e.target;
  return t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA");
}

window.addEventListener("keydown", (e) => {
  if (typing(e) || e.ctrlKey || e.metaKey || e.altKey) return;
  const other = !yume();
  if (other ? play.keymap[e.code] : e.code in MOVE || e.code in LOOK) {
    e.preventDefault();
    if (!play.held.has(e.code)) { play.held.add(e.code); renderHeld(); pushAction(); }
  } else if (e.code === "KeyP" && !e.repeat) {
    togglePause();
  } else if (other && play.standing.length === 1 && (e.code === "ArrowLeft" || e.code === "ArrowRight")) {
    e.preventDefault(); // cycles the one component's standing choice
    const n = play.config.vocabulary.nvec[0];
    play.standing[0] = (play.standing[0] + (e.code === "ArrowRight" ? 1 : n - 1)) % n;
    renderHeld();
    pushAction();
  }
});
window.addEventListener("keyup", (e) => {
  if (play.held.delete(e.code)) { renderHeld(); pushAction(); }
});
function releaseAll() {
  if (play.held.size) { play.held.clear(); renderHeld(); pushAction(); }
}
window.addEventListener("blur", releaseAll);
document.addEventListener("visibilitychange", () => {
  // the world waits while its tab is hidden, and goes on when it comes back
  if (document.hidden) {
    releaseAll();
    if (!play.status.paused && play.token) { play.autoPaused = true; api("/api/pause", { paused: true }).catch(() => {}); }
  } else if (play.autoPaused) {
    play.autoPaused = false;
    api("/api/pause", { paused: false }).catch(() => {});
  }
});

// ---- buttons --------------------------------------------------------------------------------
async function request(fn, done) {
  try {
    await fn();
    if (done) say(done, "info");
  } catch (err) {
    say(err.message, "error");
  }
}

function togglePause() {
  request(() => api("/api/pause", { paused: !play.status.paused }));
}

function updateDownloads() {
  $("download-mp4").href = `/api/recording.mp4?${query()}`;
  $("download-log").href = `/api/actions.json?${query()}`;
  $("download-start").href = `/api/start.png?${query()}`;
}

$("event-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("event-input").value;
  request(() => api("/api/event", { event: text }), text ? `event "${text.trim()}" from the next chunk` : "event cleared");
  $("event-input").blur(); // back to walking
});
$("event-clear").onclick = () => {
  $("event-input").value = "";
  request(() => api("/api/event", { event: "" }), "event cleared");
};
function resetWorld() {
  const seed = $("seed-input").value.trim();
  request(async () => { await api("/api/reset", { seed: seed === "" ? null : seed }); resync(); }, "reset");
}
$("reset").onclick = resetWorld;
$("stopped-reset").onclick = resetWorld;
$("image-input").onchange = (e) => {
  const file = e.target.files[0];
  if (!file) return;
  const reader = new FileReader();
  reader.onload = () => {
    const seed = $("seed-input").value.trim();
    request(async () => { await api("/api/reset", { image: reader.result, seed: seed === "" ? null : seed }); resync(); },
      `started from ${file.name}`);
    e.target.value = "";
  };
  reader.readAsDataURL(file);
};
$("save-branch").onclick = () => request(async () => {
  const b = await api("/api/branch/save");
  say(`saved branch #${b.id} at step ${b.step}`, "info");
});
$("pause").onclick = togglePause;

claim();
