/* localai web UI: chat, models, images and backends over the server's public HTTP API. Vanilla JS, no build. */
(function () {
  'use strict';

  const $ = (sel, root) => (root || document).querySelector(sel);

  /** Build an element. attrs: class, text, on<Event>, aria-*, data-*, any property. Children: nodes or strings. */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') node.className = v;
      else if (k === 'text') node.textContent = v;
      else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
      else if (k.startsWith('aria-') || k.startsWith('data-') || k === 'role' || k === 'for') node.setAttribute(k, v);
      else node[k] = v;
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      node.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
    }
    return node;
  }

  const store = {
    get(key, fallback) {
      try { const v = localStorage.getItem(key); return v === null ? fallback : JSON.parse(v); } catch (e) { return fallback; }
    },
    set(key, value) {
      try { localStorage.setItem(key, JSON.stringify(value)); return true; } catch (e) { toast('Could not save to browser storage: ' + e.message); return false; }
    },
  };

  let toastTimer = null;
  function toast(text) {
    const t = $('#toast');
    t.textContent = text;
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { t.hidden = true; }, 4000);
  }

  function showNote(node, text, isError) {
    node.textContent = text || '';
    node.hidden = !text;
    node.classList.toggle('error', !!isError);
  }

  // ---------------------------------------------------------------- API key and calls

  const KEY = 'localai.apiKey';
  function apiKey() { return sessionStorage.getItem(KEY) || localStorage.getItem(KEY) || ''; }
  function setKey(key, remember) {
    sessionStorage.removeItem(KEY);
    localStorage.removeItem(KEY);
    if (key) (remember ? localStorage : sessionStorage).setItem(KEY, key);
  }

  let keyPrompt = null;
  /** Ask for the key once, however many calls got a 401 meanwhile; resolves true when a key was entered. */
  function askKey(message) {
    if (keyPrompt) return keyPrompt;
    const dialog = $('#key-dialog');
    $('#key-message').textContent = message;
    $('#key-input').value = '';
    $('#key-remember').checked = !!localStorage.getItem(KEY);
    keyPrompt = new Promise((resolve) => {
      const done = (ok) => {
        dialog.removeEventListener('close', onClose);
        keyPrompt = null;
        resolve(ok);
      };
      const onClose = () => {
        if (dialog.returnValue === 'ok') {
          const key = $('#key-input').value.trim();
          if (key) setKey(key, $('#key-remember').checked);
          done(!!key);
        } else if (dialog.returnValue === 'clear') {
          setKey('');
          done(false);
        } else {
          done(false);
        }
      };
      dialog.addEventListener('close', onClose);
      dialog.returnValue = '';
      dialog.showModal();
      $('#key-input').focus();
    });
    return keyPrompt;
  }

  class ApiError extends Error {
    constructor(message, status, code, missingRoute) {
      super(message);
      this.status = status;
      this.code = code;
      this.missingRoute = !!missingRoute;
    }
  }

  /**
   * fetch with the API key. On 401 asks for the key (once) and retries. ``json`` becomes the body.
   * Returns the Response; network failures become an ApiError, aborts stay AbortError.
   */
  async function api(path, opts) {
    opts = opts || {};
    for (let attempt = 0; ; attempt++) {
      const headers = new Headers(opts.headers || {});
      const key = apiKey();
      if (key) headers.set('Authorization', 'Bearer ' + key);
      let body = opts.body;
      if (opts.json !== undefined) {
        headers.set('Content-Type', 'application/json');
        body = JSON.stringify(opts.json);
      }
      let res;
      try {
        res = await fetch(path, { method: opts.method || (body ? 'POST' : 'GET'), headers, body, signal: opts.signal });
      } catch (e) {
        if (e.name === 'AbortError') throw e;
        throw new ApiError('Cannot reach the server (' + e.message + '). Is localai still running?', 0, 'network');
      }
      if (res.status === 401 && attempt < 3) {
        const msg = key ? 'The server rejected this API key. Enter the right one.' : 'This server needs an API key.';
        if (await askKey(msg)) continue;
      }
      return res;
    }
  }

  /** A readable error from a failed response, in any of the server's error shapes. */
  async function errorFrom(res, what) {
    let message = '';
    let code = null;
    const text = await res.text().catch(() => '');
    try {
      const body = JSON.parse(text);
      const err = body.error || body;
      message = (typeof err === 'string' ? err : err.message || err.detail) || '';
      code = err.code || err.type || null;
    } catch (e) {
      message = text.slice(0, 300);
    }
    const missing = (res.status === 404 || res.status === 405) && /^(not found|method not allowed)$/i.test(message.trim());
    const retry = res.headers.get('Retry-After');
    let readable;
    if (res.status === 429 || res.status === 529) {
      readable = 'The server is busy (' + res.status + '): ' + (message || 'too many requests').replace(/[.\s]*$/, '.') +
        (retry ? ' Try again in ' + retry + ' s.' : ' Try again shortly.');
    } else if (res.status === 401) {
      readable = 'API key missing or rejected (401). Set it with the "API key" button.';
    } else if (missing) {
      readable = (what || 'This feature') + ' is not available on this server (' + res.status + ' ' + message + ').';
    } else if (code === 'gallery_unreachable') {
      readable = message;  // already a sentence for a person (offline), its technical cause after " Cause: "
    } else if (res.status >= 500) {
      readable = 'Server error (' + res.status + '): ' + (message || res.statusText);
    } else {
      readable = (message || res.statusText) + ' (' + res.status + ')';
    }
    return new ApiError(readable, res.status, code, missing);
  }

  /** GET/POST returning parsed JSON, or {error: ApiError, missing: bool} without throwing. */
  async function call(path, opts, what) {
    try {
      const res = await api(path, opts);
      if (!res.ok) {
        const error = await errorFrom(res, what);
        // A GET probing an optional feature: any 404/405 means this server lacks it.
        const missing = error.missingRoute || ((!opts || !opts.method) && (res.status === 404 || res.status === 405));
        if (missing && !error.missingRoute) {
          error.message = (what || 'This feature') + ' is not available on this server (GET ' + path + ' answered ' + res.status + ').';
        }
        return { error, missing };
      }
      const text = await res.text();
      return { data: text ? JSON.parse(text) : null };
    } catch (e) {
      return { error: e instanceof ApiError ? e : new ApiError(e.message, 0), missing: false };
    }
  }

  /** Server-sent events of a streamed response: yields each event's data. */
  async function* sseEvents(res) {
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buf = '';
    let data = [];
    for (;;) {
      const { value, done } = await reader.read();
      buf += done ? decoder.decode() : decoder.decode(value, { stream: true });
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        let line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.endsWith('\r')) line = line.slice(0, -1);
        if (line === '') {
          if (data.length) { yield data.join('\n'); data = []; }
        } else if (line.startsWith('data:')) {
          data.push(line.slice(5).replace(/^ /, ''));
        }
      }
      if (done) break;
    }
    if (data.length) yield data.join('\n');
  }

  /** Every configured model (ours), else the OpenAI list. */
  async function listModels() {
    const rich = await call('/webui/api/models');
    if (rich.data) return { models: rich.data.data, problems: rich.data.problems || [] };
    const plain = await call('/v1/models');
    if (plain.data) {
      return { models: plain.data.data.map((m) => ({ id: m.id, backend: m.owned_by, usecases: [], usable: true, problems: [] })), problems: [] };
    }
    return { models: [], problems: [], error: plain.error || rich.error };
  }

  function formatBytes(n) {
    if (typeof n !== 'number' || !isFinite(n)) return n ? String(n) : '';
    const units = ['B', 'KB', 'MB', 'GB', 'TB'];
    let i = 0;
    while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
    return (i ? n.toFixed(1) : n.toFixed(0)) + ' ' + units[i];
  }

  function asList(data) {
    if (Array.isArray(data)) return data;
    if (!data || typeof data !== 'object') return [];
    for (const k of ['data', 'models', 'backends', 'items']) {
      if (Array.isArray(data[k])) return data[k];
      if (data[k] && typeof data[k] === 'object') return Object.entries(data[k]).map(([name, v]) => ({ name, ...(typeof v === 'object' ? v : { value: v }) }));
    }
    return Object.entries(data).map(([name, v]) => ({ name, ...(typeof v === 'object' && v ? v : { value: v }) }));
  }

  /** A gallery entry's id for ``/models/apply`` and ``/backends/apply``: its ``id``, else ``gallery@name``. */
  function galleryId(g) {
    const name = pick(g, 'name', 'id');
    const gal = g.gallery && (g.gallery.name || g.gallery);
    return pick(g, 'id') || (typeof gal === 'string' && gal ? gal + '@' + name : name);
  }

  const pick = (obj, ...keys) => { for (const k of keys) if (obj && obj[k] !== undefined && obj[k] !== null && obj[k] !== '') return obj[k]; return undefined; };

  // ---------------------------------------------------------------- background jobs (installs)

  // Job progress boxes by what they work on ("model:NAME"), so a list re-rendered meanwhile (search, refresh) shows
  // them again instead of losing them.
  const jobBoxes = new Map();

  /** The element a card shows its job in, holding the job box for ``key`` if there is one. */
  function jobSlot(key) {
    const slot = el('div');
    const job = jobBoxes.get(key);
    if (job) slot.appendChild(job.box);
    return slot;
  }

  function jobRunning(key) {
    const job = jobBoxes.get(key);
    return !!(job && job.running);
  }

  /** Polls a LocalAI job (``/models/jobs/{uuid}``, ``/backends/jobs/{uuid}``) into a progress element. */
  function trackJob(key, container, jobPath, cancelPath, onDone) {
    const bar = el('progress', { max: 100, value: 0, 'aria-label': 'Progress' });
    const msg = el('span', { text: 'queued' });
    const cancel = cancelPath ? el('button', { type: 'button', class: 'small ghost', text: 'Cancel', onclick: () => call(cancelPath, { method: 'POST' }) }) : null;
    const box = el('div', { class: 'job', role: 'status', 'aria-live': 'polite' }, bar, el('div', {}, msg, ' ', cancel));
    const job = { box, running: true };
    jobBoxes.set(key, job);
    container.textContent = '';
    container.appendChild(box);
    const poll = async () => {
      const r = await call(jobPath, null, 'Job status');
      if (r.error) { msg.textContent = r.error.message; msg.className = 'error-text'; job.running = false; return; }
      const j = r.data || {};
      const pct = Number(j.progress) || 0;
      bar.value = pct;
      const size = j.file_size ? ' · ' + (j.downloaded_size || '0') + ' of ' + j.file_size : '';
      msg.textContent = (j.message || '') + (pct ? ' · ' + pct.toFixed(0) + '%' : '') + size;
      if (j.processed) {
        job.running = false;
        if (cancel) cancel.remove();
        if (j.error) { msg.textContent = (j.cancelled ? 'Cancelled: ' : 'Failed: ') + j.error; msg.className = 'error-text'; }
        else { msg.textContent = 'Done'; bar.value = 100; }
        if (onDone) onDone(j);
        return;
      }
      setTimeout(poll, 1000);
    };
    poll();
  }

  // ---------------------------------------------------------------- pages and routing

  const pages = {};
  const TITLES = { chat: 'Chat', models: 'Models', images: 'Images', backends: 'Backends' };

  function route() {
    let name = (location.hash.match(/^#\/(\w+)/) || [])[1];
    if (!pages[name]) name = 'chat';
    for (const key of Object.keys(pages)) $('#page-' + key).hidden = key !== name;
    for (const a of document.querySelectorAll('.topbar nav a')) {
      if (a.dataset.page === name) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
    }
    document.title = TITLES[name] + ' · localai';
    const page = pages[name];
    if (!page.started) { page.started = true; page.init(); }
    if (page.show) page.show();
  }

  // ---------------------------------------------------------------- chat

  const chat = (() => {
    const CONV = 'localai.conversations';
    const CURRENT = 'localai.currentConversation';
    const MODEL = 'localai.chatModel';
    const SETTINGS = 'localai.chatSettings';
    const CONTINUE = 'localai.continueText';  // per model: continue mode off where the user unticked it
    let conversations = store.get(CONV, []);
    let currentId = store.get(CURRENT, null);
    let controller = null;
    let renderPending = false;
    let streamingNode = null;
    let attached = [];  // data URLs of images for the next message
    let models = [];  // the chat models offered, with their use cases ("vision" when they take images)

    const newId = () => Date.now().toString(36) + Math.random().toString(36).slice(2, 8);
    const current = () => conversations.find((c) => c.id === currentId);
    const save = () => { store.set(CONV, conversations); store.set(CURRENT, currentId); };

    function ensureConversation() {
      let conv = current();
      if (!conv) {
        conv = { id: newId(), title: 'New chat', created: Date.now(), updated: Date.now(), system: $('#system-prompt').value || '', messages: [] };
        conversations.unshift(conv);
        currentId = conv.id;
        save();
        renderList();
      }
      return conv;
    }

    function newChat() {
      if (controller) controller.abort();
      const conv = current();
      if (conv && !conv.messages.length) { $('#prompt').focus(); return; }
      currentId = null;
      $('#system-prompt').value = conv ? conv.system || '' : '';
      save();
      renderList();
      renderMessages();
      closeSidebar();
      $('#prompt').focus();
    }

    function switchTo(id) {
      if (controller) controller.abort();
      currentId = id;
      save();
      const conv = current();
      $('#system-prompt').value = (conv && conv.system) || '';
      renderList();
      renderMessages();
      closeSidebar();
    }

    function remove(id) {
      const conv = conversations.find((c) => c.id === id);
      if (!conv || !confirm('Delete the conversation "' + conv.title + '"?')) return;
      if (id === currentId && controller) controller.abort();
      conversations = conversations.filter((c) => c.id !== id);
      if (id === currentId) currentId = conversations.length ? conversations[0].id : null;
      save();
      renderList();
      renderMessages();
    }

    function renderList() {
      const ul = $('#conversations');
      ul.textContent = '';
      if (!conversations.length) ul.appendChild(el('li', { class: 'muted small', text: 'No conversations yet.' }));
      for (const c of conversations) {
        const isCurrent = c.id === currentId;
        ul.appendChild(el('li', { class: isCurrent ? 'current' : '' },
          el('button', { type: 'button', class: 'open', text: c.title, title: c.title, 'aria-current': isCurrent ? 'true' : null, onclick: () => switchTo(c.id) }),
          el('button', { type: 'button', class: 'delete', text: '✕', 'aria-label': 'Delete conversation ' + c.title, title: 'Delete', onclick: () => remove(c.id) })));
      }
    }

    function statsText(m) {
      const s = m.stats;
      if (!s) return '';
      const parts = [];
      if (s.completion_tokens !== undefined) parts.push((s.estimated ? '≈' : '') + s.completion_tokens + ' tokens');
      if (s.tokens_per_second) parts.push(s.tokens_per_second.toFixed(1) + ' tok/s');
      if (s.prompt_tokens !== undefined) parts.push('prompt ' + s.prompt_tokens + ' tokens');
      if (s.first_token_s !== undefined) parts.push('first token ' + s.first_token_s.toFixed(2) + ' s');
      if (m.finish) parts.push('finish: ' + m.finish);
      if (m.model) parts.push(m.model);
      return parts.join(' · ');
    }

    function messageNode(m, index) {
      const isUser = m.role === 'user';
      const body = el('div', { class: 'body' });
      if (isUser) body.textContent = m.content;
      else body.appendChild(Markdown.render(m.content));
      const head = el('div', { class: 'msg-head' }, el('span', { class: 'who', text: isUser ? 'You' : 'Assistant' }),
        m.content ? Markdown.copyButton(() => m.content, 'Copy message') : null);
      const node = el('article', { class: 'msg ' + (isUser ? 'user' : 'assistant'), 'aria-label': (isUser ? 'You' : 'Assistant') + ', message ' + (index + 1), 'data-index': index }, head);
      if (m.images && m.images.length) {
        node.appendChild(el('div', { class: 'images' }, m.images.map((src, i) => el('img', { src, alt: 'Attached image ' + (i + 1) }))));
      }
      if (m.reasoning) {
        node.appendChild(el('details', { class: 'reasoning' }, el('summary', { text: 'Reasoning (' + m.reasoning.length + ' characters)' }),
          el('div', { class: 'reasoning-body' }, Markdown.render(m.reasoning))));
      }
      node.appendChild(body);
      for (const tc of m.toolCalls || []) {
        let args = tc.arguments || '';
        try { args = JSON.stringify(JSON.parse(args), null, 2); } catch (e) { /* partial or not JSON: show as is */ }
        node.appendChild(el('div', { class: 'tool-call', role: 'group', 'aria-label': 'Tool call ' + tc.name },
          el('div', {}, 'Tool call ', el('span', { class: 'tool-name', text: tc.name || '(unnamed)' }), tc.id ? el('span', { class: 'muted small', text: ' · ' + tc.id }) : null),
          el('pre', { text: args })));
      }
      if (m.stopped) node.appendChild(el('div', { class: 'stats', text: 'Stopped.' }));
      if (m.error) node.appendChild(el('div', { class: 'error-text', role: 'alert', text: m.error }));
      const stats = statsText(m);
      if (stats) node.appendChild(el('div', { class: 'stats', text: stats }));
      return node;
    }

    function renderMessages() {
      const box = $('#messages');
      box.textContent = '';
      streamingNode = null;
      const conv = current();
      if (!conv || !conv.messages.length) {
        box.appendChild(el('div', { class: 'empty' }, el('h2', { text: 'Start a conversation' }),
          el('p', { text: 'Pick a model, type a message and press Enter. Answers stream as they are generated; Stop cancels the generation on the server.' })));
        return;
      }
      conv.messages.forEach((m, i) => box.appendChild(messageNode(m, i)));
      if (controller) {
        streamingNode = box.lastElementChild;
        streamingNode.classList.add('streaming');
        streamingNode.setAttribute('aria-busy', 'true');
      }
      box.scrollTop = box.scrollHeight;
    }

    /** Re-render only the streaming message, at most once a frame. */
    function scheduleStreamRender(reply) {
      if (renderPending) return;
      renderPending = true;
      requestAnimationFrame(() => {
        renderPending = false;
        const box = $('#messages');
        const old = streamingNode;
        if (!old || !old.isConnected) return;
        const stick = box.scrollHeight - box.scrollTop - box.clientHeight < 60;
        const openReasoning = old.querySelector('details.reasoning[open]') !== null;
        const node = messageNode(reply, Number(old.dataset.index));
        node.classList.add('streaming');
        node.setAttribute('aria-busy', 'true');
        if (openReasoning) node.querySelector('details.reasoning').open = true;
        old.replaceWith(node);
        streamingNode = node;
        if (stick) box.scrollTop = box.scrollHeight;
      });
    }

    function setStreaming(on) {
      $('#send').hidden = on;
      $('#stop').hidden = !on;
      $('#chat-form').setAttribute('aria-busy', on ? 'true' : 'false');
    }

    function numberOrNull(input) {
      const v = input.value.trim();
      if (v === '') return null;
      const n = Number(v);
      return isFinite(n) ? n : null;
    }

    async function send(text) {
      const model = $('#chat-model').value;
      if (!model) { toast('No chat model to send to: configure one in the models folder.'); return; }
      const conv = ensureConversation();
      conv.system = $('#system-prompt').value;
      const history = conv.messages.filter((m) => !m.error || m.content).map((m) => ({ role: m.role, content: apiContent(m.content, m.images) }))
        .filter((m) => m.content);
      const messages = [];
      if (conv.system.trim()) messages.push({ role: 'system', content: conv.system });
      const images = attached;
      attached = [];
      renderAttachments();
      messages.push(...history, { role: 'user', content: apiContent(text, images) });
      conv.messages.push(images.length ? { role: 'user', content: text, images } : { role: 'user', content: text });
      const reply = { role: 'assistant', content: '', reasoning: '', toolCalls: [], model };
      conv.messages.push(reply);
      if (conv.title === 'New chat') conv.title = text.replace(/\s+/g, ' ').trim().slice(0, 60) || 'New chat';
      conv.updated = Date.now();
      conversations = [conv, ...conversations.filter((c) => c !== conv)];
      save();
      renderList();

      // A base model continues text: in "continue" mode the message goes to /v1/completions as the text to go on from.
      const continuing = continueMode() && !images.length;  // images go with a chat message
      if (continuing) reply.continued = true;
      const body = continuing ? { model, prompt: text, stream: true, stream_options: { include_usage: true } }
        : { model, messages, stream: true, stream_options: { include_usage: true } };
      const temperature = numberOrNull($('#temperature'));
      const maxTokens = numberOrNull($('#max-tokens'));
      if (temperature !== null) body.temperature = temperature;
      if (maxTokens !== null) body.max_tokens = Math.round(maxTokens);

      controller = new AbortController();
      const myController = controller;
      setStreaming(true);
      renderMessages();
      const started = performance.now();
      let firstAt = null;
      let chunks = 0;
      let usage = null;
      let lastSave = 0;
      try {
        const res = await api(continuing ? '/v1/completions' : '/v1/chat/completions', { method: 'POST', json: body, signal: controller.signal });
        if (!res.ok) throw await errorFrom(res, 'Chat');
        for await (const data of sseEvents(res)) {
          if (data === '[DONE]') break;
          let obj;
          try { obj = JSON.parse(data); } catch (e) { continue; }
          if (obj.error) throw new ApiError('The generation failed: ' + (obj.error.message || JSON.stringify(obj.error)), 0, obj.error.code);
          if (obj.usage) usage = obj.usage;
          for (const ch of obj.choices || []) {
            if (ch.index) continue;
            const d = ch.delta || (typeof ch.text === 'string' ? { content: ch.text } : {});
            if (d.content || d.reasoning_content || d.tool_calls) { chunks++; if (firstAt === null) firstAt = performance.now(); }
            if (d.content) reply.content += d.content;
            if (d.reasoning_content) reply.reasoning += d.reasoning_content;
            for (const tc of d.tool_calls || []) {
              const slot = reply.toolCalls[tc.index || 0] || (reply.toolCalls[tc.index || 0] = { id: '', name: '', arguments: '' });
              if (tc.id) slot.id = tc.id;
              if (tc.function && tc.function.name) slot.name += tc.function.name;
              if (tc.function && tc.function.arguments) slot.arguments += tc.function.arguments;
            }
            if (ch.finish_reason) reply.finish = ch.finish_reason;
          }
          scheduleStreamRender(reply);
          if (performance.now() - lastSave > 1000) { lastSave = performance.now(); save(); }
        }
      } catch (e) {
        if (e.name === 'AbortError') reply.stopped = true;
        else reply.error = e.message;
      } finally {
        const ended = performance.now();
        const stats = {};
        if (usage) {
          stats.completion_tokens = usage.completion_tokens;
          stats.prompt_tokens = usage.prompt_tokens;
        } else if (chunks) {
          stats.completion_tokens = chunks;
          stats.estimated = true;
        }
        if (firstAt !== null) {
          stats.first_token_s = (firstAt - started) / 1000;
          const secs = (ended - firstAt) / 1000;
          if (stats.completion_tokens > 1 && secs > 0) stats.tokens_per_second = (stats.completion_tokens - 1) / secs;
        }
        if (Object.keys(stats).length) reply.stats = stats;
        if (!reply.toolCalls.length) delete reply.toolCalls;
        if (!reply.reasoning) delete reply.reasoning;
        if (controller === myController) controller = null;
        setStreaming(false);
        save();
        if (current() === conv) renderMessages();
      }
    }

    /** A message's content for the API: its text, or text and image_url parts when it carries images. */
    function apiContent(text, images) {
      if (!images || !images.length) return text;
      return [{ type: 'text', text }, ...images.map((url) => ({ type: 'image_url', image_url: { url } }))];
    }

    function takesImages() {
      const m = models.find((x) => x.id === $('#chat-model').value);
      return !m || !m.usecases.length || m.usecases.includes('vision');
    }

    function renderAttachments() {
      const ul = $('#attachments');
      ul.textContent = '';
      ul.hidden = !attached.length;
      attached.forEach((url, i) => ul.appendChild(el('li', {},
        el('img', { src: url, alt: 'Image ' + (i + 1) + ' to send' }),
        el('button', { type: 'button', class: 'ghost', text: '✕', 'aria-label': 'Remove image ' + (i + 1),
                       onclick: () => { attached.splice(i, 1); renderAttachments(); } }))));
      const attach = $('#attach');
      attach.disabled = !takesImages();
      attach.title = attach.disabled ? 'This model does not take images (it has no vision: an mmproj or an image-text-to-text model)'
        : 'Attach an image (or paste one into the message)';
    }

    function addImages(files) {
      for (const file of files) {
        if (!file.type.startsWith('image/')) continue;
        if (!takesImages()) { toast('Model ' + $('#chat-model').value + ' does not take images.'); return; }
        const reader = new FileReader();
        reader.onload = () => { attached.push(reader.result); renderAttachments(); };
        reader.onerror = () => toast('Could not read ' + file.name + '.');
        reader.readAsDataURL(file);
      }
    }

    function closeSidebar() {
      $('#chat-sidebar').classList.remove('open');
      $('#toggle-sidebar').setAttribute('aria-expanded', 'false');
    }

    async function loadModels() {
      const select = $('#chat-model');
      const note = $('#chat-model-note');
      const listed = await listModels();
      const error = listed.error;
      const usable = listed.models.filter((m) => m.usable && (!m.usecases.length || m.usecases.includes('chat')));
      models = usable;
      select.textContent = '';
      for (const m of usable) select.appendChild(el('option', { value: m.id, text: m.id + (m.backend ? ' (' + m.backend + ')' : '') }));
      const remembered = store.get(MODEL, null);
      if (remembered && usable.some((m) => m.id === remembered)) select.value = remembered;
      if (error) showNote(note, 'Could not list models: ' + error.message, true);
      else if (!usable.length) showNote(note, 'No chat model is configured on this server. Add a model YAML to the models folder (see the Models page).', true);
      else showNote(note, '');
      showBaseNotice();
      $('#send').disabled = !usable.length;
      renderAttachments();
    }

    /** Whether the next message goes to /v1/completions: a base model, continue mode left on (the default). */
    function continueMode() {
      const m = models.find((x) => x.id === $('#chat-model').value);
      return !!(m && m.model_type === 'base' && $('#continue-text').checked);
    }

    /** A base (pretrained) model continues text instead of answering: say so next to the picker, with the way out. */
    function showBaseNotice() {
      const m = models.find((x) => x.id === $('#chat-model').value);
      const notice = $('#base-model-notice');
      if (!m || m.model_type !== 'base') { notice.hidden = true; return; }
      $('#continue-text').checked = store.get(CONTINUE, {})[m.id] !== false;
      $('#base-model-name').textContent = m.id;
      $('#base-model-reason').textContent = m.model_type_reason || '';
      notice.hidden = false;
    }

    function init() {
      const settings = store.get(SETTINGS, {});
      if (settings.temperature !== undefined) $('#temperature').value = settings.temperature;
      if (settings.max_tokens !== undefined) $('#max-tokens').value = settings.max_tokens;
      const saveSettings = () => store.set(SETTINGS, { temperature: $('#temperature').value, max_tokens: $('#max-tokens').value });
      $('#temperature').addEventListener('change', saveSettings);
      $('#max-tokens').addEventListener('change', saveSettings);
      $('#system-prompt').addEventListener('change', () => {
        const conv = current();
        if (conv) { conv.system = $('#system-prompt').value; save(); }
      });
      const conv = current();
      $('#system-prompt').value = (conv && conv.system) || '';
      $('#chat-model').addEventListener('change', () => { store.set(MODEL, $('#chat-model').value); renderAttachments(); showBaseNotice(); });
      $('#continue-text').addEventListener('change', () => {
        store.set(CONTINUE, { ...store.get(CONTINUE, {}), [$('#chat-model').value]: $('#continue-text').checked });
      });
      $('#attach').addEventListener('click', () => $('#attach-input').click());
      $('#attach-input').addEventListener('change', (e) => { addImages(e.target.files); e.target.value = ''; });
      $('#prompt').addEventListener('paste', (e) => {
        const files = [...(e.clipboardData ? e.clipboardData.files : [])].filter((f) => f.type.startsWith('image/'));
        if (files.length) { e.preventDefault(); addImages(files); }
      });
      $('#new-chat').addEventListener('click', newChat);
      $('#toggle-settings').addEventListener('click', (e) => {
        const panel = $('#chat-settings');
        panel.hidden = !panel.hidden;
        e.currentTarget.setAttribute('aria-expanded', String(!panel.hidden));
      });
      $('#toggle-sidebar').addEventListener('click', (e) => {
        const open = $('#chat-sidebar').classList.toggle('open');
        e.currentTarget.setAttribute('aria-expanded', String(open));
        if (open) $('#new-chat').focus();
      });
      $('#chat-form').addEventListener('submit', (e) => {
        e.preventDefault();
        const text = $('#prompt').value;
        if ((!text.trim() && !attached.length) || controller) return;
        $('#prompt').value = '';
        send(text);
      });
      $('#prompt').addEventListener('keydown', (e) => {
        if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); $('#chat-form').requestSubmit(); }
        if (e.key === 'Escape' && controller) controller.abort();
      });
      $('#stop').addEventListener('click', () => { if (controller) controller.abort(); $('#prompt').focus(); });
      document.addEventListener('keydown', (e) => { if (e.key === 'Escape') closeSidebar(); });
      renderList();
      renderMessages();
      loadModels();
    }

    return { init, show() { $('#prompt').focus(); }, reloadModels: loadModels };
  })();
  pages.chat = chat;

  // ---------------------------------------------------------------- models

  pages.models = (() => {
    let gallery = [];

    function stateBadge(m, mon) {
      if (!m.usable) return el('span', { class: 'badge bad', text: 'unavailable' });
      const state = mon ? String(pick(mon, 'state', 'status') || 'loaded') : (m.loaded ? 'loaded' : 'not loaded');
      const cls = /busy|load|ready|idle|running/i.test(state) && !/not/i.test(state) ? 'ok' : (/error|fail|dead/i.test(state) ? 'bad' : 'warn');
      return el('span', { class: 'badge ' + cls, text: state });
    }

    function monitorDetails(mon) {
      if (!mon) return null;
      const parts = [];
      const pid = pick(mon, 'pid');
      if (pid) parts.push('pid ' + pid);
      const inflight = pick(mon, 'in_flight', 'inflight', 'busy_requests', 'active');
      if (inflight !== undefined) parts.push(inflight + ' in flight');
      const queued = pick(mon, 'queued', 'queue');
      if (queued !== undefined) parts.push(queued + ' queued');
      const rss = pick(mon, 'rss', 'rss_bytes', 'memory');
      if (rss !== undefined) parts.push(formatBytes(rss) + ' RSS');
      const expires = pick(mon, 'expires_at');
      if (expires) parts.push('unloads ' + new Date(typeof expires === 'number' ? expires * 1000 : expires).toLocaleTimeString());
      return parts.length ? el('div', { class: 'muted small', text: parts.join(' · ') }) : null;
    }

    // The button stays busy until its call ends (a load can take minutes): a second click would send the
    // call again. Either way the table is redrawn from the server's state, never from what the page assumed.
    async function lifecycle(path, model, verb, button) {
      if (button.disabled) return;
      button.disabled = true;
      button.textContent = verb + 'ing…';
      const r = await call(path, { method: 'POST', json: { model } }, verb + ' (POST ' + path + ')');
      if (!r.error) toast(verb + ': ' + model);
      await refresh();
      if (r.error) {
        const note = $('#models-note');
        showNote(note, [note.hidden ? '' : note.textContent, r.error.message].filter(Boolean).join('\n'), true);
      }
    }

    async function refresh() {
      const tbody = $('#models-table tbody');
      const note = $('#models-note');
      const [{ models, problems, error }, monitor] = await Promise.all([listModels(), call('/backend/monitor', null, 'Live model state')]);
      const monByName = {};
      const hasMonitor = !monitor.error;
      if (hasMonitor) for (const item of asList(monitor.data)) monByName[pick(item, 'model', 'name', 'id')] = item;
      tbody.textContent = '';
      const notes = [];
      if (error) notes.push('Could not list models: ' + error.message);
      for (const p of problems) notes.push('Problem: ' + p);
      if (!hasMonitor) notes.push(monitor.missing ? 'Live state and load/unload are not available on this server (GET /backend/monitor answered 404); the state shown is whether a worker is up.' : monitor.error.message);
      showNote(note, notes.join('\n'), !!error || problems.length > 0);
      if (!models.length && !error) {
        tbody.appendChild(el('tr', {}, el('td', { colSpan: 5, class: 'muted', text: 'No models configured. Add a YAML file to the models folder or install one from the gallery below.' })));
      }
      for (const m of models) {
        const mon = monByName[m.id];
        const loaded = mon ? !/unload|stopped|not/i.test(String(pick(mon, 'state', 'status') || 'loaded')) : m.loaded;
        const actions = el('div', { class: 'actions' });
        if (m.usable && hasMonitor) {
          actions.appendChild(loaded
            ? el('button', { type: 'button', class: 'small', text: 'Unload', 'aria-label': 'Unload ' + m.id, onclick: (e) => lifecycle('/backend/shutdown', m.id, 'Unload', e.currentTarget) })
            : el('button', { type: 'button', class: 'small', text: 'Load', 'aria-label': 'Load ' + m.id, onclick: (e) => lifecycle('/backend/load', m.id, 'Load', e.currentTarget) }));
        }
        if (m.usable && (!m.usecases.length || m.usecases.includes('chat'))) {
          actions.appendChild(el('button', { type: 'button', class: 'small ghost', text: 'Chat', 'aria-label': 'Chat with ' + m.id,
            onclick: () => { store.set('localai.chatModel', m.id); location.hash = '#/chat'; chat.reloadModels(); } }));
        }
        const stateCell = el('td', {}, stateBadge(m, mon), monitorDetails(mon),
          m.problems.length ? el('div', { class: 'error-text small', text: m.problems.join('; ') }) : null);
        tbody.appendChild(el('tr', { 'data-model': m.id },
          el('td', {}, el('strong', { text: m.id }), m.description ? el('div', { class: 'muted small', text: m.description }) : null,
            m.file ? el('div', { class: 'muted small', text: (m.model_file ? m.model_file + ' · ' : '') + m.file }) : null),
          el('td', { text: m.backend || '—' }),
          el('td', { text: m.usecases.join(', ') || '—' }),
          stateCell,
          el('td', {}, actions)));
      }
    }

    function renderGallery() {
      const list = $('#gallery-list');
      const q = $('#gallery-search').value.trim().toLowerCase();
      list.textContent = '';
      const hits = gallery.filter((g) => !q || JSON.stringify([g.name, g.description, g.tags]).toLowerCase().includes(q));
      for (const g of hits.slice(0, 120)) {
        const name = pick(g, 'name', 'id');
        const actions = el('div', { class: 'actions' });
        const key = 'model:' + name;
        const jobs = jobSlot(key);
        const install = () => {
          install.button.disabled = true;
          call('/models/apply', { method: 'POST', json: { id: galleryId(g) } }, 'Installing models (POST /models/apply)').then((r) => {
            if (r.error) { jobs.appendChild(el('div', { class: 'error-text small', text: r.error.message })); install.button.disabled = false; return; }
            const uuid = r.data.uuid || r.data.id;
            trackJob(key, jobs, '/models/jobs/' + encodeURIComponent(uuid), '/models/jobs/' + encodeURIComponent(uuid) + '/cancel', () => { refresh(); chat.reloadModels(); loadGallery(); });
          });
        };
        if (g.installed) {
          actions.appendChild(el('span', { class: 'badge ok', text: 'installed' }));
          actions.appendChild(el('button', { type: 'button', class: 'small ghost', text: 'Delete', 'aria-label': 'Delete model ' + name, onclick: async () => {
            if (!confirm('Delete the model ' + name + ' and its files?')) return;
            const r = await call('/models/delete/' + encodeURIComponent(name), { method: 'POST' }, 'Deleting models');
            if (r.error) toast(r.error.message);
            else if (r.data && r.data.uuid) trackJob(key, jobs, '/models/jobs/' + encodeURIComponent(r.data.uuid), null, () => { refresh(); loadGallery(); });
            else { refresh(); loadGallery(); }
          } }));
        } else {
          install.button = el('button', { type: 'button', class: 'small primary', text: 'Install', 'aria-label': 'Install model ' + name, onclick: install, disabled: jobRunning(key) });
          actions.appendChild(install.button);
        }
        const tags = (g.tags || []).slice(0, 6).map((t) => el('span', { class: 'badge', text: t }));
        list.appendChild(el('li', { class: 'card' }, el('h3', { text: name }),
          g.description ? el('p', { class: 'muted small', text: String(g.description).slice(0, 280) }) : null,
          tags.length ? el('div', { class: 'tags' }, tags) : null,
          el('div', { class: 'small muted', text: [g.backend ? 'backend ' + g.backend : '', g.size ? String(g.size) : '',
            g.license ? 'licence ' + g.license : ''].filter(Boolean).join(' · ') }),
          actions, jobs));
      }
      if (!hits.length) list.appendChild(el('li', { class: 'muted', text: gallery.length ? 'No gallery model matches.' : 'The gallery is empty.' }));
      if (hits.length > 120) list.appendChild(el('li', { class: 'muted', text: (hits.length - 120) + ' more: narrow the search.' }));
    }

    async function loadGallery() {
      const r = await call('/models/available', null, 'The model gallery');
      const note = $('#gallery-note');
      if (r.error) {
        const [said, cause] = (r.error.message || '').split(' Cause: ');
        showNote(note, r.missing ? 'The model gallery is not available on this server (GET /models/available answered ' + r.error.status + ').' : said, !r.missing);
        if (cause && !r.missing) {  // the person's sentence first, the technical cause one click away
          const more = el('details');
          more.appendChild(el('summary', { text: 'Technical details' }));
          more.appendChild(el('p', { text: cause }));
          note.appendChild(more);
        }
        $('#gallery-tools').hidden = true;
        $('#gallery-list').textContent = '';
        return;
      }
      showNote(note, '');
      $('#gallery-tools').hidden = false;
      gallery = asList(r.data);
      renderGallery();
    }

    return {
      init() {
        $('#models-refresh').addEventListener('click', () => { refresh(); loadGallery(); });
        $('#gallery-search').addEventListener('input', renderGallery);
        loadGallery();
      },
      show: refresh,
    };
  })();

  // ---------------------------------------------------------------- images

  pages.images = (() => {
    let busy = false;
    const urls = [];

    async function loadModels() {
      const select = $('#image-model');
      const { models } = await listModels();
      const image = models.filter((m) => m.usable && m.usecases.some((u) => /image|diffus/i.test(u)));
      select.textContent = '';
      select.appendChild(el('option', { value: '', text: image.length ? '(server default)' : '(server default: no image model listed)' }));
      for (const m of image) select.appendChild(el('option', { value: m.id, text: m.id + (m.backend ? ' (' + m.backend + ')' : '') }));
      if (image.length) select.value = image[0].id;
    }

    async function imageURL(item) {
      if (item.b64_json) {
        const bin = atob(item.b64_json);
        const bytes = new Uint8Array(bin.length);
        for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
        return URL.createObjectURL(new Blob([bytes], { type: 'image/png' }));
      }
      // A server URL may need the API key, which an <img> cannot send: fetch it ourselves.
      const res = await api(item.url);
      if (!res.ok) throw await errorFrom(res, 'The image file');
      return URL.createObjectURL(await res.blob());
    }

    async function generate(e) {
      e.preventDefault();
      if (busy) return;
      const status = $('#image-status');
      const prompt = $('#image-prompt').value.trim();
      const negative = $('#image-negative').value.trim();
      // LocalAI's convention: the negative prompt follows a "|" in the prompt (so the prompt itself keeps none).
      const body = { prompt: negative ? prompt.replace(/\|/g, ' ') + '|' + negative : prompt, size: $('#image-size').value,
        n: Number($('#image-n').value) || 1, response_format: 'b64_json' };
      const model = $('#image-model').value;
      if (model) body.model = model;
      const steps = $('#image-steps').value.trim();
      if (steps) body.step = Number(steps);
      const seed = $('#image-seed').value.trim();
      if (seed) body.seed = Number(seed);
      busy = true;
      $('#image-generate').disabled = true;
      status.textContent = 'Generating…';
      showNote($('#images-note'), '');
      const started = performance.now();
      try {
        const res = await api('/v1/images/generations', { method: 'POST', json: body });
        if (!res.ok) throw await errorFrom(res, 'Image generation (POST /v1/images/generations)');
        const data = (await res.json()).data || [];
        const items = [];
        let i = 0;
        for (const item of data) {
          const url = await imageURL(item);
          urls.push(url);
          const name = 'localai-' + (seed || Date.now()) + '-' + (++i) + '.png';
          const alt = 'Generated image ' + i + ' for: ' + prompt.slice(0, 120);
          items.push(el('li', {}, el('figure', {}, el('img', { src: url, alt, loading: 'lazy' }),
            el('figcaption', {}, el('span', { class: 'muted', text: body.size + (seed ? ' · seed ' + seed : '') }),
              el('a', { href: url, download: name, text: 'Download', 'aria-label': 'Download image ' + i })))));
        }
        $('#image-results').prepend(...items);  // newest batch first, in its own order
        status.textContent = data.length + ' image(s) in ' + ((performance.now() - started) / 1000).toFixed(1) + ' s';
      } catch (err) {
        status.textContent = '';
        showNote($('#images-note'), err.message, !(err instanceof ApiError && err.missingRoute));
      } finally {
        busy = false;
        $('#image-generate').disabled = false;
      }
    }

    return {
      init() {
        $('#images-form').addEventListener('submit', generate);
        loadModels();
      },
    };
  })();

  // ---------------------------------------------------------------- backends

  pages.backends = (() => {
    function optionsTable(options) {
      if (!options.length) return el('p', { class: 'muted small', text: 'No backend options.' });
      const head = el('thead', {}, el('tr', {}, ['Option', 'Type', 'Default', 'Meaning'].map((h) => el('th', { scope: 'col', text: h }))));
      const rows = options.map((o) => el('tr', {},
        el('td', {}, el('code', { text: [o.name, ...(o.aliases || [])].join(', ') })),
        el('td', { text: o.type + (o.choices && o.choices.length ? ' (' + o.choices.join(' | ') + ')' : '') }),
        el('td', { text: o.default === null || o.default === undefined ? '—' : String(o.default) }),
        el('td', {}, o.help || '',
          o.env ? el('div', { class: 'muted small', text: 'env ' + o.env }) : null,
          o.supported ? el('div', { class: 'error-text small', text: 'Not supported here: ' + o.supported }) : null)));
      const table = el('table', {}, head, el('tbody', {}, rows));
      return el('details', {}, el('summary', { text: options.length + ' option(s)' }), el('div', { class: 'table-wrap' }, table));
    }

    async function loadPlugins() {
      const r = await call('/webui/api/backends', null, 'The backend list');
      const list = $('#plugins-list');
      list.textContent = '';
      if (r.error) { showNote($('#plugins-note'), r.error.message, true); return; }
      showNote($('#plugins-note'), (r.data.errors || []).map((e) => 'Error: ' + e).join('\n'), true);
      for (const b of r.data.data) {
        list.appendChild(el('li', { class: 'card', 'data-backend': b.name },
          el('h3', {}, b.name, ' ', el('span', { class: 'badge ' + (b.available ? 'ok' : 'bad'), text: b.available ? 'available' : 'unavailable' })),
          b.description ? el('p', { class: 'small', text: b.description }) : null,
          el('p', { class: 'muted small', text: [b.distribution + (b.version ? ' ' + b.version : ''), b.aliases.length ? 'aliases: ' + b.aliases.join(', ') : '',
            b.capabilities.length ? 'serves: ' + b.capabilities.join(', ') : ''].filter(Boolean).join(' · ') }),
          b.unavailable ? el('p', { class: 'error-text small', text: b.unavailable }) : null,
          optionsTable(b.options || [])));
      }
      if (!r.data.data.length) list.appendChild(el('li', { class: 'muted', text: 'No backend plugin is installed: pip install localai-llama-cpp (or another backend).' }));
    }

    async function loadEnvs() {
      const r = await call('/backends', null, 'Backend environments');
      const list = $('#envs-list');
      list.textContent = '';
      if (r.error) { showNote($('#envs-note'), r.missing ? 'Backend environments are not available on this server (GET /backends answered ' + r.error.status + ').' : r.error.message, !r.missing); return; }
      const items = asList(r.data).filter((b) => !b.system);
      showNote($('#envs-note'), items.length ? '' : 'No backend environment installed yet: install one from the gallery below. '
        + 'Backends installed in the server\'s own environment are listed above.');
      for (const b of items) {
        const name = pick(b, 'name', 'Name', 'id');
        const meta = b.metadata || b.Metadata || {};
        const key = 'backend-env:' + name;
        const jobs = jobSlot(key);
        const details = [pick(b, 'version') || pick(meta, 'version'), pick(b, 'uri', 'path') || pick(meta, 'uri', 'path'), pick(b, 'status')].filter(Boolean).join(' · ');
        list.appendChild(el('li', { class: 'card' }, el('h3', { text: name }),
          details ? el('p', { class: 'muted small', text: details }) : null,
          el('div', { class: 'actions' }, el('button', { type: 'button', class: 'small ghost', text: 'Uninstall', 'aria-label': 'Uninstall backend ' + name, onclick: async () => {
            if (!confirm('Uninstall the backend ' + name + '?')) return;
            const d = await call('/backends/delete/' + encodeURIComponent(name), { method: 'POST' }, 'Uninstalling backends');
            if (d.error) { jobs.appendChild(el('div', { class: 'error-text small', text: d.error.message })); return; }
            if (d.data && d.data.used_by && d.data.used_by.length) toast('Models configured with it: ' + d.data.used_by.join(', '));
            if (d.data && d.data.uuid) trackJob(key, jobs, '/backends/jobs/' + encodeURIComponent(d.data.uuid), null, refresh);
            else refresh();
          } })), jobs));
      }
    }

    async function loadGallery() {
      const r = await call('/backends/available', null, 'The backend gallery');
      const list = $('#bgallery-list');
      list.textContent = '';
      if (r.error) { showNote($('#bgallery-note'), r.missing ? 'The backend gallery is not available on this server (GET /backends/available answered ' + r.error.status + ').' : r.error.message, !r.missing); return; }
      const items = asList(r.data);
      showNote($('#bgallery-note'), items.length ? '' : 'The backend gallery is empty.');
      for (const b of items) {
        const name = pick(b, 'name', 'id');
        const key = 'backend:' + name;
        const jobs = jobSlot(key);
        const actions = el('div', { class: 'actions' });
        if (!b.system) {
          const verb = b.installed ? (b.upgradable ? 'Upgrade' : 'Reinstall') : 'Install';
          const button = el('button', { type: 'button', class: 'small ' + (b.installed ? 'ghost' : 'primary'), text: verb, 'aria-label': verb + ' backend ' + name, disabled: jobRunning(key) });
          button.addEventListener('click', async () => {
            button.disabled = true;
            const req = { id: galleryId(b) };
            if (b.installed) req.force = true;
            const a = await call('/backends/apply', { method: 'POST', json: req }, 'Installing backends (POST /backends/apply)');
            if (a.error) { jobs.appendChild(el('div', { class: 'error-text small', text: a.error.message })); button.disabled = false; return; }
            const job = '/backends/jobs/' + encodeURIComponent(a.data.uuid);
            trackJob(key, jobs, job, job + '/cancel', () => { button.disabled = false; refresh(); });
          });
          actions.appendChild(button);
        }
        const badge = b.system ? el('span', { class: 'badge ok', text: 'in the server environment' })
          : b.installed ? el('span', { class: 'badge ok', text: 'installed' + (b.installed_version ? ' ' + b.installed_version : '') }) : null;
        list.appendChild(el('li', { class: 'card' }, el('h3', {}, name, ' ', badge, b.upgradable ? el('span', { class: 'badge warn', text: 'update available' }) : null),
          b.description ? el('p', { class: 'muted small', text: String(b.description).slice(0, 280) }) : null,
          actions, jobs));
      }
    }

    function refresh() { loadPlugins(); loadEnvs(); loadGallery(); }

    return {
      init() { $('#backends-refresh').addEventListener('click', refresh); },
      show: refresh,
    };
  })();

  // ---------------------------------------------------------------- start

  function start() {
    $('#key-cancel').addEventListener('click', () => $('#key-dialog').close('cancel'));
    $('#key-clear').addEventListener('click', () => $('#key-dialog').close('clear'));
    $('#key-button').addEventListener('click', () => {
      askKey(apiKey() ? 'A key is set for this page. Enter a new one, or forget it.' : 'Enter the API key this server was started with (--api-key / LOCALAI_API_KEY).')
        .then((ok) => { if (ok) { toast('API key saved.'); route(); } });
    });
    window.addEventListener('hashchange', route);
    route();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
