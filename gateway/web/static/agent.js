/*!
 * Fengda (蜂答) agents' console: vanilla JavaScript, no dependencies, no build step.
 * Served with /agent and /static/agent.css; it talks to this server's agents' API only.
 *
 * Configuration, from the data- attributes of #fd-agent (written by the server):
 *   data-token-url      demo mode: POST {"tenant","role":"agent"} gives a demo agent's token
 *   data-demo-tenants   demo mode: JSON [{"id","name","lang"}], one "Demo agent" button each
 * Language: ?lang=zh-CN|en, else the browser's languages; default en.
 *
 * DOM hooks (stable, for tests and tooling):
 *   #fd-agent[data-state=signed-out|signed-in][data-tenant][data-agent][data-live]
 *             data-live: connecting | open | retrying (the events stream)
 *   #fd-agent-signin   the sign-in form: .fd-token (the pasted token), .fd-signin, and one
 *                      button[data-demo-tenant="<tenant id>"] per demo tenant
 *   .fd-whoami (the agent's name and tenant), .fd-signout
 *   .fd-queue          .fd-list[data-list=waiting|mine|closed], each holding
 *                      .fd-conv[data-session-id][data-status][data-position][data-unread]
 *                      buttons (waiting: oldest first, data-position 1, 2, …)
 *   .fd-view[data-session-id][data-status][data-mine]   the open conversation, with
 *                      .fd-claim, .fd-state (who holds it, or the resolution), .fd-log
 *                      (role=log) of .fd-msg.fd-msg-user|.fd-msg-assistant|.fd-msg-agent
 *                      [data-turn-id] (assistant: the bot's turns), .fd-input, .fd-send,
 *                      .fd-count[data-over], .fd-resolution, .fd-close-conv
 *   .fd-notice[data-error]   the last problem, in words; data-error is the API's error
 *                      code (conflict, forbidden, unauthenticated, too_large, …) or network
 *
 * Live updates come from GET /v1/agent/events, read with fetch (EventSource cannot send
 * the Authorization header), reconnected with exponential backoff and jitter. After
 * every (re)connect the lists are fetched again: the agents' stream replays nothing it
 * missed, and its events carry no ids (a reconnect would send the last id seen as
 * Last-Event-ID, should they get some). Nothing is polled.
 */
