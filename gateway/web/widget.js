/*!
 * Fengda (蜂答) chat widget: vanilla JavaScript, no dependencies, no build step.
 *
 * One tag adds a chat button and window to a page:
 *   <script src="https://fengda.example/widget.js" data-tenant="qinghe-bank"
 *           data-token-url="https://fengda.example/v1/demo/token"></script>
 *
 * Attributes (for window.Fengda.mount(options), the same names in camelCase):
 *   data-tenant     required: the tenant id
 *   data-token-url  required: POST {"tenant"} gives {"token","expires_at"}; relative to the page
 *   data-api        Fengda's base URL; default: the origin this script came from
 *   data-lang       zh-CN | en; default: <html lang>, then the browser's language
 *   data-title, data-greeting ("" for none), data-accent (a CSS colour)
 *   data-mode       floating (default: launcher button + window) | inline (fills data-target)
 *   data-target     inline mode: CSS selector of the container
 * Fengda.mount(options) returns {element, open(), close(), destroy()}.
 *
 * DOM hooks (stable): <fengda-chat id="fengda-chat-<tenant>" data-tenant data-mode
 * data-open> with an open shadow root holding .fd-launcher (floating), .fd-panel
 * (role=dialog when floating), .fd-title, .fd-new, .fd-close, .fd-log (role=log),
 * .fd-input, .fd-send. Each message is .fd-msg.fd-msg-user|.fd-msg-assistant|.fd-msg-agent
 * with data-state=streaming|done|error, data-source=faq|llm|clarify|fallback|handoff,
 * data-turn-id, data-history (loaded from the server), data-error (the API's error code),
 * and .fd-greeting on the local greeting. Inside: .fd-bubble (aria-busy while streaming),
 * .fd-agent (an agent's name, on .fd-msg-agent), .fd-source (citations), .fd-suggestion
 * buttons (clarify), .fd-notice with .fd-retry (data-retry-after: seconds until it enables),
 * and under a finished bot answer (faq, llm, clarify, fallback; live or from history) the
 * rating buttons .fd-rate[data-rating=up|down] (aria-pressed), with data-rated=up|down on
 * the message once a rating is stored (POST /v1/turns/{turn_id}/feedback).
 * Above the input, .fd-bar holds the handoff: .fd-handoff-status (role=status,
 * data-handoff-status=bot|waiting|agent: the text says the place in the queue or the
 * agent's name, and "back to the assistant" after the agent closes) and the "talk to a
 * person" button .fd-handoff (data-action=handoff; hidden while a person is involved,
 * and for good once the server has refused it).
 *
 * While a session waits for or talks with a person, one stream of its events
 * (GET /v1/sessions/{id}/events) brings the agent's messages and the status; it resumes
 * with Last-Event-ID after a drop or a reload, and ends when the agent closes.
 */
(() => {
  'use strict';

  const SCRIPT = document.currentScript;
  const HOME = SCRIPT && SCRIPT.src ? new URL(SCRIPT.src, location.href).origin : location.origin;
  const RENEW_AT = 0.2; // renew a token with less than this share of its life left
  // The events stream reconnects after LIVE_RETRY ms, doubled after each failure up to
  // LIVE_CAP, each wait drawn between its half and itself so that many pages dropped by
  // one restart do not all come back at once.
  const LIVE_RETRY = 1000;
  const LIVE_CAP = 30000;
  // A stream resumed after a close it missed says "bot" first, then replays what it
  // missed: the close among it ends the stream; failing that, it ends after LIVE_GRACE ms.
  const LIVE_GRACE = 5000;

  const TEXT = {
    'zh-CN': {
      title: '在线客服', status: '在线', open: '打开在线客服', close: '关闭在线客服', newChat: '开始新对话',
      input: '输入您的问题', placeholder: '请输入您的问题…', send: '发送', hint: 'Enter 发送，Shift+Enter 换行',
      greeting: '您好！请问有什么可以帮您？', you: '我：', colon: '：', typing: '客服正在输入',
      source: '来源：', sep: '；', suggest: '您可以点击以下问题：', retry: '重试', retryNow: '可以重新发送了。',
      rate: (n) => `消息太多，请 ${n} 秒后再试。`, busy: '服务繁忙，请稍后再试。', queued: '正在排队，请稍候…',
      auth: '连接已失效，请重试。', invalid: '这条消息无法发送，请修改后再试。', forbidden: '本网站暂未开通在线客服。',
      incomplete: '回答未能完整送达。', history: '历史消息暂时无法加载。', ref: '编号 ',
      expired: '之前的对话已过期，已为您开始新的对话。', fresh: '已开始新的对话。',
      handoff: '转人工', handoffLabel: '转接人工客服', agent: '人工客服', agentSays: (name) => `人工客服 ${name}：`,
      waiting: (n) => (n > 0 ? `等待人工客服，您排在第 ${n} 位` : '等待人工客服…'),
      withAgent: (name) => (name ? `人工客服 ${name} 为您服务` : '人工客服为您服务'), back: '对话已转回智能客服',
      noHandoff: '暂时无法转接人工客服，您可以继续向智能客服提问。',
      up: '有帮助', down: '没有帮助', rateFail: '评价未能提交，请稍后再试。',
    },
    en: {
      title: 'Customer service', status: 'Online', open: 'Open chat', close: 'Close chat', newChat: 'Start a new conversation',
      input: 'Type your question', placeholder: 'Type your question…', send: 'Send', hint: 'Enter to send, Shift+Enter for a new line',
      greeting: 'Hi! How can we help you today?', you: 'You: ', colon: ': ', typing: 'Typing',
      source: 'Source: ', sep: '; ', suggest: 'Did you mean:', retry: 'Try again', retryNow: 'You can try again now.',
      rate: (n) => `Too many messages; try again in ${n} s.`, busy: 'Service busy, please try again in a moment.', queued: 'You are in the queue, one moment…',
      auth: 'The connection expired; please try again.', invalid: 'This message cannot be sent; please edit it and try again.', forbidden: 'Chat is not available on this site.',
      incomplete: 'The answer was cut short.', history: 'Earlier messages could not be loaded.', ref: 'Ref. ',
      expired: 'The earlier conversation expired; this is a new one.', fresh: 'New conversation started.',
      handoff: 'Talk to a person', handoffLabel: 'Talk to a person', agent: 'Agent', agentSays: (name) => `${name} (agent): `,
      waiting: (n) => (n > 0 ? `Waiting for a person: position ${n}` : 'Waiting for a person…'),
      withAgent: (name) => (name ? `You are chatting with ${name}` : 'You are chatting with a person'), back: 'Back to the assistant',
      noHandoff: 'A person is not available here; the assistant can still help.',
      up: 'Helpful', down: 'Not helpful', rateFail: 'The rating could not be sent; try again later.',
    },
  };

  // Icons are SVG paths built as DOM nodes: no innerHTML anywhere, so the widget also
  // runs on pages that enforce Trusted Types.
  const ICONS = {
    chat: ['M21 11.5a8.4 8.4 0 0 1-12.2 7.5L3 21l1.9-5.4A8.4 8.4 0 1 1 21 11.5z', 'M8 10h8', 'M8 13.5h5'],
    down: ['m6 9 6 6 6-6'],
    close: ['M18 6 6 18', 'M6 6l12 12'],
    fresh: ['M12 20h9', 'M16.5 3.5a2.1 2.1 0 0 1 3 3L7 19l-4 1 1-4z'],
    send: ['M5 12h13', 'M12 5l7 7-7 7'],
    person: ['M20 21a8 8 0 0 0-16 0', 'M12 13a4.5 4.5 0 1 0 0-9 4.5 4.5 0 0 0 0 9z'],
    doc: ['M14 3H6.5A1.5 1.5 0 0 0 5 4.5v15A1.5 1.5 0 0 0 6.5 21h11a1.5 1.5 0 0 0 1.5-1.5V8z', 'M14 3v5h5'],
    // 👍 and 👎 as drawings: an emoji is a box where the system has no emoji font.
    thumbUp: ['M14 9V5a3 3 0 0 0-3-3l-4 9v11h11.28a2 2 0 0 0 2-1.7l1.38-9a2 2 0 0 0-2-2.3z', 'M7 22H4a2 2 0 0 1-2-2v-7a2 2 0 0 1 2-2h3'],
    thumbDown: ['M10 15v4a3 3 0 0 0 3 3l4-9V2H5.72a2 2 0 0 0-2 1.7l-1.38 9a2 2 0 0 0 2 2.3z', 'M17 2h2.67A2.31 2.31 0 0 1 22 4v7a2.31 2.31 0 0 1-2.33 2H17'],
  };

  // Styles live in the shadow root, untouched by the page's CSS (and by its CSP, as a
  // constructed stylesheet).
  const CSS = `
:host{all:initial;display:block;font:15px/1.55 var(--fd-font);color:var(--fd-text);--fd-accent:#0f6b5c;--fd-accent-2:#0a4f44;
--fd-on-accent:#fff;--fd-text:#17211f;--fd-muted:#566461;--fd-line:#dce4e2;--fd-soft:#eef4f2;--fd-focus:#1f5fd6;
--fd-font:system-ui,-apple-system,"Segoe UI","PingFang SC","Hiragino Sans GB","Microsoft YaHei","Noto Sans CJK SC","Noto Sans SC",Roboto,Arial,sans-serif}
:host([data-mode=inline]){height:100%}
*,*::before,*::after{box-sizing:border-box}
[hidden]{display:none!important}
button,textarea{font:inherit;color:inherit;margin:0}
button{cursor:pointer}
svg{display:block;fill:none;stroke:currentColor;stroke-width:2;stroke-linecap:round;stroke-linejoin:round}
:focus-visible{outline:2px solid var(--fd-focus);outline-offset:2px}
.fd-sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
.fd-launcher,.fd-header{color:var(--fd-on-accent);background:linear-gradient(135deg,var(--fd-accent),var(--fd-accent-2))}
.fd-launcher{position:fixed;right:24px;bottom:24px;z-index:2147483000;width:60px;height:60px;border:0;border-radius:50%;
display:grid;place-items:center;box-shadow:0 10px 28px rgba(10,40,34,.3);transition:transform .16s}
.fd-launcher:hover{transform:translateY(-2px)}
.fd-launcher svg{width:28px;height:28px}
.fd-launcher[aria-expanded=true] svg:first-child,.fd-launcher[aria-expanded=false] svg:last-child{display:none}
.fd-panel{display:flex;flex-direction:column;overflow:hidden;background:#fff}
.fd-floating{position:fixed;right:24px;bottom:96px;z-index:2147483000;width:388px;height:min(660px,calc(100vh - 120px));
border-radius:18px;border:1px solid rgba(0,0,0,.06);box-shadow:0 24px 60px rgba(10,40,34,.22),0 2px 8px rgba(10,40,34,.08);
animation:fd-in .2s ease-out;transform-origin:bottom right}
.fd-inline{height:100%;min-height:380px;border:1px solid var(--fd-line);border-radius:18px;box-shadow:0 8px 30px rgba(10,40,34,.08)}
@keyframes fd-in{from{opacity:0;transform:translateY(14px) scale(.97)}}
.fd-header{display:flex;align-items:center;gap:12px;padding:14px 10px 14px 16px}
.fd-avatar{flex:none;width:40px;height:40px;border-radius:50%;display:grid;place-items:center;background:rgba(255,255,255,.16)}
.fd-avatar svg{width:22px;height:22px}
.fd-heading{flex:1;min-width:0}
.fd-title{margin:0;font-size:16px;font-weight:600;line-height:1.3;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.fd-status{display:flex;align-items:center;gap:6px;font-size:12.5px;opacity:.92}
.fd-status::before{content:"";width:7px;height:7px;border-radius:50%;background:#6ff0b4}
.fd-icon{flex:none;width:38px;height:38px;border:0;border-radius:10px;display:grid;place-items:center;background:none}
.fd-icon:hover{background:rgba(255,255,255,.16)}
.fd-icon svg{width:20px;height:20px}
.fd-header :focus-visible{outline-color:#fff}
.fd-log{flex:1;display:flex;flex-direction:column;gap:14px;overflow-y:auto;overscroll-behavior:contain;padding:18px 16px 10px;background:#f7f9f8}
.fd-msg{display:flex;flex-direction:column;gap:6px;max-width:86%;animation:fd-pop .18s ease-out}
@keyframes fd-pop{from{opacity:0;transform:translateY(4px)}}
.fd-msg-user{align-self:flex-end;align-items:flex-end}
.fd-msg-assistant,.fd-msg-agent{align-self:flex-start;align-items:flex-start}
.fd-bubble{padding:10px 14px;border-radius:16px;white-space:pre-wrap;overflow-wrap:anywhere}
.fd-msg-user .fd-bubble{background:var(--fd-accent);color:var(--fd-on-accent);border-bottom-right-radius:5px}
.fd-msg-assistant .fd-bubble{background:#fff;border:1px solid var(--fd-line);border-bottom-left-radius:5px;box-shadow:0 1px 2px rgba(16,24,40,.05)}
.fd-msg-agent .fd-bubble{background:var(--fd-soft);border:1px solid color-mix(in srgb,var(--fd-accent) 28%,transparent);border-bottom-left-radius:5px}
.fd-agent{display:flex;align-items:center;gap:5px;padding:0 4px;font-size:12.5px;font-weight:600;color:var(--fd-accent)}
.fd-agent svg{flex:none;width:14px;height:14px}
.fd-msg-fallback .fd-bubble{background:#fff7e0;border-color:#edd28c;color:#563d00}
.fd-msg-error .fd-bubble{background:#fdf0ef;border-color:#f0c6c1;color:#8a1c14}
.fd-source{display:flex;gap:5px;padding:0 4px;font-size:12.5px;color:var(--fd-muted)}
.fd-source svg{flex:none;width:14px;height:14px;margin-top:2px}
.fd-suggestions{display:flex;flex-direction:column;align-items:flex-start;gap:8px}
.fd-label,.fd-ref{padding:0 4px;font-size:12.5px;color:var(--fd-muted)}
.fd-suggestion,.fd-retry{border:1px solid var(--fd-accent);border-radius:18px;padding:6px 14px;background:#fff;color:var(--fd-accent);
font-size:14px;line-height:1.4;text-align:left;transition:background .12s}
.fd-suggestion:hover,.fd-retry:hover{background:var(--fd-soft)}
.fd-retry:disabled{opacity:.5;cursor:default;background:#fff}
.fd-rating{display:flex;align-items:center;gap:2px;padding:0 2px;font-size:12.5px;color:var(--fd-muted)}
.fd-rate{border:1px solid transparent;border-radius:8px;padding:4px;background:none;color:var(--fd-muted)}
.fd-rate svg{width:15px;height:15px}
.fd-rate:hover{background:var(--fd-soft);color:var(--fd-text)}
.fd-rate[aria-pressed=true]{border-color:var(--fd-line);background:#fff;color:var(--fd-accent)}
.fd-rate[aria-pressed=true] svg{fill:var(--fd-soft)}
.fd-rating span{margin-left:6px}
.fd-notice{display:flex;flex-wrap:wrap;align-items:center;gap:8px 10px}
.fd-typing{display:inline-flex;gap:4px;padding:6px 0}
.fd-typing i{width:7px;height:7px;border-radius:50%;background:#93a39f;animation:fd-dot 1.2s infinite}
.fd-typing i:nth-child(2){animation-delay:.15s}.fd-typing i:nth-child(3){animation-delay:.3s}
@keyframes fd-dot{30%{opacity:1;transform:translateY(-3px)}0%,60%,100%{opacity:.35}}
.fd-note{align-self:center;max-width:90%;text-align:center;font-size:12.5px;color:var(--fd-muted)}
.fd-form{display:flex;align-items:flex-end;gap:8px;padding:12px 12px 6px;border-top:1px solid var(--fd-line);background:#fff}
.fd-bar{display:flex;align-items:center;gap:10px;padding:8px 12px 0;border-top:1px solid var(--fd-line);background:#fff}
.fd-bar:not([hidden])+.fd-form{border-top:0;padding-top:8px}
.fd-handoff-status{flex:1;min-width:0;display:flex;align-items:center;gap:6px;font-size:12.5px;color:var(--fd-muted)}
.fd-handoff-status::before{content:"";flex:none;width:7px;height:7px;border-radius:50%;background:#93a39f}
.fd-handoff-status[data-handoff-status=waiting]::before{background:#d99a00}
.fd-handoff-status[data-handoff-status=agent]::before{background:var(--fd-accent)}
.fd-handoff{margin-left:auto;flex:none;display:inline-flex;align-items:center;gap:6px;border:1px solid var(--fd-line);border-radius:16px;
padding:4px 12px;background:#fff;color:var(--fd-accent);font-size:13px;line-height:1.4;transition:background .12s}
.fd-handoff:hover{background:var(--fd-soft)}
.fd-handoff:disabled{opacity:.5;cursor:default;background:#fff}
.fd-handoff svg{width:15px;height:15px}
.fd-input{flex:1;min-height:46px;max-height:132px;resize:none;padding:11px 14px;border:1px solid var(--fd-line);border-radius:14px;
background:#fff;line-height:1.45;outline:none;transition:border-color .12s,box-shadow .12s}
.fd-input::placeholder{color:#6f7d7a}
.fd-input:focus{border-color:var(--fd-accent);box-shadow:0 0 0 3px color-mix(in srgb,var(--fd-accent) 22%,transparent)}
.fd-send{flex:none;width:46px;height:46px;border:0;border-radius:14px;display:grid;place-items:center;background:var(--fd-accent);color:var(--fd-on-accent)}
.fd-send:disabled{background:#c9d3d0;cursor:default}
.fd-send svg{width:20px;height:20px}
.fd-hint{padding:0 12px 10px;background:#fff;text-align:center;font-size:11.5px;color:var(--fd-muted)}
@media (max-width:480px){.fd-floating{inset:0;width:auto;height:auto;border-radius:0;border:0}.fd-launcher{right:16px;bottom:16px}
.fd-hint{display:none}.fd-form{padding-bottom:max(12px,env(safe-area-inset-bottom))}}
@media (prefers-reduced-motion:reduce){*,*::before,*::after{animation:none!important;transition:none!important}}
@media (forced-colors:active){.fd-bubble,.fd-suggestion,.fd-retry,.fd-handoff,.fd-rate[aria-pressed=true]{border:1px solid CanvasText}}`;
  let sheet = null; // one constructed stylesheet, shared by every mounted chat

  // localStorage, or memory where the browser refuses it (blocked storage, some private modes).
  const memory = new Map();
  const store = {
    get(k) { try { return localStorage.getItem(k); } catch (_) { return memory.has(k) ? memory.get(k) : null; } },
    set(k, v) { try { localStorage.setItem(k, v); } catch (_) { memory.set(k, v); } },
    del(k) { try { localStorage.removeItem(k); } catch (_) { /* memory only */ } memory.delete(k); },
  };

  /** An API failure: status 0 is a network error, code the API's error code. */
  class ApiError extends Error {
    constructor(status, code, message, retryAfter, requestId) {
      super(message || code);
      Object.assign(this, { status, code, retryAfter: retryAfter || 0, requestId: requestId || '' });
    }
  }

  /**
   * The events of an SSE response, parsed, as they arrive. Leaving the loop that reads
   * them cancels the response.
   */
  async function* sseEvents(res) {
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buf = '';
    try {
      for (;;) {
        const { value, done } = await reader.read();
        buf = (buf + decoder.decode(value, { stream: !done })).replace(/\r\n?/g, '\n');
        for (let i; (i = buf.indexOf('\n\n')) >= 0;) {
          const ev = parseEvent(buf.slice(0, i));
          buf = buf.slice(i + 2);
          if (ev) yield ev;
        }
        if (done) return;
      }
    } finally {
      reader.cancel().catch(() => {});
    }
  }

  /** The sources of the bot's answers, the ones a user rates (not a handoff's notice). */
  const RATED = /^(faq|llm|clarify|fallback)$/;

  /** The status an error code has when it comes inside a stream (an SSE error event). */
  const STATUS_OF = { rate_limited: 429, queue_full: 429, timeout: 504, unauthenticated: 401, origin_not_allowed: 403, invalid_request: 400 };

  /** Reads an error response: its JSON body and Retry-After. */
  async function apiError(res) {
    let e = {};
    try { e = (await res.json()).error || {}; } catch (_) { /* not JSON */ }
    const ra = parseInt(res.headers.get('Retry-After'), 10);
    return new ApiError(res.status, e.code || 'http_' + res.status, e.message, ra > 0 ? ra : 0, e.request_id || res.headers.get('X-Request-ID'));
  }

  /** fetch, with a network failure (or a CORS refusal, which looks the same) as ApiError status 0. */
  async function send(url, init) {
    try {
      return await fetch(url, init);
    } catch (err) {
      if (err.name === 'AbortError') throw err;
      throw new ApiError(0, 'network', err.message);
    }
  }

  function el(tag, cls, attrs, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (text != null) e.textContent = text;
    return e;
  }

  function icon(name) {
    const ns = 'http://www.w3.org/2000/svg';
    const svg = document.createElementNS(ns, 'svg');
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('aria-hidden', 'true');
    for (const d of ICONS[name]) svg.appendChild(document.createElementNS(ns, 'path')).setAttribute('d', d);
    return svg;
  }

  /** A new client_msg_id: the retry of a message that may have been stored reuses it. */
  function newId() {
    return 'w-' + Array.from(crypto.getRandomValues(new Uint8Array(12)), (x) => x.toString(16).padStart(2, '0')).join('');
  }

  /** Parses one server-sent event (a block of lines) into {event, data, id}; null for comments. */
  function parseEvent(block) {
    let event = 'message';
    let id = '';
    const data = [];
    for (const line of block.split('\n')) {
      const i = line.indexOf(':');
      if (i === 0) continue; // a comment, e.g. ": ping"
      const field = i < 0 ? line : line.slice(0, i);
      const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
      if (field === 'event') event = value;
      else if (field === 'data') data.push(value);
      else if (field === 'id') id = value;
    }
    try {
      return data.length ? { event, data: JSON.parse(data.join('\n')), id } : null;
    } catch (_) {
      return null;
    }
  }

  /** Resolves after ms, or at once when signal aborts. */
  function sleep(ms, signal) {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(id);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const id = setTimeout(done, ms);
      signal.addEventListener('abort', done);
    });
  }

  let mounted = 0;

  /** One mounted chat. */
  class Chat {
    constructor(o) {
      if (!o.tenant || !o.tokenUrl) throw new Error('Fengda: the tenant and tokenUrl options (data-tenant, data-token-url) are required');
      this.tenant = String(o.tenant);
      this.tokenUrl = new URL(o.tokenUrl, location.href).href;
      this.api = new URL(o.api || HOME, location.href).href.replace(/\/+$/, '');
      const lang = o.lang || document.documentElement.lang || navigator.language || '';
      this.lang = /^zh/i.test(lang) ? 'zh-CN' : 'en';
      this.t = TEXT[this.lang];
      this.title = o.title || this.t.title;
      this.greeting = o.greeting == null ? this.t.greeting : String(o.greeting);
      this.target = null;
      if (o.mode === 'inline') {
        this.target = typeof o.target === 'string' ? document.querySelector(o.target) : o.target;
        if (!this.target) throw new Error('Fengda: inline mode needs a target element (data-target)');
      }
      this.floating = !this.target;
      const key = `fengda:${new URL(this.api).origin}:${this.tenant}:`;
      this.keys = { token: key + 'token', session: key + 'session', events: key + 'events' };
      this.aborter = new AbortController();
      this.timers = new Set();
      // The session's handoff: bot | waiting | agent. known: the server said so (until
      // then the button is hidden, as the session may be waiting already).
      this.hand = { status: 'bot', known: false };
      this.live = null; // the events stream, while one is open
      this.build(o.accent);
      this.ready = this.loadHistory(); // a turn waits for it: history comes first
      this.ready.then(() => this.resume());
    }

    // ---- the DOM ---------------------------------------------------------------

    build(accent) {
      const t = this.t;
      const uid = 'fd-' + ++mounted;
      const id = 'fengda-chat-' + this.tenant;
      const host = el('fengda-chat', '', {
        id: document.getElementById(id) ? id + '-' + mounted : id,
        'data-tenant': this.tenant, 'data-mode': this.floating ? 'floating' : 'inline', lang: this.lang,
      });
      if (accent) host.style.setProperty('--fd-accent', accent);
      const root = host.attachShadow({ mode: 'open' });
      if ('adoptedStyleSheets' in Document.prototype) {
        if (!sheet) (sheet = new CSSStyleSheet()).replaceSync(CSS);
        root.adoptedStyleSheets = [sheet];
      } else {
        root.appendChild(el('style', '', {}, CSS));
      }
      const button = (cls, label, name, onClick) => {
        const b = el('button', cls, { type: 'button', 'aria-label': label, title: label });
        b.appendChild(icon(name));
        b.addEventListener('click', onClick);
        return b;
      };

      const panel = el('section', 'fd-panel ' + (this.floating ? 'fd-floating' : 'fd-inline'), { id: uid });
      const heading = el('div', 'fd-heading');
      heading.append(el('h2', 'fd-title', { id: uid + '-title' }, this.title), el('div', 'fd-status', {}, t.status));
      const header = el('header', 'fd-header');
      header.append(el('div', 'fd-avatar'), heading, button('fd-icon fd-new', t.newChat, 'fresh', () => this.reset()));
      header.firstChild.appendChild(icon('chat'));
      if (this.floating) {
        panel.hidden = true;
        panel.setAttribute('role', 'dialog');
        panel.setAttribute('aria-label', this.title);
        header.appendChild(button('fd-icon fd-close', t.close, 'close', () => this.close(true)));
        this.launcher = button('fd-launcher', t.open, 'chat', () => (panel.hidden ? this.open() : this.close(true)));
        this.launcher.removeAttribute('title');
        this.launcher.appendChild(icon('down'));
        this.launcher.setAttribute('aria-expanded', 'false');
        this.launcher.setAttribute('aria-controls', uid);
        root.appendChild(this.launcher);
      } else {
        panel.setAttribute('aria-labelledby', uid + '-title');
      }

      this.log = el('div', 'fd-log', { role: 'log', 'aria-live': 'polite', 'aria-label': this.title, tabindex: '0' });
      const form = el('form', 'fd-form', { novalidate: '' });
      const input = el('textarea', 'fd-input', { id: uid + '-input', rows: '1', maxlength: '2000', placeholder: t.placeholder, enterkeyhint: 'send' });
      this.sendBtn = el('button', 'fd-send', { type: 'submit', 'aria-label': t.send, title: t.send, disabled: '' });
      this.sendBtn.appendChild(icon('send'));
      form.append(el('label', 'fd-sr', { for: input.id }, t.input), input, this.sendBtn);
      form.addEventListener('submit', (e) => { e.preventDefault(); this.submit(); });

      // Input methods (pinyin, kana…) use Enter to pick a candidate: never send then.
      // Chrome marks such keydowns isComposing and keyCode 229; Safari ends the
      // composition before the keydown, which still has keyCode 229.
      input.addEventListener('compositionstart', () => { this.composing = true; });
      input.addEventListener('compositionend', () => { this.composing = false; });
      input.addEventListener('keydown', (e) => {
        if (e.key !== 'Enter' || e.shiftKey || this.composing || e.isComposing || e.keyCode === 229) return;
        e.preventDefault();
        this.entered = true;
        this.submit();
      });
      // Some platforms (and automation) still deliver the line break of an Enter whose
      // keydown was handled: drop it.
      input.addEventListener('beforeinput', (e) => {
        if (this.entered && /^insert(LineBreak|Paragraph)$/.test(e.inputType)) e.preventDefault();
      });
      input.addEventListener('keyup', () => { this.entered = false; });
      input.addEventListener('input', () => {
        input.style.height = 'auto';
        input.style.height = Math.min(input.scrollHeight + 2, 132) + 'px';
        this.sync();
      });
      root.addEventListener('keydown', (e) => {
        if (e.key === 'Escape' && this.floating && !this.panel.hidden && !e.isComposing && !this.composing) this.close(true);
      });

      // The handoff: its status, and the "talk to a person" button.
      this.bar = el('div', 'fd-bar');
      this.statusLine = el('div', 'fd-handoff-status', { role: 'status', 'aria-live': 'polite', 'data-handoff-status': 'bot' });
      this.handoffBtn = el('button', 'fd-handoff', { type: 'button', 'data-action': 'handoff', 'aria-label': t.handoffLabel, title: t.handoffLabel });
      this.handoffBtn.append(icon('person'), el('span', '', { 'aria-hidden': 'true' }, t.handoff));
      this.handoffBtn.addEventListener('click', () => this.handoff());
      this.bar.append(this.statusLine, this.handoffBtn);

      panel.append(header, this.log, this.bar, form, el('div', 'fd-hint', { 'aria-hidden': 'true' }, t.hint));
      root.appendChild(panel);
      Object.assign(this, { host, panel, input });
      this.syncHandoff();
      this.start();
      (this.target || document.body).appendChild(host);
    }

    /** Empties the log down to the greeting, and marks where history goes. */
    start() {
      this.log.textContent = '';
      this.seen = new Set(); // the turn ids of the agents' messages shown
      if (this.greeting) this.add('assistant', this.greeting).el.classList.add('fd-greeting');
      this.historyAt = this.log.appendChild(document.createComment('history'));
    }

    /** Adds a message to the log (history in its place); returns {el, bubble}. name: an agent's. */
    add(role, text, history, name) {
      const t = this.t;
      const m = el('div', 'fd-msg fd-msg-' + role, { 'data-state': 'done' });
      const bubble = el('div', 'fd-bubble', {}, text);
      if (role === 'agent') {
        m.append(el('span', 'fd-sr', {}, name ? t.agentSays(name) : t.agent + t.colon));
        m.appendChild(el('div', 'fd-agent', { 'aria-hidden': 'true' })).append(icon('person'), el('span', '', {}, name || t.agent));
        m.appendChild(bubble);
      } else {
        m.append(el('span', 'fd-sr', {}, role === 'user' ? t.you : this.title + t.colon), bubble);
      }
      if (history) {
        m.dataset.history = 'true';
        this.log.insertBefore(m, this.historyAt);
      } else {
        this.append(m);
      }
      return { el: m, bubble };
    }

    /** Appends a node to the log; the view follows when it was at the bottom. */
    append(node) {
      const atEnd = this.atEnd();
      this.log.appendChild(node);
      if (atEnd) this.scrollDown();
    }

    atEnd() { return this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight < 48; }

    scrollDown() { this.log.scrollTop = this.log.scrollHeight; }

    /** Shows an agent's message (m: a history message or a message event), once: the
     * events stream may replay one the history showed. */
    addAgent(m, history) {
      const id = m.turn_id || '';
      if (id && this.seen.has(id)) return;
      if (id) this.seen.add(id);
      this.add('agent', m.content || '', history, (m.agent && m.agent.name) || '').el.dataset.turnId = id;
    }

    note(text, before) { this.log.insertBefore(el('div', 'fd-note', { role: 'status' }, text), before || null); }

    /** The send button works when there is text and no turn in flight. */
    sync() {
      this.sendBtn.disabled = this.busy || !this.input.value.trim();
      this.handoffBtn.disabled = !!this.busy;
    }

    /** The button shows while the bot answers, the status line while it has something to say. */
    syncHandoff() {
      this.statusLine.hidden = !this.statusLine.textContent;
      this.handoffBtn.hidden = this.handoffOff || !this.hand.known || this.hand.status !== 'bot';
      this.bar.hidden = this.statusLine.hidden && this.handoffBtn.hidden;
    }

    open() {
      if (this.floating) {
        this.panel.hidden = false;
        this.host.dataset.open = 'true';
        this.launcher.setAttribute('aria-expanded', 'true');
        this.launcher.setAttribute('aria-label', this.t.close);
        this.scrollDown();
      }
      this.input.focus();
    }

    close(returnFocus) {
      if (!this.floating || this.panel.hidden) return;
      this.panel.hidden = true;
      delete this.host.dataset.open;
      this.launcher.setAttribute('aria-expanded', 'false');
      this.launcher.setAttribute('aria-label', this.t.open);
      if (returnFocus) this.launcher.focus();
    }

    destroy() {
      this.unlisten();
      this.aborter.abort();
      this.timers.forEach(clearInterval);
      this.host.remove();
    }

    /** "New conversation": forgets the session on this device and starts over. */
    reset() {
      if (this.busy) return;
      this.forget();
      this.start();
      this.note(this.t.fresh);
      this.input.focus();
    }

    // ---- tokens and API calls -------------------------------------------------

    /** A token with more than RENEW_AT of its life left: the stored one, or a new one. */
    token(force) {
      let t = null;
      try { t = JSON.parse(store.get(this.keys.token)); } catch (_) { /* none */ }
      if (!force && t && t.token && Date.now() < t.expires - RENEW_AT * (t.expires - t.issued)) return Promise.resolve(t.token);
      if (!this.pending) this.pending = this.fetchToken(t).finally(() => { this.pending = null; });
      return this.pending;
    }

    async fetchToken(old) {
      const headers = { 'Content-Type': 'application/json', Accept: 'application/json' };
      // A still valid token renews the same (anonymous) user: the history stays reachable.
      if (old && old.token && Date.now() < old.expires - 2000) headers.Authorization = 'Bearer ' + old.token;
      const post = () => send(this.tokenUrl, {
        method: 'POST', headers, body: JSON.stringify({ tenant: this.tenant }),
        credentials: 'same-origin', cache: 'no-store', signal: this.aborter.signal,
      });
      let res = await post();
      if (res.status === 401 && headers.Authorization) {
        delete headers.Authorization;
        res = await post();
      }
      if (!res.ok) throw await apiError(res);
      const body = await res.json();
      if (!body.token) throw new ApiError(502, 'incomplete');
      // Its life by its own iat and exp, which holds even when this clock is wrong.
      let life = Date.parse(body.expires_at) - Date.now();
      try {
        const c = JSON.parse(atob(body.token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')));
        if (c.exp > c.iat) life = (c.exp - c.iat) * 1000;
      } catch (_) { /* not a JWT we can read: expires_at it is */ }
      const now = Date.now();
      store.set(this.keys.token, JSON.stringify({ token: body.token, expires_at: body.expires_at, issued: now, expires: now + (life > 0 ? life : 60000) }));
      return body.token;
    }

    /**
     * Calls the API with a token; after a 401, renews the token once and calls again.
     * opts: {headers, signal} to add headers, or end the call with another signal.
     */
    async request(method, path, body, opts) {
      const o = opts || {};
      const call = async (token) => send(this.api + path, {
        method,
        headers: Object.assign({ Authorization: 'Bearer ' + token, Accept: body ? 'text/event-stream' : 'application/json' },
          body ? { 'Content-Type': 'application/json' } : {}, o.headers),
        body: body ? JSON.stringify(body) : undefined,
        credentials: 'omit', cache: 'no-store', signal: o.signal || this.aborter.signal,
      });
      const res = await call(await this.token());
      return res.status === 401 ? call(await this.token(true)) : res;
    }

    get session() { return store.get(this.keys.session); }

    set session(id) { if (id) store.set(this.keys.session, id); else store.del(this.keys.session); }

    /** Forgets the session on this device: its id, its events stream and handoff status. */
    forget() {
      this.session = null;
      this.unlisten();
      store.del(this.keys.events);
      this.hand = { status: 'bot', known: true };
      this.statusLine.textContent = '';
      this.statusLine.dataset.handoffStatus = 'bot';
      this.syncHandoff();
    }

    /** Shows the stored session's messages before anything else; forgets a session that is gone. */
    async loadHistory() {
      const id = this.session;
      if (!id) return;
      this.log.setAttribute('aria-busy', 'true');
      try {
        const res = await this.request('GET', `/v1/sessions/${encodeURIComponent(id)}/messages`);
        if (res.status === 404) { this.session = null; return; }
        if (!res.ok) throw await apiError(res);
        let asked = ''; // the turn id of the last user message
        for (const m of (await res.json()).messages || []) {
          if (m.role === 'agent') { this.addAgent(m, true); continue; }
          const e = this.add(m.role === 'user' ? 'user' : 'assistant', m.content, true).el;
          e.dataset.turnId = m.turn_id || '';
          if (m.role === 'user') asked = m.turn_id;
          // History has no source: a bot's answer follows its question in the same turn,
          // a handoff's notice has none.
          else if (m.source ? RATED.test(m.source) : m.turn_id && m.turn_id === asked) this.rating(e);
        }
        this.scrollDown();
      } catch (err) {
        if (err.name !== 'AbortError') this.note(this.t.history, this.historyAt);
      } finally {
        this.log.removeAttribute('aria-busy');
      }
    }

    /**
     * After the history: the stored session's handoff status (a reload while it waits
     * for, or talks with, a person shows the status and resumes the events stream).
     */
    async resume() {
      const id = this.session;
      try {
        if (!id) return;
        const res = await this.request('GET', `/v1/sessions/${encodeURIComponent(id)}/handoff`);
        if (res.status === 404) this.handoffOff = true; // the session's history loaded: this server has no handoff
        if (!res.ok || this.session !== id) return;
        this.setHandoff((await res.json()).handoff);
      } catch (_) {
        // The button stays; a reply that carries the status shows it.
      } finally {
        this.hand.known = true;
        this.syncHandoff();
      }
    }

    // ---- turns -----------------------------------------------------------------

    submit() {
      const text = this.input.value.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, '').trim();
      if (this.busy || !text) return;
      this.input.value = '';
      this.input.style.height = '';
      this.ask(text);
    }

    /**
     * Sends a message and shows the answer. again, on a retry after an error, holds the
     * user's bubble and the client_msg_id to reuse: the turn may have been stored.
     */
    async ask(text, again) {
      if (this.busy) return;
      this.busy = true;
      this.sync();
      const user = again ? again.user : this.add('user', text).el;
      const msgId = again ? again.msgId : newId();
      const bot = this.typing();
      try {
        await this.ready;
        this.show(bot, await this.turn(text, msgId, bot), text);
      } catch (err) {
        if (err.name !== 'AbortError') this.fail(bot, err, () => { bot.el.remove(); this.ask(text, { user, msgId }); });
      } finally {
        this.busy = false;
        this.sync();
      }
    }

    /** Adds the answer's bubble, typing until it comes; returns {el, bubble}. */
    typing() {
      const bot = this.add('assistant', '');
      bot.el.dataset.state = 'streaming';
      bot.bubble.setAttribute('aria-busy', 'true');
      bot.bubble.appendChild(el('span', 'fd-typing')).append(el('i'), el('i'), el('i'), el('span', 'fd-sr', {}, this.t.typing));
      this.scrollDown();
      return bot;
    }

    /**
     * The "talk to a person" button: hands the session (a new one, with an id of its
     * own, when there is none) to a person, and shows the notice the server answers.
     */
    async handoff() {
      if (this.busy || this.handoffOff || this.hand.status !== 'bot') return;
      this.busy = true;
      this.sync();
      const bot = this.typing();
      try {
        await this.ready;
        let fresh = false;
        const post = () => {
          fresh = !this.session;
          if (fresh) this.session = newId();
          return this.request('POST', `/v1/sessions/${encodeURIComponent(this.session)}/handoff`);
        };
        let res = await post();
        if (res.status === 404 && !fresh) { // the session expired, or is not this user's
          this.forget();
          this.note(this.t.expired, bot.el);
          res = await post();
        }
        if (res.status === 403 || res.status === 404) { // handoff is off for the tenant, or this server has none
          if (fresh) this.session = null;
          this.handoffOff = true;
          this.syncHandoff();
          bot.el.remove();
          this.note(this.t.noHandoff);
          return;
        }
        if (!res.ok) throw await apiError(res);
        this.show(bot, await res.json(), '');
      } catch (err) {
        if (err.name !== 'AbortError') this.fail(bot, err, () => { bot.el.remove(); this.handoff(); });
      } finally {
        this.busy = false;
        this.sync();
      }
    }

    /** One turn, streamed (or JSON, or queued); returns the reply. */
    async turn(text, msgId, bot) {
      const body = { message: text, client_msg_id: msgId };
      if (this.session) body.session_id = this.session;
      let res = await this.request('POST', '/v1/chat', body);
      if (res.status === 404 && body.session_id) { // the session expired or was erased
        this.forget();
        delete body.session_id;
        this.note(this.t.expired, bot.el.previousSibling);
        res = await this.request('POST', '/v1/chat', body);
      }
      if (!res.ok) throw await apiError(res);
      if (/^text\/event-stream/.test(res.headers.get('Content-Type'))) return this.stream(res, bot);
      const reply = await res.json();
      this.session = reply.session_id;
      return reply.status === 'queued' ? this.queued(reply.turn_id, bot) : reply;
    }

    /** Reads the event stream, adding each token to the bubble as it arrives. */
    async stream(res, bot) {
      let text = null; // the text node the deltas go into
      // Leaving the loop cancels the response: a shutdown event may follow the end.
      for await (const ev of sseEvents(res)) {
        const d = ev.data;
        if (!d) continue;
        if (ev.event === 'meta') {
          this.session = d.session_id;
          bot.el.dataset.turnId = d.turn_id || '';
        } else if (ev.event === 'token') {
          const atEnd = this.atEnd();
          if (!text) {
            bot.bubble.textContent = '';
            text = bot.bubble.appendChild(document.createTextNode(''));
          }
          text.data += d.delta || '';
          if (atEnd) this.scrollDown();
        } else if (ev.event === 'done') {
          return d;
        } else if (ev.event === 'queued') {
          return this.queued(d.turn_id, bot);
        } else if (ev.event === 'error') {
          const e = d.error || {};
          throw new ApiError(STATUS_OF[e.code] || 503, e.code || 'unavailable', e.message, 0, e.request_id);
        }
      }
      throw new ApiError(0, 'network', 'the stream ended before its answer');
    }

    /** A queued turn: fetched about every second (202: still queued) until answered. */
    async queued(turnId, bot) {
      bot.bubble.textContent = this.t.queued;
      for (const until = Date.now() + 120000; Date.now() < until;) {
        await new Promise((r) => setTimeout(r, 1000));
        if (this.aborter.signal.aborted) throw new DOMException('destroyed', 'AbortError');
        const res = await this.request('GET', '/v1/turns/' + encodeURIComponent(turnId));
        if (res.status === 202) continue;
        if (!res.ok) throw await apiError(res);
        return res.json();
      }
      throw new ApiError(504, 'timeout');
    }

    /** Shows a reply: its text, its source, clarify's suggestions, or a retry. */
    show(bot, r, text) {
      const m = bot.el;
      const t = this.t;
      const follow = this.atEnd();
      if (r.session_id) this.session = r.session_id;
      if (r.handoff) this.setHandoff(r.handoff);
      // While a person answers, the bot is silent: the message went to the agent.
      if (r.source === 'handoff' && !r.answer) {
        m.remove();
        return;
      }
      bot.bubble.textContent = r.answer || '';
      bot.bubble.removeAttribute('aria-busy');
      Object.assign(m.dataset, { state: 'done', source: r.source || '', turnId: r.turn_id || '' });
      const cites = (r.citations || []).map((c) => c.question).filter(Boolean);
      if (cites.length && r.source !== 'fallback') {
        m.appendChild(el('div', 'fd-source')).append(icon('doc'), el('span', '', {}, t.source + cites.join(t.sep)));
      }
      if (r.source === 'clarify' && (r.suggestions || []).length) {
        const box = m.appendChild(el('div', 'fd-suggestions', { role: 'group', 'aria-label': t.suggest }));
        box.appendChild(el('div', 'fd-label', { 'aria-hidden': 'true' }, t.suggest));
        for (const s of r.suggestions) {
          box.appendChild(el('button', 'fd-suggestion', { type: 'button', 'data-id': s.id || '' }, s.question))
            .addEventListener('click', () => this.ask(s.question));
        }
      }
      // A fallback (the service's busy answer) or a cut answer was stored as a turn:
      // its retry is a new message, with a new client_msg_id.
      if (r.source === 'fallback' || r.incomplete) {
        m.classList.add('fd-msg-fallback');
        this.retry(m, r.source === 'fallback' ? '' : t.incomplete, 0, () => this.ask(text));
      }
      if (RATED.test(r.source)) this.rating(m);
      if (follow) this.scrollDown();
    }

    /** Shows why a turn failed, politely, keeping the user's message, with a retry where it can help. */
    fail(bot, err, again) {
      const t = this.t;
      const m = bot.el;
      const s = err.status;
      m.classList.add('fd-msg-error');
      Object.assign(m.dataset, { state: 'error', error: err.code || 'error' });
      bot.bubble.removeAttribute('aria-busy');
      const wait = s === 429 ? Math.max(err.retryAfter, 1) : err.retryAfter;
      bot.bubble.textContent = s === 429 ? t.rate(wait) : s === 401 ? t.auth : s === 403 ? t.forbidden
        : s === 400 || s === 413 || s === 415 ? t.invalid : t.busy;
      if (err.requestId) m.appendChild(el('div', 'fd-ref', {}, t.ref + err.requestId));
      if (!/^(400|403|413|415)$/.test(s)) this.retry(m, '', wait, again, s === 429 && bot.bubble);
      this.scrollDown();
    }

    /** Adds the 👍/👎 buttons under a bot answer m, unless this server takes no ratings. */
    rating(m) {
      if (this.rateOff || !m.dataset.turnId) return;
      const row = m.appendChild(el('div', 'fd-rating'));
      for (const [rating, face] of [['up', 'thumbUp'], ['down', 'thumbDown']]) {
        const label = this.t[rating];
        const b = row.appendChild(el('button', 'fd-rate', { type: 'button', 'data-rating': rating, 'aria-pressed': 'false', 'aria-label': label, title: label }));
        b.appendChild(icon(face));
        b.addEventListener('click', () => this.rate(m, row, rating));
      }
    }

    /**
     * Stores a rating of answer m; a new one replaces the last. A 404 is a turn that is
     * gone, or, before any rating was stored, a server without the route: the buttons go,
     * then everywhere. Other failures say so for a moment and keep the buttons.
     */
    async rate(m, row, rating) {
      if (row.pending || m.dataset.rated === rating) return;
      row.pending = true;
      try {
        const res = await this.request('POST', `/v1/turns/${encodeURIComponent(m.dataset.turnId)}/feedback`, { rating },
          { headers: { Accept: 'application/json' } });
        if (res.status === 404) {
          if (!this.rated) {
            this.rateOff = true;
            this.log.querySelectorAll('.fd-rating').forEach((r) => r.remove());
          }
          row.remove();
          return;
        }
        if (!res.ok) throw await apiError(res);
        this.rated = true;
        m.dataset.rated = rating;
        for (const b of row.querySelectorAll('.fd-rate')) b.setAttribute('aria-pressed', String(b.dataset.rating === rating));
      } catch (err) {
        if (err.name === 'AbortError' || row.querySelector('span')) return;
        const note = row.appendChild(el('span', '', { role: 'status' }, this.t.rateFail));
        setTimeout(() => note.remove(), 4000);
      } finally {
        row.pending = false;
      }
    }

    /**
     * Adds a notice with a retry button, disabled for wait seconds; countdown, when
     * given, is the text that counts them down.
     */
    retry(m, msg, wait, again, countdown) {
      const row = m.appendChild(el('div', 'fd-notice'));
      if (msg) row.appendChild(el('span', '', {}, msg));
      const b = row.appendChild(el('button', 'fd-retry', { type: 'button' }, this.t.retry));
      b.addEventListener('click', () => {
        if (this.busy) return;
        row.remove();
        again();
      });
      if (!(wait > 0)) return;
      b.disabled = true;
      b.dataset.retryAfter = wait;
      const id = setInterval(() => {
        if (--wait > 0) {
          b.dataset.retryAfter = wait;
          if (countdown) countdown.textContent = this.t.rate(wait);
          return;
        }
        clearInterval(id);
        this.timers.delete(id);
        b.disabled = false;
        delete b.dataset.retryAfter;
        if (countdown) countdown.textContent = this.t.retryNow;
      }, 1000);
      this.timers.add(id);
    }

    // ---- the handoff's events --------------------------------------------------

    /**
     * Shows a handoff status (a reply's, GET …/handoff's or an event's): the status line
     * and the button; opens the events stream while a person is involved. A status that
     * is not from the stream itself also ends it when the bot answers again.
     */
    setHandoff(h, fromStream) {
      if (!h || !h.status) return;
      const t = this.t;
      const was = this.hand.status;
      const status = h.status === 'waiting' || h.status === 'agent' ? h.status : 'bot';
      const name = (h.agent && h.agent.name) || '';
      this.hand = { status, known: true };
      if (status === 'waiting') this.statusLine.textContent = t.waiting(h.position || 0);
      else if (status === 'agent') this.statusLine.textContent = t.withAgent(name);
      else if (was !== 'bot' || h.status === 'closed') this.statusLine.textContent = t.back;
      this.statusLine.dataset.handoffStatus = status;
      this.syncHandoff();
      if (status !== 'bot') this.listen();
      else if (!fromStream) this.unlisten();
    }

    /** Opens the session's events stream, unless one is open: one per chat. */
    listen() {
      if (this.live || !this.session) return;
      const live = { session: this.session, aborter: new AbortController(), lastId: '', grace: 0, fresh: false };
      try {
        const seen = JSON.parse(store.get(this.keys.events));
        if (seen && seen.session === live.session) live.lastId = String(seen.id || '');
      } catch (_) { /* none seen */ }
      live.fresh = !live.lastId;
      this.live = live;
      this.follow(live);
    }

    /** Ends the events stream. */
    unlisten() {
      const live = this.live;
      if (!live) return;
      this.live = null;
      clearTimeout(live.grace);
      live.aborter.abort();
    }

    /**
     * Reads the events stream until unlisten, reconnecting from the last event seen
     * (Last-Event-ID) with a growing, jittered wait. A session that is gone or a refusal
     * (400, 401 after a renewed token, 403, 404) ends it: trying again would not help.
     */
    async follow(live) {
      const signal = live.aborter.signal;
      const path = `/v1/sessions/${encodeURIComponent(live.session)}/events`;
      for (let failures = 0; !signal.aborted;) {
        let wait = 0;
        try {
          const headers = { Accept: 'text/event-stream' };
          if (live.lastId) headers['Last-Event-ID'] = live.lastId;
          const res = await this.request('GET', path, null, { headers, signal });
          if (!res.ok) throw await apiError(res);
          if (await this.readLive(res, live)) failures = 0;
        } catch (err) {
          if (signal.aborted) return;
          if (/^(400|401|403|404)$/.test(err.status)) {
            if (this.live === live) this.live = null;
            return;
          }
          wait = (err.retryAfter || 0) * 1000;
        }
        const backoff = Math.min(LIVE_CAP, LIVE_RETRY * 2 ** failures++);
        await sleep(Math.max(wait, backoff / 2 + Math.random() * backoff / 2), signal);
      }
    }

    /** Reads one response of the events stream; reports whether it held any event. */
    async readLive(res, live) {
      let any = false;
      for await (const ev of sseEvents(res)) {
        any = true;
        if (live.fresh) {
          live.fresh = false;
          this.catchUp(live);
        }
        if (ev.id) {
          live.lastId = ev.id;
          store.set(this.keys.events, JSON.stringify({ session: live.session, id: ev.id }));
        }
        if (ev.event === 'shutdown') return true; // this replica is stopping: reconnect
        this.onLive(ev, live);
        if (live.aborter.signal.aborted) return any;
      }
      return any;
    }

    /**
     * A stream that started "from now" (none seen before on this device) misses what an
     * agent wrote between the reply that handed the session over and the stream's
     * opening: once it is open, the history's agent messages are shown (each once).
     */
    async catchUp(live) {
      try {
        const path = `/v1/sessions/${encodeURIComponent(live.session)}/messages`;
        const res = await this.request('GET', path, null, { signal: live.aborter.signal });
        if (!res.ok || this.live !== live) return;
        for (const m of (await res.json()).messages || []) if (m.role === 'agent') this.addAgent(m, false);
      } catch (_) {
        // A reload shows them.
      }
    }

    /** Shows one event of the stream. */
    onLive(ev, live) {
      const d = ev.data;
      if (ev.event === 'message' && d.role === 'agent') {
        this.addAgent(d, false);
      } else if (ev.event === 'handoff') {
        this.setHandoff(d, true);
        if (this.hand.status !== 'bot') return;
        // A stored close ends the stream; so does "bot" as the status now, unless the
        // stream resumed and is about to replay what it missed.
        if (ev.id || !live.lastId) this.unlisten();
        else if (!live.grace) live.grace = setTimeout(() => { if (this.live === live && this.hand.status === 'bot') this.unlisten(); }, LIVE_GRACE);
      }
    }
  }

  /** Mounts a chat; the options are listed at the top of this file. */
  function mount(options) {
    const chat = new Chat(options || {});
    return { element: chat.host, open: () => chat.open(), close: () => chat.close(false), destroy: () => chat.destroy() };
  }

  const api = window.Fengda || (window.Fengda = {});
  api.mount = api.mount || mount;

  // The one-tag form: mount from the script's data attributes once the page is parsed.
  if (SCRIPT && SCRIPT.dataset.tenant) {
    const start = () => {
      try {
        api.mount(Object.assign({}, SCRIPT.dataset));
      } catch (err) {
        console.warn(err.message);
      }
    };
    if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start, { once: true });
    else start();
  }
})();