(() => {
  'use strict';

  const RENEW_AT = 0.2; // renew a demo token with less than this share of its life left
  const MAX_CHARS = 4000; // an agent's message, in characters (the server's limit)
  const MAX_RESOLUTION = 500;
  const MAX_CLOSED = 20; // closed conversations shown
  const BACKOFF_MIN = 1000; // ms before the first reconnect; doubles up to BACKOFF_MAX
  const BACKOFF_MAX = 30000;
  const STORE_KEY = 'fengda-agent';
  const API = '/v1/agent';

  const TEXT = {
    'zh-CN': {
      title: '坐席工作台', brand: '蜂答 Fengda', signinTitle: '登录坐席工作台',
      signinLede: '粘贴坐席令牌（role 为 agent 的 JWT，由您的后台签发，或用 fengda token -role agent 生成）。',
      tokenLabel: '坐席令牌', signin: '登录', demoTitle: '演示模式', demoLede: '以演示坐席身份登录演示租户：',
      demoAgent: (n) => `演示坐席 · ${n}`, signout: '退出登录', whoami: (n, t) => `${n} · ${t}`,
      waiting: '排队中', mine: '我的会话', closed: '最近结束', emptyWaiting: '暂无排队的客户。',
      emptyMine: '您目前没有进行中的会话。', emptyClosed: '暂无。', pick: '请从左侧队列中选择一个会话。',
      claim: '接入会话', closeConv: '结束会话', resolution: '处理结果（可选）', send: '发送',
      input: '回复客户', placeholder: '输入回复…', hint: 'Enter 发送，Shift+Enter 换行',
      who: { user: '客户', assistant: '机器人', agent: '坐席' },
      cause: { asked: '客户要求转人工', button: '客户点击了“转人工”', unresolved: '机器人未能解答' },
      status: { waiting: '排队中', agent: '人工服务中', closed: '已结束' },
      withAgent: (n) => `由 ${n} 接待中`, withMe: '由您接待中', closedNote: (r) => (r ? `已结束：${r}` : '已结束。'),
      now: '刚刚', mins: (n) => `${n} 分钟`, hours: (h, m) => `${h} 小时 ${m} 分钟`, waited: (s) => `等待 ${s}`,
      live: '实时', connecting: '正在连接…', retrying: '连接中断，正在重连…', customer: (u) => `客户 ${u}`,
      taken: '该会话已被其他坐席接入。', notYours: '该会话已不属于您：已结束，或由其他坐席接待。',
      notAgent: '此令牌不是坐席令牌，坐席接口拒绝了它（403）。请使用 role 为 agent 的令牌登录。',
      expired: '令牌被拒绝（已过期或无效），请重新登录。', badToken: '这看起来不是令牌（JWT 由两个点分隔的三段组成）。',
      tooLong: `消息超过 ${MAX_CHARS} 个字符。`, invalid: '请求无效，请修改后重试。', notFound: '该会话已不存在。',
      rate: '请求过于频繁，请稍后再试。', busy: '服务繁忙，请稍后再试。', network: '无法连接服务器，请稍后再试。',
      history: '历史消息无法加载。', demoFailed: '无法获取演示令牌。', ref: '编号 ', dismiss: '关闭提示',
      unread: '新消息',
    },
    en: {
      title: 'Agent console', brand: 'Fengda 蜂答', signinTitle: 'Sign in to the agent console',
      signinLede: 'Paste an agent token: a JWT with "role":"agent" from your backend, or from fengda token -role agent.',
      tokenLabel: 'Agent token', signin: 'Sign in', demoTitle: 'Demo mode', demoLede: 'Sign in as a demo agent of a demo tenant:',
      demoAgent: (n) => `Demo agent · ${n}`, signout: 'Sign out', whoami: (n, t) => `${n} · ${t}`,
      waiting: 'Waiting', mine: 'Mine', closed: 'Closed recently', emptyWaiting: 'No one is waiting.',
      emptyMine: 'You have no open conversations.', emptyClosed: 'None yet.', pick: 'Pick a conversation from the queue.',
      claim: 'Claim', closeConv: 'Close conversation', resolution: 'Resolution (optional)', send: 'Send',
      input: 'Reply to the customer', placeholder: 'Write a reply…', hint: 'Enter to send, Shift+Enter for a new line',
      who: { user: 'Customer', assistant: 'Bot', agent: 'Agent' },
      cause: { asked: 'asked for a person', button: 'pressed “talk to a person”', unresolved: 'the bot could not help' },
      status: { waiting: 'Waiting', agent: 'With an agent', closed: 'Closed' },
      withAgent: (n) => `With ${n}`, withMe: 'With you', closedNote: (r) => (r ? `Closed: ${r}` : 'Closed.'),
      now: 'just now', mins: (n) => `${n} min`, hours: (h, m) => `${h} h ${m} min`, waited: (s) => `waiting ${s}`,
      live: 'Live', connecting: 'Connecting…', retrying: 'Connection lost, reconnecting…', customer: (u) => `Customer ${u}`,
      taken: 'This conversation was already taken by another agent.',
      notYours: 'This conversation is no longer yours: it was closed, or another agent holds it.',
      notAgent: "This is not an agent's token: the agents' API refused it (403). Sign in with a token whose role is agent.",
      expired: 'The token was refused (expired or not valid). Sign in again.',
      badToken: 'That does not look like a token (a JWT is three parts separated by dots).',
      tooLong: `The message is longer than ${MAX_CHARS} characters.`, invalid: 'The request was refused as invalid.',
      notFound: 'This conversation no longer exists.', rate: 'Too many requests; try again in a moment.',
      busy: 'The service is busy; try again in a moment.', network: 'The server could not be reached; try again.',
      history: 'The history could not be loaded.', demoFailed: 'No demo token could be had.', ref: 'Ref. ', dismiss: 'Dismiss',
      unread: 'new message',
    },
  };

  /** The language: ?lang=, then the browser's; en by default. */
  function pickLang() {
    const asked = new URLSearchParams(location.search).get('lang');
    for (const l of [asked, ...(navigator.languages || [navigator.language])]) {
      if (/^zh\b/i.test(l || '')) return 'zh-CN';
      if (/^en\b/i.test(l || '')) return 'en';
    }
    return 'en';
  }

  /** Builds an element. No HTML is ever parsed from strings, so the page also runs under Trusted Types. */
  function el(tag, cls, attrs, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }

  const store = {
    get() { try { return JSON.parse(sessionStorage.getItem(STORE_KEY)); } catch (_) { return null; } },
    set(v) { try { sessionStorage.setItem(STORE_KEY, JSON.stringify(v)); } catch (_) { /* private mode: this page only */ } },
    del() { try { sessionStorage.removeItem(STORE_KEY); } catch (_) { /* nothing stored */ } },
  };

  /** A JWT's claims, read without checking it: the server does that. */
  function claimsOf(token) {
    const parts = String(token).split('.');
    if (parts.length !== 3) return null;
    try {
      const bin = atob(parts[1].replace(/-/g, '+').replace(/_/g, '/'));
      const c = JSON.parse(new TextDecoder().decode(Uint8Array.from(bin, (ch) => ch.charCodeAt(0))));
      return c && typeof c === 'object' ? c : null;
    } catch (_) {
      return null;
    }
  }

  /**
   * Sign-in state for a token: its claims, and its life on this clock (by its own iat
   * and exp, which holds when this clock is off). demo is the demo tenant it renews for.
   */
  function authOf(token, demo, expiresAt) {
    const c = claimsOf(token) || {};
    const now = Date.now();
    let life = c.exp > c.iat ? (c.exp - c.iat) * 1000 : Date.parse(expiresAt) - now;
    if (!(life > 0)) life = 60000;
    const left = demo || !(c.exp > 0) ? life : c.exp * 1000 - now;
    return { token, demo: demo || '', issued: now - (life - left), expires: now + left, claims: c };
  }

  class ApiError extends Error {
    constructor(status, code, message, requestId) {
      super(message || code);
      Object.assign(this, { status, code, requestId });
    }
  }

  async function apiError(res) {
    let e = {};
    try { e = (await res.json()).error || {}; } catch (_) { /* not our JSON */ }
    return new ApiError(res.status, e.code || 'http_' + res.status, e.message, e.request_id);
  }

  /**
   * Reads an SSE response, calling onEvent(name, data, id) for each event whose data is
   * JSON; comments (": ping") are skipped. Returns when the stream ends.
   */
  async function readEvents(res, onEvent) {
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buf = '';
    let name = '';
    let data = [];
    let id = null;
    const line = (l) => {
      if (l === '') {
        if (data.length) {
          let v = null;
          try { v = JSON.parse(data.join('\n')); } catch (_) { /* not JSON: skipped */ }
          if (v !== null) onEvent(name || 'message', v, id);
        }
        name = '';
        data = [];
        return;
      }
      if (l[0] === ':') return;
      const i = l.indexOf(':');
      const field = i < 0 ? l : l.slice(0, i);
      const value = i < 0 ? '' : l.slice(i + (l[i + 1] === ' ' ? 2 : 1));
      if (field === 'event') name = value;
      else if (field === 'data') data.push(value);
      else if (field === 'id' && !value.includes('\0')) id = value;
    };
    for (;;) {
      const { value, done } = await reader.read();
      buf += decoder.decode(value || new Uint8Array(0), { stream: !done });
      for (;;) {
        const m = /\r\n|\n|\r/.exec(buf);
        // A CR at the end of what arrived may be the first half of a CRLF.
        if (!m || (!done && m[0] === '\r' && m.index === buf.length - 1)) break;
        line(buf.slice(0, m.index));
        buf = buf.slice(m.index + m[0].length);
      }
      if (done) return;
    }
  }

  const byWait = (a, b) => Date.parse(a.waiting_since) - Date.parse(b.waiting_since);
  const byClose = (a, b) => Date.parse(b.closed_at || 0) - Date.parse(a.closed_at || 0);
  /** When a conversation last changed status: a newer copy of it replaces an older one. */
  const changed = (c) => Math.max(Date.parse(c.waiting_since) || 0, Date.parse(c.claimed_at) || 0, Date.parse(c.closed_at) || 0);
  const chars = (s) => [...s].length;

  class Console {
    constructor(root) {
      this.root = root;
      this.lang = pickLang();
      this.t = TEXT[this.lang];
      this.tokenUrl = root.dataset.tokenUrl || '/v1/demo/token';
      try { this.demo = JSON.parse(root.dataset.demoTenants || '[]'); } catch (_) { this.demo = []; }
      this.convs = new Map(); // session id → conversation, as the lists and events tell
      this.inFlight = null; // while the lists are fetched: the events that arrived meanwhile
      this.unread = new Set();
      this.openId = ''; // the conversation in the view
      this.attempt = 0; // reconnects since the stream last opened
      this.streamGen = 0;
      this.epoch = 0; // one more at every sign-in and sign-out: late answers of the last are dropped
      document.documentElement.lang = this.lang;
      document.title = this.t.title + ' · Fengda 蜂答';
      setInterval(() => this.tick(), 30000); // wait times only; nothing is fetched
      const saved = store.get();
      if (saved && saved.token) this.signIn(saved);
      else this.showSignIn();
    }

    // ---- signing in and out ----------------------------------------------------

    showSignIn(message, code) {
      const t = this.t;
      this.root.dataset.state = 'signed-out';
      this.queueEl = this.viewEl = this.liveEl = this.logEl = null;
      delete this.root.dataset.tenant;
      delete this.root.dataset.agent;
      delete this.root.dataset.live;
      this.root.textContent = '';
      this.root.append(this.topbar(false));
      const main = this.root.appendChild(el('main', 'fd-signin-page'));
      const card = main.appendChild(el('section', 'fd-card fd-signin-card', { 'aria-labelledby': 'fd-signin-title' }));
      card.append(el('h1', '', { id: 'fd-signin-title' }, t.signinTitle));
      this.noticeEl = card.appendChild(this.noticeBox());
      if (message) this.notice(message, code);
      const form = card.appendChild(el('form', 'fd-signin-form', { id: 'fd-agent-signin', novalidate: '' }));
      const area = el('textarea', 'fd-token', {
        id: 'fd-token', rows: '4', spellcheck: 'false', autocomplete: 'off', autocapitalize: 'off', placeholder: 'eyJhbGciOi…',
      });
      form.append(el('p', 'fd-lede', {}, t.signinLede), el('label', 'fd-label', { for: 'fd-token' }, t.tokenLabel), area,
        el('button', 'fd-btn fd-primary fd-signin', { type: 'submit' }, t.signin));
      form.addEventListener('submit', (e) => {
        e.preventDefault();
        const token = area.value.trim().replace(/^Bearer\s+/i, '');
        if (!claimsOf(token)) {
          this.notice(t.badToken, 'invalid_token');
          return;
        }
        this.signIn(authOf(token, ''));
      });
      if (this.demo.length) {
        const demo = form.appendChild(el('div', 'fd-demo'));
        demo.append(el('h2', '', {}, t.demoTitle), el('p', 'fd-lede', {}, t.demoLede));
        const row = demo.appendChild(el('div', 'fd-demo-buttons'));
        for (const d of this.demo) {
          const b = row.appendChild(el('button', 'fd-btn fd-demo-agent', { type: 'button', 'data-demo-tenant': d.id }, t.demoAgent(d.name)));
          b.addEventListener('click', () => this.demoSignIn(d.id, b));
        }
      }
    }

    async demoSignIn(tenant, button) {
      button.disabled = true;
      try {
        this.signIn(await this.fetchDemoToken(tenant, null));
      } catch (err) {
        this.fail(err, this.t.demoFailed);
        button.disabled = false;
      }
    }

    /** A demo agent's token; with old (still valid), for the same agent. */
    async fetchDemoToken(tenant, old) {
      const headers = { 'Content-Type': 'application/json', Accept: 'application/json' };
      if (old && Date.now() < old.expires - 2000) headers.Authorization = 'Bearer ' + old.token;
      const post = () => fetch(this.tokenUrl, {
        method: 'POST', headers, body: JSON.stringify({ tenant, role: 'agent' }), credentials: 'same-origin', cache: 'no-store',
      });
      let res = await post();
      if (res.status === 401 && headers.Authorization) { // the old token was refused: a new agent it is
        delete headers.Authorization;
        res = await post();
      }
      if (!res.ok) throw await apiError(res);
      const body = await res.json();
      if (!body.token) throw new ApiError(502, 'incomplete');
      return authOf(body.token, tenant, body.expires_at);
    }

    signIn(auth) {
      this.epoch++;
      this.auth = auth;
      store.set(auth);
      this.convs.clear();
      this.unread.clear();
      this.openId = '';
      this.listed = false;
      const c = auth.claims || {};
      this.me = c.sub || '';
      this.root.dataset.state = 'signed-in';
      this.root.dataset.tenant = c.tid || '';
      this.root.dataset.agent = this.me;
      this.render();
      this.scheduleRenew();
      this.connect();
    }

    signOut(message, code) {
      this.epoch++;
      this.streamGen++;
      if (this.stream) this.stream.abort();
      clearTimeout(this.retryTimer);
      clearTimeout(this.renewTimer);
      this.auth = null;
      store.del();
      this.showSignIn(message, code);
    }

    /** The token to call with: a demo token is renewed with RENEW_AT of its life left. */
    token(force) {
      const a = this.auth;
      if (!a) return Promise.reject(new ApiError(401, 'unauthenticated'));
      if (!a.demo || (!force && Date.now() < a.expires - RENEW_AT * (a.expires - a.issued))) return Promise.resolve(a.token);
      if (!this.renewing) {
        const epoch = this.epoch;
        this.renewing = this.fetchDemoToken(a.demo, a).then((next) => {
          if (this.epoch === epoch) {
            this.auth = next;
            store.set(next);
            this.scheduleRenew();
            if ((next.claims.sub || '') !== this.me) { // renewed too late: another demo agent, who holds nothing
              this.me = this.root.dataset.agent = next.claims.sub || '';
              this.renderQueue();
              this.renderView();
            }
          }
          return next.token;
        }).finally(() => { this.renewing = null; });
      }
      return this.renewing;
    }

    /** Renews a demo token before it runs low, while it can still name the same agent. */
    scheduleRenew() {
      clearTimeout(this.renewTimer);
      const a = this.auth;
      if (!a || !a.demo) return;
      const at = a.expires - RENEW_AT * (a.expires - a.issued) + 1000;
      this.renewTimer = setTimeout(() => this.token().catch(() => { /* the next call tries again */ }), Math.max(at - Date.now(), 1000));
    }

    /**
     * Fetches path with the agent's token. A refused demo token is renewed once; a
     * refused token otherwise, or a token of another role, signs out with the reason.
     */
    async call(path, init) {
      const go = async (token) => fetch(path, Object.assign({ credentials: 'omit', cache: 'no-store' }, init, {
        headers: Object.assign({ Authorization: 'Bearer ' + token, Accept: 'application/json' }, (init || {}).headers),
      }));
      const epoch = this.epoch;
      let res = await go(await this.token());
      if (res.status === 401 && this.auth && this.auth.demo && this.epoch === epoch) res = await go(await this.token(true));
      if (this.epoch !== epoch) throw new ApiError(0, 'signed_out');
      if (res.status === 401 || res.status === 403) {
        const err = await apiError(res);
        if (err.code === 'unauthenticated' || err.code === 'forbidden') {
          this.signOut(err.code === 'forbidden' ? this.t.notAgent : this.t.expired, err.code);
          err.handled = true;
        }
        throw err;
      }
      return res;
    }

    async json(method, path, body) {
      const init = { method };
      if (body !== undefined) {
        init.body = JSON.stringify(body);
        init.headers = { 'Content-Type': 'application/json' };
      }
      const res = await this.call(path, init);
      if (!res.ok) throw await apiError(res);
      return res.json();
    }

    // ---- the live stream -------------------------------------------------------

    /** Opens the events stream; once it is open, fetches the lists afresh. */
    async connect() {
      const gen = ++this.streamGen;
      clearTimeout(this.retryTimer);
      if (this.stream) this.stream.abort();
      const ab = (this.stream = new AbortController());
      this.setLive('connecting');
      let res;
      try {
        const headers = { Accept: 'text/event-stream' };
        if (this.lastEventId) headers['Last-Event-ID'] = this.lastEventId;
        res = await this.call(API + '/events', { headers, signal: ab.signal });
        if (!res.ok) throw await apiError(res);
      } catch (err) {
        if (gen === this.streamGen && !err.handled && err.name !== 'AbortError') this.reconnect(gen);
        return;
      }
      if (gen !== this.streamGen) return;
      this.attempt = 0;
      this.setLive('open');
      this.loadLists();
      try {
        await readEvents(res, (name, data, id) => {
          if (gen !== this.streamGen) return;
          if (id) this.lastEventId = id;
          try {
            this.onEvent(name, data);
          } catch (err) {
            console.error(err); // a fault here, not in the stream: keep reading
          }
        });
      } catch (_) { /* cut: reconnect below */ }
      if (gen === this.streamGen && !ab.signal.aborted) this.reconnect(gen);
    }

    /**
     * Reconnects after an exponential backoff with jitter (after a server's shutdown
     * event, sooner). The live marker says so. Lists never loaded are loaded now, so
     * that an agent whose stream cannot open still sees the queue as it is.
     */
    reconnect(gen) {
      const d = Math.min(BACKOFF_MAX, BACKOFF_MIN * 2 ** this.attempt++);
      const wait = d / 2 + Math.random() * (d / 2);
      this.setLive('retrying');
      if (!this.listed) this.loadLists();
      this.retryTimer = setTimeout(() => { if (gen === this.streamGen) this.connect(); }, wait);
    }

    setLive(state) {
      this.root.dataset.live = state;
      if (this.liveEl) {
        this.liveEl.dataset.live = state;
        this.liveEl.textContent = state === 'open' ? this.t.live : state === 'connecting' ? this.t.connecting : this.t.retrying;
      }
    }

    onEvent(name, data) {
      // Lists being fetched may have been read before this event: it is applied again
      // on top of them when they arrive.
      if (this.inFlight && (name === 'conversation' || name === 'message')) this.inFlight.push([name, data]);
      if (name === 'conversation' && data.session_id) {
        const before = this.convs.get(data.session_id);
        this.convs.set(data.session_id, data);
        this.renderQueue();
        if (data.session_id === this.openId) {
          this.renderView();
          // Back in the queue after a close: the bot's turns since are not events.
          if (before && before.status !== data.status && data.status === 'waiting') this.loadHistory();
        }
      } else if (name === 'message' && data.session_id) {
        const c = this.convs.get(data.session_id);
        if (c && data.role === 'user') {
          c.last_message = data.content;
          c.last_at = data.at;
        }
        if (data.session_id === this.openId) {
          this.addLive(data);
        } else if (data.role === 'user' && c && c.status === 'agent' && c.agent_id === this.me) {
          this.unread.add(data.session_id);
        }
        this.renderQueue();
      } else if (name === 'shutdown') {
        // This replica is going away: the next connection goes to another one.
        this.attempt = 0;
      }
    }

    // ---- lists -----------------------------------------------------------------

    /**
     * Fetches the three lists afresh. Events that arrive meanwhile are kept and applied
     * on top of what the lists say, where they are newer, so none is lost to a list read
     * before it. Of loads that overlap, the last one's lists are kept.
     */
    async loadLists() {
      const epoch = this.epoch;
      const since = (this.inFlight = []);
      try {
        const lists = await Promise.all(['waiting', 'agent', 'closed'].map((s) => this.json('GET', `${API}/conversations?status=${s}`)));
        if (this.epoch !== epoch || this.inFlight !== since) return;
        this.inFlight = null;
        this.listed = true;
        this.convs.clear();
        for (const l of lists) for (const c of l.conversations || []) this.convs.set(c.session_id, c);
        for (const [name, d] of since) {
          const c = this.convs.get(d.session_id);
          if (name === 'conversation' && (!c || changed(d) > changed(c))) this.convs.set(d.session_id, d);
          else if (name === 'message' && c && d.role === 'user' && Date.parse(d.at) > Date.parse(c.last_at || 0)) {
            c.last_message = d.content;
            c.last_at = d.at;
          }
        }
        this.renderQueue();
        if (this.openId) {
          this.renderView();
          this.loadHistory();
        }
      } catch (err) {
        if (this.inFlight === since) this.inFlight = null;
        if (this.epoch === epoch) this.fail(err);
      }
    }

    lists() {
      const all = [...this.convs.values()];
      return {
        waiting: all.filter((c) => c.status === 'waiting').sort(byWait),
        mine: all.filter((c) => c.status === 'agent' && c.agent_id === this.me).sort(byWait),
        closed: all.filter((c) => c.status === 'closed').sort(byClose).slice(0, MAX_CLOSED),
      };
    }

    // ---- rendering -------------------------------------------------------------

    topbar(signedIn) {
      const t = this.t;
      const bar = el('header', 'fd-topbar');
      const brand = bar.appendChild(el('div', 'fd-brand'));
      brand.append(el('img', '', { src: '/static/favicon.svg', alt: '', width: '28', height: '28' }),
        el('span', 'fd-brand-name', {}, t.brand), el('span', 'fd-brand-sub', {}, t.title));
      if (!signedIn) return bar;
      const c = this.auth.claims || {};
      const right = bar.appendChild(el('div', 'fd-topbar-right'));
      this.liveEl = right.appendChild(el('span', 'fd-live', { role: 'status' }));
      right.append(el('span', 'fd-whoami', {}, t.whoami(c.name || c.sub || '?', c.tid || '?')));
      right.appendChild(el('button', 'fd-btn fd-ghost fd-signout', { type: 'button' }, t.signout))
        .addEventListener('click', () => this.signOut());
      return bar;
    }

    noticeBox() {
      const box = el('div', 'fd-notice', { role: 'alert', hidden: '' });
      box.append(el('span', 'fd-notice-text'));
      box.appendChild(el('button', 'fd-notice-close', { type: 'button', 'aria-label': this.t.dismiss, title: this.t.dismiss }, '×'))
        .addEventListener('click', () => this.clearNotice());
      return box;
    }

    /** Shows a notice; code marks it data-error (an error code), none: information. */
    notice(text, code, requestId) {
      const n = this.noticeEl;
      if (!n) return;
      n.firstChild.textContent = text + (requestId ? ` (${this.t.ref}${requestId})` : '');
      if (code) n.dataset.error = code;
      else delete n.dataset.error;
      n.hidden = false;
    }

    clearNotice() {
      if (!this.noticeEl) return;
      this.noticeEl.hidden = true;
      delete this.noticeEl.dataset.error;
    }

    /** Shows what went wrong with a call, in the agent's words. */
    fail(err, fallback) {
      if (err.handled || err.name === 'AbortError' || err.code === 'signed_out') return;
      const t = this.t;
      if (!(err instanceof ApiError)) {
        this.notice(fallback || t.network, 'network');
        return;
      }
      const s = err.status;
      const text = s === 409 ? t.notYours : s === 404 ? t.notFound : s === 413 ? t.tooLong : s === 400 ? t.invalid
        : s === 429 ? t.rate : fallback || t.busy;
      this.notice(text, err.code, err.requestId);
    }

    render() {
      const t = this.t;
      this.root.textContent = '';
      this.root.append(this.topbar(true));
      this.noticeEl = this.root.appendChild(this.noticeBox());
      const main = this.root.appendChild(el('main', 'fd-desk'));
      this.queueEl = main.appendChild(el('nav', 'fd-queue', { 'aria-label': t.title }));
      this.listEls = {};
      for (const [key, title] of [['waiting', t.waiting], ['mine', t.mine], ['closed', t.closed]]) {
        const sec = key === 'closed' ? el('details', 'fd-section fd-closed') : el('section', 'fd-section');
        const head = el(key === 'closed' ? 'summary' : 'h2', 'fd-section-title');
        head.append(el('span', '', {}, title), el('span', 'fd-badge', { 'data-count': key }, '0'));
        sec.append(head);
        this.listEls[key] = sec.appendChild(el('ul', 'fd-list', { 'data-list': key }));
        this.queueEl.appendChild(sec);
      }
      this.viewEl = main.appendChild(el('section', 'fd-view', { 'aria-live': 'off' }));
      this.setLive('connecting');
      this.renderQueue();
      this.renderView();
    }

    renderQueue() {
      if (!this.queueEl) return;
      const t = this.t;
      const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.sessionId : '';
      const lists = this.lists();
      const empty = { waiting: t.emptyWaiting, mine: t.emptyMine, closed: t.emptyClosed };
      for (const [key, convs] of Object.entries(lists)) {
        const ul = this.listEls[key];
        ul.textContent = '';
        this.queueEl.querySelector(`[data-count="${key}"]`).textContent = String(convs.length);
        if (!convs.length) ul.appendChild(el('li', 'fd-empty', {}, empty[key]));
        convs.forEach((c, i) => {
          const b = el('button', 'fd-conv', { type: 'button', 'data-session-id': c.session_id, 'data-status': c.status });
          if (key === 'waiting') b.dataset.position = String(i + 1);
          if (c.session_id === this.openId) b.setAttribute('aria-current', 'true');
          if (this.unread.has(c.session_id)) b.dataset.unread = 'true';
          const top = b.appendChild(el('span', 'fd-conv-top'));
          if (key === 'waiting') top.appendChild(el('span', 'fd-pos', {}, '#' + (i + 1)));
          top.append(el('span', 'fd-conv-user', {}, c.user_id));
          if (this.unread.has(c.session_id)) top.appendChild(el('span', 'fd-dot', { title: t.unread, 'aria-label': t.unread }));
          const since = key === 'closed' ? c.closed_at : key === 'mine' ? c.claimed_at || c.waiting_since : c.waiting_since;
          top.appendChild(el('span', 'fd-wait', { 'data-since': since || '' }, this.ago(since)));
          b.append(el('span', 'fd-conv-cause', {}, key === 'closed' ? t.closedNote(c.resolution) : t.cause[c.cause] || c.cause),
            el('span', 'fd-conv-last', {}, c.last_message || ''));
          b.addEventListener('click', () => this.openConv(c.session_id));
          ul.appendChild(el('li')).appendChild(b);
        });
      }
      const n = lists.waiting.length;
      document.title = (n ? `(${n}) ` : '') + t.title + ' · Fengda 蜂答';
      if (focused) {
        const again = this.queueEl.querySelector(`.fd-conv[data-session-id="${CSS.escape(focused)}"]`);
        if (again) again.focus();
      }
    }

    ago(iso) {
      const t = this.t;
      const ms = Date.now() - Date.parse(iso);
      if (!(ms >= 60000)) return t.now;
      const m = Math.floor(ms / 60000);
      return m < 60 ? t.mins(m) : t.hours(Math.floor(m / 60), m % 60);
    }

    tick() {
      if (!this.queueEl) return;
      for (const w of this.queueEl.querySelectorAll('.fd-wait')) w.textContent = this.ago(w.dataset.since);
      const since = this.viewEl && this.viewEl.querySelector('.fd-view-wait');
      if (since) since.textContent = this.t.waited(this.ago(since.dataset.since));
    }

    // ---- the conversation view -------------------------------------------------

    openConv(id) {
      this.clearNotice();
      this.openId = id;
      this.unread.delete(id);
      this.renderQueue();
      this.buildView();
      this.loadHistory();
    }

    /** Builds the view's parts for the open conversation; renderView sets their state. */
    buildView() {
      const t = this.t;
      const v = this.viewEl;
      v.textContent = '';
      this.seen = new Set();
      if (!this.openId) return;
      v.dataset.sessionId = this.openId;
      const head = v.appendChild(el('header', 'fd-view-head'));
      const who = head.appendChild(el('div', 'fd-view-who'));
      this.viewTitle = who.appendChild(el('h2', 'fd-view-title'));
      this.viewMeta = who.appendChild(el('p', 'fd-view-meta'));
      this.claimBtn = head.appendChild(el('button', 'fd-btn fd-primary fd-claim', { type: 'button' }, t.claim));
      this.claimBtn.addEventListener('click', () => this.claim());
      this.stateEl = v.appendChild(el('p', 'fd-state', { role: 'status' }));
      this.logEl = v.appendChild(el('div', 'fd-log', { role: 'log', 'aria-live': 'polite', tabindex: '0', 'aria-label': t.customer('') }));

      const form = v.appendChild(el('form', 'fd-composer', { novalidate: '' }));
      this.input = el('textarea', 'fd-input', { id: 'fd-input', rows: '3', placeholder: t.placeholder, enterkeyhint: 'send' });
      this.countEl = el('span', 'fd-count', { 'aria-live': 'polite' });
      this.sendBtn = el('button', 'fd-btn fd-primary fd-send', { type: 'submit' }, t.send);
      const foot = el('div', 'fd-composer-foot');
      foot.append(this.countEl, el('span', 'fd-hint', { 'aria-hidden': 'true' }, t.hint), this.sendBtn);
      form.append(el('label', 'fd-sr', { for: 'fd-input' }, t.input), this.input, foot);
      form.addEventListener('submit', (e) => { e.preventDefault(); this.send(); });
      // Input methods (pinyin, kana…) use Enter to pick a candidate: never send then.
      this.input.addEventListener('compositionstart', () => { this.composing = true; });
      this.input.addEventListener('compositionend', () => { this.composing = false; });
      this.input.addEventListener('keydown', (e) => {
        if (e.key !== 'Enter' || e.shiftKey || this.composing || e.isComposing || e.keyCode === 229) return;
        e.preventDefault();
        this.send();
      });
      this.input.addEventListener('input', () => this.syncComposer());
      this.composer = form;

      const closer = v.appendChild(el('form', 'fd-closer', { novalidate: '' }));
      this.resolution = el('input', 'fd-resolution', {
        id: 'fd-resolution', type: 'text', maxlength: String(MAX_RESOLUTION), placeholder: t.resolution, autocomplete: 'off',
      });
      this.closeBtn = el('button', 'fd-btn fd-danger fd-close-conv', { type: 'submit' }, t.closeConv);
      closer.append(el('label', 'fd-sr', { for: 'fd-resolution' }, t.resolution), this.resolution, this.closeBtn);
      closer.addEventListener('submit', (e) => { e.preventDefault(); this.closeConv(); });
      this.closer = closer;
      this.renderView();
    }

    /** Shows the open conversation's state: who holds it, and what the agent may do. */
    renderView() {
      const v = this.viewEl;
      const t = this.t;
      if (!v) return;
      if (!this.openId) {
        v.textContent = '';
        delete v.dataset.sessionId;
        delete v.dataset.status;
        delete v.dataset.mine;
        v.appendChild(el('p', 'fd-pick', {}, t.pick));
        return;
      }
      if (!this.logEl || v.dataset.sessionId !== this.openId) {
        this.buildView();
        return;
      }
      const c = this.convs.get(this.openId) || { session_id: this.openId, status: '' };
      const mine = c.status === 'agent' && c.agent_id === this.me;
      v.dataset.status = c.status;
      v.dataset.mine = String(mine);
      this.viewTitle.textContent = t.customer(c.user_id || '');
      this.logEl.setAttribute('aria-label', t.customer(c.user_id || ''));
      this.viewMeta.textContent = '';
      this.viewMeta.append(el('span', 'fd-tag', { 'data-status': c.status }, t.status[c.status] || c.status),
        el('span', '', {}, t.cause[c.cause] || c.cause || ''));
      if (c.status === 'waiting') this.viewMeta.appendChild(el('span', 'fd-view-wait', { 'data-since': c.waiting_since }, t.waited(this.ago(c.waiting_since))));
      this.claimBtn.hidden = c.status !== 'waiting';
      this.composer.hidden = !mine;
      this.closer.hidden = !mine;
      this.stateEl.textContent = c.status === 'closed' ? t.closedNote(c.resolution)
        : c.status === 'agent' ? (mine ? t.withMe : t.withAgent(c.agent_name || c.agent_id)) : '';
      this.stateEl.hidden = !this.stateEl.textContent;
      this.syncComposer();
    }

    syncComposer() {
      if (!this.input) return;
      const n = chars(this.input.value);
      this.countEl.textContent = `${n} / ${MAX_CHARS}`;
      if (n > MAX_CHARS) this.countEl.dataset.over = 'true';
      else delete this.countEl.dataset.over;
      this.sendBtn.disabled = !!this.sending || !this.input.value.trim() || n > MAX_CHARS;
    }

    /** Loads the open conversation's whole history; live messages meanwhile wait for it. */
    async loadHistory() {
      const id = this.openId;
      const gen = (this.historyGen = (this.historyGen || 0) + 1);
      this.pending = [];
      this.logEl.setAttribute('aria-busy', 'true');
      try {
        const h = await this.json('GET', `${API}/conversations/${encodeURIComponent(id)}/messages`);
        if (gen !== this.historyGen || id !== this.openId) return;
        this.logEl.textContent = '';
        this.seen = new Set();
        for (const m of h.messages || []) this.addMsg(m);
        const live = this.pending;
        this.pending = null;
        for (const m of live) this.addMsg(m);
        this.logEl.scrollTop = this.logEl.scrollHeight;
      } catch (err) {
        if (gen !== this.historyGen) return;
        this.pending = null;
        this.fail(err, this.t.history);
      } finally {
        if (gen === this.historyGen && this.logEl) this.logEl.removeAttribute('aria-busy');
      }
    }

    /** A live message of the open conversation: after its history, if that is loading. */
    addLive(m) {
      if (this.pending) this.pending.push(m);
      else this.addMsg(m);
    }

    /** Adds a message to the log, once: a turn's user and bot messages share its id. */
    addMsg(m) {
      const role = m.role === 'user' || m.role === 'agent' ? m.role : 'assistant';
      const key = role + ':' + (m.turn_id || '');
      if (m.turn_id && this.seen.has(key)) return;
      this.seen.add(key);
      const t = this.t;
      const atEnd = this.logEl.scrollHeight - this.logEl.scrollTop - this.logEl.clientHeight < 48;
      const msg = el('div', 'fd-msg fd-msg-' + role, { 'data-turn-id': m.turn_id || '' });
      const meta = msg.appendChild(el('div', 'fd-msg-meta'));
      meta.append(el('span', 'fd-msg-who', {}, role === 'agent' && m.agent && m.agent.name ? m.agent.name : t.who[role]));
      if (m.at) {
        const at = new Date(m.at);
        meta.append(el('time', 'fd-msg-at', { datetime: m.at }, at.toLocaleTimeString(this.lang, { hour: '2-digit', minute: '2-digit' })));
      }
      msg.appendChild(el('div', 'fd-bubble', {}, m.content || ''));
      this.logEl.appendChild(msg);
      if (atEnd) this.logEl.scrollTop = this.logEl.scrollHeight;
    }

    async claim() {
      const id = this.openId;
      this.clearNotice();
      this.claimBtn.disabled = true;
      try {
        const r = await this.json('POST', `${API}/conversations/${encodeURIComponent(id)}/claim`);
        this.convs.set(r.conversation.session_id, r.conversation);
        this.renderQueue();
        this.renderView();
        if (id === this.openId && this.input) this.input.focus();
      } catch (err) {
        if (err.status === 409) {
          this.notice(this.t.taken, err.code);
          this.loadLists();
        } else {
          this.fail(err);
        }
      } finally {
        if (this.claimBtn) this.claimBtn.disabled = false;
      }
    }

    async send() {
      const id = this.openId;
      const text = this.input.value.replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/g, '');
      if (this.sending || !text.trim() || chars(text) > MAX_CHARS) return;
      this.clearNotice();
      this.sending = true;
      this.syncComposer();
      try {
        const r = await this.json('POST', `${API}/conversations/${encodeURIComponent(id)}/messages`, { content: text });
        if (id === this.openId) {
          this.input.value = '';
          this.addLive(r.message);
        }
      } catch (err) {
        this.fail(err);
        if (err.status === 409) this.loadLists();
      } finally {
        this.sending = false;
        this.syncComposer();
      }
    }

    async closeConv() {
      const id = this.openId;
      this.clearNotice();
      this.closeBtn.disabled = true;
      try {
        const r = await this.json('POST', `${API}/conversations/${encodeURIComponent(id)}/close`, { resolution: this.resolution.value.trim() });
        this.convs.set(r.conversation.session_id, r.conversation);
        this.renderQueue();
        this.renderView();
      } catch (err) {
        this.fail(err);
        if (err.status === 409) this.loadLists();
      } finally {
        if (this.closeBtn) this.closeBtn.disabled = false;
      }
    }
  }

  const start = () => {
    const root = document.getElementById('fd-agent');
    if (root) new Console(root); // eslint-disable-line no-new
  };
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start, { once: true });
  else start();
})();
