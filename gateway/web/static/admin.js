/*!
 * Fengda (蜂答) admin console: vanilla JavaScript, no dependencies, no build step.
 * Served with /admin and /static/admin.css; it talks to this server's admin API only.
 *
 * Configuration, from the data- attributes of #fd-admin (written by the server):
 *   data-token-url      demo mode: POST {"tenant","role":"admin"} gives a demo admin's token
 *   data-demo-tenants   demo mode: JSON [{"id","name","lang"}], one "Demo admin" button each
 * Language: ?lang=zh-CN|en, else the browser's languages; default en.
 *
 * DOM hooks (stable, for tests and tooling):
 *   #fd-admin[data-state=signed-out|signed-in][data-tenant][data-version][data-busy]
 *             data-version: the knowledge base's version as last read or written;
 *             data-busy: while the knowledge base is being read
 *   #fd-admin-signin   the sign-in form: .fd-token (the pasted token), .fd-signin, and one
 *                      button[data-demo-tenant="<tenant id>"] per demo tenant
 *   .fd-whoami (the admin's name and tenant), .fd-kb-version (the version), .fd-signout
 *   .fd-search         filters the table as one types: id, question, alternates, answer
 *                      and tags, in any case (and full- or half-width); .fd-count says
 *                      how many entries it shows, of how many
 *   .fd-kb             the table; its rows tr.fd-entry[data-id] (hidden when filtered
 *                      out; aria-selected=true: the one in the form) hold .fd-cell-id,
 *                      .fd-cell-question, .fd-cell-alternates (their count),
 *                      .fd-cell-answer (an excerpt), .fd-cell-tags, .fd-cell-updated;
 *                      a click, Enter or Space opens the entry in the form
 *   .fd-new            opens the form on a new entry
 *   .fd-edit[data-mode=edit|new][data-id]   the form: .fd-id (editable for a new entry
 *                      only: 1 to 64 of A-Z a-z 0-9 _ -), .fd-question, .fd-alternates
 *                      (one per line), .fd-answer, .fd-tags (comma-separated), .fd-save,
 *                      .fd-delete; .fd-field-error[data-field=id|question|alternates|
 *                      answer|tags|entry] under each field (entry: the entry as a whole),
 *                      hidden when empty
 *   .fd-confirm        an inline confirmation ("Delete? Yes / No", "Roll back? Yes / No")
 *                      with .fd-confirm-yes and .fd-confirm-no; nothing happens before Yes
 *   .fd-import         the file input (.yaml, .yml, .json, .csv), sent as is with the
 *                      Content-Type of its extension
 *   .fd-import-errors  a refused import's problems: tr.fd-import-error of .fd-line,
 *                      .fd-error-field, .fd-message (nothing was changed)
 *   .fd-export[data-format=yaml|json|csv]   downloads the knowledge base: the file is
 *                      fetched with the token and offered by a.fd-download[download]
 *                      [data-format] (a blob: URL, kept until the next export)
 *   .fd-versions       the table of versions, newest first: tr.fd-version[data-version]
 *                      [data-current] of version, at, by, change, with .fd-rollback on
 *                      every one but the current (under the change)
 *   .fd-notice[data-error]   the last problem, in words; data-error is the API's error
 *                      code (invalid_request, conflict, forbidden, not_found, too_large,
 *                      unsupported_media_type, …) or network; without it, news
 *
 * Every change (save, delete, import, rollback) reads the knowledge base and its
 * versions again, so the table and the version shown are the server's.
 */
(() => {
  'use strict';

  const RENEW_AT = 0.2; // renew a demo token with less than this share of its life left
  const ID_RE = /^[A-Za-z0-9_-]{1,64}$/; // an entry id (knowledge.Limits.MaxIDChars)
  const EXCERPT = 90; // characters of an answer in the table
  const STORE_KEY = 'fengda-admin';
  const API = '/v1/admin/kb';
  const FIELDS = ['id', 'question', 'alternates', 'answer', 'tags'];
  const TYPES = { yaml: 'application/yaml', yml: 'application/yaml', json: 'application/json', csv: 'text/csv' };

  const TEXT = {
    'zh-CN': {
      title: '管理控制台', brand: '蜂答 Fengda', signinTitle: '登录管理控制台',
      signinLede: '粘贴管理员令牌（role 为 admin 的 JWT，由您的后台签发，或用 fengda token -role admin 生成）。',
      tokenLabel: '管理员令牌', signin: '登录', demoTitle: '演示模式', demoLede: '以演示管理员身份登录演示租户：',
      demoAdmin: (n) => `演示管理员 · ${n}`, signout: '退出登录', whoami: (n, t) => `${n} · ${t}`,
      version: (v) => `版本 ${v}`, kb: '知识库', search: '搜索问题、答案、标签…', searchLabel: '搜索知识库',
      count: (n, all) => (n === all ? `共 ${all} 条` : `${n} / ${all} 条`), newEntry: '新建条目',
      cols: ['ID', '问题', '相似问', '答案', '标签', '更新时间'], none: '知识库为空。', noMatch: '没有匹配的条目。',
      importLabel: '导入文件…', importHint: '.yaml .yml .json .csv', exportLabel: '导出：',
      edit: '编辑条目', create: '新建条目', pick: '从左侧表格中选择一个条目进行编辑，或新建一个条目。',
      id: 'ID', idHint: '1–64 个字符：字母、数字、_ 或 -', question: '标准问题', alternates: '相似问（每行一个）',
      answer: '答案', tags: '标签（用逗号分隔）', save: '保存', delete: '删除', cancel: '取消',
      confirmDelete: '确定删除？', yes: '是', no: '否', confirmRollback: (v) => `回滚到版本 ${v}？`,
      versions: '版本历史', vcols: ['版本', '时间', '操作者', '变更'], rollback: '回滚', current: '当前',
      noVersions: '暂无版本记录。',
      saved: (id, v) => `已保存 ${id}（版本 ${v}）。`, deleted: (id) => `已删除 ${id}。`,
      imported: (n, v) => `已导入 ${n} 条（版本 ${v}）。`, rolledBack: (v, m) => `已回滚到版本 ${v}（当前版本 ${m}）。`,
      importErrors: (f) => `${f} 未导入，知识库未做任何修改：`, ecols: ['行', '字段', '问题'],
      badId: 'ID 须为 1–64 个字符，只能包含字母、数字、_ 和 -。', idTaken: '已存在相同 ID 的条目。',
      fixFields: '条目无效，请按提示修改。', badType: '只能导入 .yaml、.yml、.json 或 .csv 文件。',
      tooLarge: '文件或知识库超出大小限制。', unsupported: '服务器不接受此文件类型。',
      conflict: '知识库刚被其他人修改，已重新加载，请再试一次。', notFound: '该条目或版本已不存在。',
      noApi: '此服务器没有知识库管理接口（404）。',
      notAdmin: '此令牌不是管理员令牌，管理接口拒绝了它（403）。请使用 role 为 admin 的令牌登录。',
      expired: '令牌被拒绝（已过期或无效），请重新登录。', badToken: '这看起来不是令牌（JWT 由两个点分隔的三段组成）。',
      invalid: '请求无效，请修改后重试。', rate: '请求过于频繁，请稍后再试。', busy: '服务繁忙，请稍后再试。',
      network: '无法连接服务器，请稍后再试。', demoFailed: '无法获取演示令牌。', ref: '编号 ', dismiss: '关闭提示',
      exported: (f) => `已导出 ${f}。`,
    },
    en: {
      title: 'Admin console', brand: 'Fengda 蜂答', signinTitle: 'Sign in to the admin console',
      signinLede: 'Paste an admin token: a JWT with "role":"admin" from your backend, or from fengda token -role admin.',
      tokenLabel: 'Admin token', signin: 'Sign in', demoTitle: 'Demo mode', demoLede: 'Sign in as a demo admin of a demo tenant:',
      demoAdmin: (n) => `Demo admin · ${n}`, signout: 'Sign out', whoami: (n, t) => `${n} · ${t}`,
      version: (v) => `Version ${v}`, kb: 'Knowledge base', search: 'Search questions, answers, tags…', searchLabel: 'Search the knowledge base',
      count: (n, all) => (n === all ? `${all} entries` : `${n} of ${all} entries`), newEntry: 'New entry',
      cols: ['ID', 'Question', 'Alternates', 'Answer', 'Tags', 'Updated'], none: 'The knowledge base is empty.', noMatch: 'No entry matches.',
      importLabel: 'Import a file…', importHint: '.yaml .yml .json .csv', exportLabel: 'Export:',
      edit: 'Edit entry', create: 'New entry', pick: 'Pick an entry in the table to edit it, or make a new one.',
      id: 'ID', idHint: '1–64 characters: letters, digits, _ or -', question: 'Question', alternates: 'Alternates (one per line)',
      answer: 'Answer', tags: 'Tags (comma-separated)', save: 'Save', delete: 'Delete', cancel: 'Cancel',
      confirmDelete: 'Delete?', yes: 'Yes', no: 'No', confirmRollback: (v) => `Roll back to version ${v}?`,
      versions: 'Versions', vcols: ['Version', 'At', 'By', 'Change'], rollback: 'Roll back', current: 'current',
      noVersions: 'No versions yet.',
      saved: (id, v) => `Saved ${id} (version ${v}).`, deleted: (id) => `Deleted ${id}.`,
      imported: (n, v) => `Imported ${n} entries (version ${v}).`, rolledBack: (v, m) => `Rolled back to version ${v} (now version ${m}).`,
      importErrors: (f) => `${f} was not imported; nothing was changed:`, ecols: ['Line', 'Field', 'Problem'],
      badId: 'The id must be 1 to 64 characters: letters, digits, _ and - only.', idTaken: 'An entry with this id exists.',
      fixFields: 'The entry was refused: see the fields.', badType: 'Only .yaml, .yml, .json and .csv files can be imported.',
      tooLarge: 'The file or the knowledge base is over its size limit.', unsupported: 'The server does not take this type of file.',
      conflict: 'Someone else changed the knowledge base just now; it was read again. Try once more.',
      notFound: 'That entry or version no longer exists.', noApi: 'This server has no knowledge base API (404).',
      notAdmin: "This is not an admin's token: the admin API refused it (403). Sign in with a token whose role is admin.",
      expired: 'The token was refused (expired or not valid). Sign in again.',
      badToken: 'That does not look like a token (a JWT is three parts separated by dots).',
      invalid: 'The request was refused as invalid.', rate: 'Too many requests; try again in a moment.',
      busy: 'The service is busy; try again in a moment.', network: 'The server could not be reached; try again.',
      demoFailed: 'No demo token could be had.', ref: 'Ref. ', dismiss: 'Dismiss', exported: (f) => `Exported ${f}.`,
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
    constructor(status, code, message, requestId, errors) {
      super(message || code);
      Object.assign(this, { status, code, requestId, errors: errors || [] });
    }
  }

  /** The API's error of res: its code, message, request id and, for a refused entry or file, its problems. */
  async function apiError(res) {
    let body = {};
    try { body = (await res.json()) || {}; } catch (_) { /* not our JSON */ }
    const e = body.error || {};
    return new ApiError(res.status, e.code || 'http_' + res.status, e.message, e.request_id, Array.isArray(body.errors) ? body.errors : []);
  }

  /** Text folded for search: full-width forms to half-width (ＡＢＣ, １２３), any case. */
  const fold = (s) => String(s || '').normalize('NFKC').toLocaleLowerCase();
  const chars = (s) => [...s];
  const excerpt = (s) => {
    const c = chars(String(s || '').replace(/\s+/g, ' ').trim());
    return c.length > EXCERPT ? c.slice(0, EXCERPT - 1).join('') + '…' : c.join('');
  };
  /** The field an error names: "alternates[2]" and "alternates.2" are the alternates'. */
  const fieldOf = (f) => {
    const base = String(f || '').replace(/[[.].*$/, '');
    return FIELDS.includes(base) ? base : 'entry';
  };
  const lines = (s) => s.split(/\r\n|\n|\r/).map((l) => l.trim()).filter(Boolean);
  const tagList = (s) => s.split(/[,，、]/).map((x) => x.trim()).filter(Boolean);

  class Console {
    constructor(root) {
      this.root = root;
      this.lang = pickLang();
      this.t = TEXT[this.lang];
      this.tokenUrl = root.dataset.tokenUrl || '/v1/demo/token';
      try { this.demo = JSON.parse(root.dataset.demoTenants || '[]'); } catch (_) { this.demo = []; }
      this.entries = []; // the knowledge base, in its order
      this.version = null;
      this.selected = ''; // the id in the form; '' for none or a new entry
      this.mode = ''; // '' (nothing in the form), 'edit' or 'new'
      this.epoch = 0; // one more at every sign-in and sign-out: late answers of the last are dropped
      this.loadGen = 0;
      document.documentElement.lang = this.lang;
      document.title = this.t.title + ' · Fengda 蜂答';
      const saved = store.get();
      if (saved && saved.token) this.signIn(saved);
      else this.showSignIn();
    }

    // ---- signing in and out ----------------------------------------------------

    showSignIn(message, code) {
      const t = this.t;
      this.root.dataset.state = 'signed-out';
      delete this.root.dataset.tenant;
      delete this.root.dataset.version;
      delete this.root.dataset.busy;
      this.root.textContent = '';
      this.root.append(this.topbar(false));
      const main = this.root.appendChild(el('main', 'fd-signin-page'));
      const card = main.appendChild(el('section', 'fd-card fd-signin-card', { 'aria-labelledby': 'fd-signin-title' }));
      card.append(el('h1', '', { id: 'fd-signin-title' }, t.signinTitle));
      this.noticeEl = card.appendChild(this.noticeBox());
      if (message) this.notice(message, code);
      const form = card.appendChild(el('form', 'fd-signin-form', { id: 'fd-admin-signin', novalidate: '' }));
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
          const b = row.appendChild(el('button', 'fd-btn fd-demo-admin', { type: 'button', 'data-demo-tenant': d.id }, t.demoAdmin(d.name)));
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

    /** A demo admin's token; with old (still valid), for the same admin. */
    async fetchDemoToken(tenant, old) {
      const headers = { 'Content-Type': 'application/json', Accept: 'application/json' };
      if (old && Date.now() < old.expires - 2000) headers.Authorization = 'Bearer ' + old.token;
      const post = () => fetch(this.tokenUrl, {
        method: 'POST', headers, body: JSON.stringify({ tenant, role: 'admin' }), credentials: 'same-origin', cache: 'no-store',
      });
      let res = await post();
      if (res.status === 401 && headers.Authorization) { // the old token was refused: a new admin it is
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
      this.entries = [];
      this.version = null;
      this.selected = '';
      this.mode = '';
      const c = auth.claims || {};
      this.root.dataset.state = 'signed-in';
      this.root.dataset.tenant = c.tid || '';
      delete this.root.dataset.version;
      this.render();
      this.scheduleRenew();
      this.refresh();
    }

    signOut(message, code) {
      this.epoch++;
      clearTimeout(this.renewTimer);
      this.auth = null;
      store.del();
      this.dropDownload();
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
          }
          return next.token;
        }).finally(() => { this.renewing = null; });
      }
      return this.renewing;
    }

    /** Renews a demo token before it runs low, while it can still name the same admin. */
    scheduleRenew() {
      clearTimeout(this.renewTimer);
      const a = this.auth;
      if (!a || !a.demo) return;
      const at = a.expires - RENEW_AT * (a.expires - a.issued) + 1000;
      this.renewTimer = setTimeout(() => this.token().catch(() => { /* the next call tries again */ }), Math.max(at - Date.now(), 1000));
    }

    /**
     * Fetches path with the admin's token. A refused demo token is renewed once; a
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
          this.signOut(err.code === 'forbidden' ? this.t.notAdmin : this.t.expired, err.code);
          err.handled = true;
        }
        throw err;
      }
      return res;
    }

    /** Calls the API; body is sent as JSON unless it is a Blob (a file, with its type). */
    async json(method, path, body, type) {
      const init = { method };
      if (body instanceof Blob) {
        init.body = body;
        init.headers = { 'Content-Type': type };
      } else if (body !== undefined) {
        init.body = JSON.stringify(body);
        init.headers = { 'Content-Type': 'application/json' };
      }
      const res = await this.call(path, init);
      if (!res.ok) throw await apiError(res);
      return res.status === 204 ? null : res.json();
    }

    // ---- notices ---------------------------------------------------------------

    noticeBox() {
      const box = el('div', 'fd-notice', { role: 'alert', hidden: '' });
      box.append(el('span', 'fd-notice-text'));
      box.appendChild(el('button', 'fd-notice-close', { type: 'button', 'aria-label': this.t.dismiss, title: this.t.dismiss }, '×'))
        .addEventListener('click', () => this.clearNotice());
      return box;
    }

    /** Shows a notice; code marks it data-error (an error code), none: news. */
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

    /** Shows what went wrong with a call, in the admin's words. */
    fail(err, fallback) {
      if (err.handled || err.name === 'AbortError' || err.code === 'signed_out') return;
      const t = this.t;
      if (!(err instanceof ApiError)) {
        this.notice(fallback || t.network, 'network');
        return;
      }
      const s = err.status;
      const text = s === 409 ? t.conflict : s === 404 ? t.notFound : s === 413 ? t.tooLarge : s === 415 ? t.unsupported
        : s === 400 ? err.message || t.invalid : s === 429 ? t.rate : fallback || t.busy;
      this.notice(text, err.code, err.requestId);
    }

    // ---- reading -----------------------------------------------------------------

    /**
     * Reads the knowledge base and its versions again; of reads that overlap, the last
     * one's are kept. reform: the entry in the form may have changed (an import, a
     * rollback), so the form shows it afresh.
     */
    async refresh(reform) {
      const epoch = this.epoch;
      const gen = ++this.loadGen;
      this.root.dataset.busy = 'true';
      try {
        const [kb, vs] = await Promise.all([this.json('GET', API), this.json('GET', API + '/versions').catch((err) => err)]);
        if (this.epoch !== epoch || gen !== this.loadGen) return;
        this.entries = Array.isArray(kb.entries) ? kb.entries : [];
        this.setVersion(kb.version);
        this.renderTable();
        if (this.mode === 'edit' && !this.entries.some((e) => e.id === this.selected)) this.closeForm();
        else if (reform && this.mode === 'edit') this.renderForm();
        if (vs instanceof Error) throw vs;
        this.renderVersions(Array.isArray(vs.versions) ? vs.versions : []);
      } catch (err) {
        if (this.epoch !== epoch || gen !== this.loadGen) return;
        if (err.status === 404 && !err.handled) this.notice(this.t.noApi, err.code, err.requestId);
        else this.fail(err);
      } finally {
        if (this.epoch === epoch && gen === this.loadGen) delete this.root.dataset.busy;
      }
    }

    setVersion(v) {
      if (v === undefined || v === null) return;
      this.version = v;
      this.root.dataset.version = String(v);
      if (this.versionEl) {
        this.versionEl.textContent = this.t.version(v);
        this.versionEl.hidden = false;
      }
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
      this.versionEl = right.appendChild(el('span', 'fd-kb-version', { role: 'status', hidden: '' }));
      right.append(el('span', 'fd-whoami', {}, t.whoami(c.name || c.sub || '?', c.tid || '?')));
      right.appendChild(el('button', 'fd-btn fd-ghost fd-signout', { type: 'button' }, t.signout))
        .addEventListener('click', () => this.signOut());
      return bar;
    }

    render() {
      const t = this.t;
      this.root.textContent = '';
      this.root.append(this.topbar(true));
      this.noticeEl = this.root.appendChild(this.noticeBox());
      const main = this.root.appendChild(el('main', 'fd-work'));

      // The knowledge base: search, new, files, the table.
      const kb = main.appendChild(el('section', 'fd-section fd-kb-section', { 'aria-labelledby': 'fd-kb-title' }));
      kb.append(el('h2', 'fd-section-title', { id: 'fd-kb-title' }, t.kb));
      const bar = kb.appendChild(el('div', 'fd-toolbar'));
      this.searchEl = el('input', 'fd-search', {
        type: 'search', id: 'fd-search', placeholder: t.search, autocomplete: 'off', spellcheck: 'false', 'aria-controls': 'fd-kb',
      });
      this.countEl = el('span', 'fd-count', { 'aria-live': 'polite' });
      const newBtn = el('button', 'fd-btn fd-primary fd-new', { type: 'button' }, t.newEntry);
      bar.append(el('label', 'fd-sr', { for: 'fd-search' }, t.searchLabel), this.searchEl, this.countEl, newBtn);
      this.searchEl.addEventListener('input', () => this.filter());
      newBtn.addEventListener('click', () => this.openNew());

      const files = kb.appendChild(el('div', 'fd-files'));
      this.importEl = el('input', 'fd-import', {
        type: 'file', id: 'fd-import', accept: '.yaml,.yml,.json,.csv,application/yaml,application/json,text/csv',
      });
      files.append(this.importEl, el('label', 'fd-btn fd-small fd-import-label', { for: 'fd-import' }, t.importLabel),
        el('span', 'fd-hint', {}, t.importHint), el('span', 'fd-files-gap'), el('span', '', {}, t.exportLabel));
      this.importEl.addEventListener('change', () => this.importFile());
      for (const f of ['yaml', 'json', 'csv']) {
        files.appendChild(el('button', 'fd-btn fd-small fd-export', { type: 'button', 'data-format': f }, f.toUpperCase()))
          .addEventListener('click', (e) => this.exportAs(f, e.currentTarget));
      }
      this.importErrorsEl = kb.appendChild(el('div', 'fd-import-errors', { role: 'alert', hidden: '' }));

      const wrap = kb.appendChild(el('div', 'fd-table-wrap'));
      const table = wrap.appendChild(el('table', 'fd-table fd-kb', { id: 'fd-kb', 'aria-labelledby': 'fd-kb-title' }));
      const head = table.appendChild(el('thead')).appendChild(el('tr'));
      for (const c of t.cols) head.appendChild(el('th', '', { scope: 'col' }, c));
      this.tbody = table.appendChild(el('tbody'));
      this.emptyEl = wrap.appendChild(el('p', 'fd-empty', { hidden: '' }));

      // The form and the versions.
      const side = main.appendChild(el('div', 'fd-side'));
      this.formSection = side.appendChild(el('section', 'fd-section', { 'aria-labelledby': 'fd-edit-title' }));
      this.versionsSection = side.appendChild(el('section', 'fd-section', { 'aria-labelledby': 'fd-versions-title' }));
      this.versionsSection.append(el('h2', 'fd-section-title', { id: 'fd-versions-title' }, t.versions));
      const vwrap = this.versionsSection.appendChild(el('div', 'fd-table-wrap fd-versions-wrap'));
      const vt = vwrap.appendChild(el('table', 'fd-table fd-versions', { 'aria-labelledby': 'fd-versions-title' }));
      const vhead = vt.appendChild(el('thead')).appendChild(el('tr'));
      for (const c of t.vcols) vhead.appendChild(el('th', '', { scope: 'col' }, c));
      this.vbody = vt.appendChild(el('tbody'));
      this.renderTable();
      this.renderForm();
    }

    /** Builds the table's rows from the entries; the search hides those that do not match. */
    renderTable() {
      if (!this.tbody) return;
      const t = this.t;
      const focused = document.activeElement && document.activeElement.classList.contains('fd-entry') ? document.activeElement.dataset.id : '';
      this.tbody.textContent = '';
      this.rows = [];
      for (const e of this.entries) {
        const tr = el('tr', 'fd-entry', { 'data-id': e.id, tabindex: '0', 'aria-selected': String(this.mode === 'edit' && e.id === this.selected) });
        const alts = Array.isArray(e.alternates) ? e.alternates : [];
        const tags = Array.isArray(e.tags) ? e.tags : [];
        tr.append(el('td', 'fd-cell-id', {}, e.id), el('td', 'fd-cell-question', {}, e.question || ''),
          el('td', 'fd-cell-alternates', {}, String(alts.length)), el('td', 'fd-cell-answer', {}, excerpt(e.answer)));
        const tagCell = tr.appendChild(el('td', 'fd-cell-tags'));
        for (const g of tags) tagCell.appendChild(el('span', 'fd-tag', {}, g));
        const upd = tr.appendChild(el('td', 'fd-cell-updated'));
        if (e.updated_at) upd.appendChild(el('time', '', { datetime: e.updated_at }, this.when(e.updated_at)));
        tr.addEventListener('click', () => this.openEntry(e.id));
        tr.addEventListener('keydown', (ev) => {
          if (ev.target === tr && (ev.key === 'Enter' || ev.key === ' ')) {
            ev.preventDefault();
            this.openEntry(e.id);
          }
        });
        this.rows.push({ tr, text: fold([e.id, e.question, ...alts, e.answer, ...tags].join('\n')) });
        this.tbody.appendChild(tr);
      }
      this.filter();
      if (focused) {
        const again = this.tbody.querySelector(`tr.fd-entry[data-id="${CSS.escape(focused)}"]`);
        if (again) again.focus();
      }
    }

    /** Shows the rows whose text holds every word of the search, in any case. */
    filter() {
      if (!this.rows) return;
      const words = fold(this.searchEl.value).split(/\s+/).filter(Boolean);
      let shown = 0;
      for (const r of this.rows) {
        const ok = words.every((w) => r.text.includes(w));
        r.tr.hidden = !ok;
        if (ok) shown++;
      }
      this.countEl.textContent = this.t.count(shown, this.rows.length);
      this.emptyEl.textContent = this.rows.length ? this.t.noMatch : this.t.none;
      this.emptyEl.hidden = shown > 0;
    }

    markSelected() {
      for (const r of this.rows || []) r.tr.setAttribute('aria-selected', String(this.mode === 'edit' && r.tr.dataset.id === this.selected));
    }

    when(iso) {
      const d = new Date(iso);
      if (Number.isNaN(d.getTime())) return String(iso || '');
      const sameYear = d.getFullYear() === new Date().getFullYear();
      return d.toLocaleString(this.lang, { year: sameYear ? undefined : 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
    }

    // ---- the form --------------------------------------------------------------

    openEntry(id) {
      this.clearNotice();
      this.mode = 'edit';
      this.selected = id;
      this.markSelected();
      this.renderForm();
    }

    openNew() {
      this.clearNotice();
      this.mode = 'new';
      this.selected = '';
      this.markSelected();
      this.renderForm();
      if (this.inputs) this.inputs.id.focus();
    }

    closeForm() {
      this.mode = '';
      this.selected = '';
      this.markSelected();
      this.renderForm();
    }

    /** Builds the form on the selected entry (or a new one), or the hint when there is none. */
    renderForm() {
      const t = this.t;
      const sec = this.formSection;
      if (!sec) return;
      sec.textContent = '';
      this.inputs = null;
      const entry = this.mode === 'edit' ? this.entries.find((e) => e.id === this.selected) : null;
      sec.append(el('h2', 'fd-section-title', { id: 'fd-edit-title' }, this.mode === 'new' ? t.create : t.edit));
      if (!this.mode || (this.mode === 'edit' && !entry)) {
        sec.appendChild(el('p', 'fd-pick', {}, t.pick));
        return;
      }
      const form = sec.appendChild(el('form', 'fd-edit', { 'data-mode': this.mode, 'data-id': entry ? entry.id : '', novalidate: '' }));
      const errs = {};
      const field = (name, label, node, hint) => {
        node.id = 'fd-f-' + name;
        node.classList.add('fd-field');
        form.append(el('label', 'fd-label', { for: node.id }, label), node);
        if (hint) form.append(el('span', 'fd-hint', { id: node.id + '-hint' }, hint));
        errs[name] = form.appendChild(el('p', 'fd-field-error', { 'data-field': name, id: node.id + '-error', hidden: '' }));
        node.setAttribute('aria-describedby', (hint ? node.id + '-hint ' : '') + node.id + '-error');
        return node;
      };
      const inputs = {
        id: field('id', t.id, el('input', 'fd-id', { type: 'text', autocomplete: 'off', spellcheck: 'false', maxlength: '64' }), this.mode === 'new' ? t.idHint : ''),
        question: field('question', t.question, el('input', 'fd-question', { type: 'text', autocomplete: 'off' })),
        alternates: field('alternates', t.alternates, el('textarea', 'fd-alternates', { rows: '4' })),
        answer: field('answer', t.answer, el('textarea', 'fd-answer', { rows: '7' })),
        tags: field('tags', t.tags, el('input', 'fd-tags', { type: 'text', autocomplete: 'off' })),
      };
      errs.entry = form.appendChild(el('p', 'fd-field-error', { 'data-field': 'entry', hidden: '' }));
      if (entry) {
        inputs.id.value = entry.id;
        inputs.id.readOnly = true;
        inputs.question.value = entry.question || '';
        inputs.alternates.value = (entry.alternates || []).join('\n');
        inputs.answer.value = entry.answer || '';
        inputs.tags.value = (entry.tags || []).join(', ');
      }
      const actions = form.appendChild(el('div', 'fd-actions'));
      this.saveBtn = actions.appendChild(el('button', 'fd-btn fd-primary fd-save', { type: 'submit' }, t.save));
      actions.appendChild(el('button', 'fd-btn fd-cancel', { type: 'button' }, t.cancel)).addEventListener('click', () => this.closeForm());
      actions.appendChild(el('span', 'fd-actions-gap'));
      if (entry) {
        const del = actions.appendChild(el('button', 'fd-btn fd-danger fd-delete', { type: 'button' }, t.delete));
        del.addEventListener('click', () => this.confirm(del, t.confirmDelete, () => this.remove(entry.id)));
      }
      form.addEventListener('submit', (e) => { e.preventDefault(); this.save(); });
      for (const [name, node] of Object.entries(inputs)) node.addEventListener('input', () => this.fieldError(name, ''));
      this.inputs = inputs;
      this.errs = errs;
      this.form = form;
    }

    /** Shows (or, with '', clears) the problem of one field. */
    fieldError(name, text) {
      const e = this.errs && this.errs[name];
      if (!e) return;
      e.textContent = text;
      e.hidden = !text;
      const input = this.inputs && this.inputs[name];
      if (input) {
        if (text) input.setAttribute('aria-invalid', 'true');
        else input.removeAttribute('aria-invalid');
      }
    }

    clearFieldErrors() {
      for (const name of [...FIELDS, 'entry']) this.fieldError(name, '');
    }

    /**
     * Replaces button with "<question> Yes / No" until one is chosen; Yes runs action.
     * No modal dialog is opened: it would block the page, and tests cannot answer one.
     */
    confirm(button, question, action) {
      const t = this.t;
      const box = el('span', 'fd-confirm', { role: 'group', 'aria-label': question });
      const yes = el('button', 'fd-btn fd-small fd-danger fd-confirm-yes', { type: 'button' }, t.yes);
      const no = el('button', 'fd-btn fd-small fd-confirm-no', { type: 'button' }, t.no);
      box.append(el('span', '', {}, question), yes, no);
      button.hidden = true;
      button.after(box);
      const done = () => {
        box.remove();
        button.hidden = false;
      };
      yes.addEventListener('click', () => {
        done();
        action();
      });
      no.addEventListener('click', () => {
        done();
        button.focus();
      });
      no.focus();
    }

    /** Sends the form: PUT of the entry; a refused one's problems go next to its fields. */
    async save() {
      const t = this.t;
      const inp = this.inputs;
      if (!inp || this.saving) return;
      this.clearNotice();
      this.clearFieldErrors();
      const id = inp.id.value.trim();
      const isNew = this.mode === 'new';
      if (isNew) {
        if (!ID_RE.test(id)) {
          this.fieldError('id', t.badId);
          inp.id.focus();
          return;
        }
        if (this.entries.some((e) => e.id === id)) {
          this.fieldError('id', t.idTaken);
          inp.id.focus();
          return;
        }
      }
      const body = {
        question: inp.question.value.trim(),
        alternates: lines(inp.alternates.value),
        answer: inp.answer.value.trim(),
        tags: tagList(inp.tags.value),
      };
      this.saving = true;
      this.saveBtn.disabled = true;
      const epoch = this.epoch;
      try {
        const r = await this.json('PUT', `${API}/entries/${encodeURIComponent(id)}`, body);
        if (this.epoch !== epoch) return;
        const saved = r.entry || Object.assign({ id }, body);
        const i = this.entries.findIndex((e) => e.id === saved.id);
        if (i >= 0) this.entries[i] = saved;
        else this.entries.push(saved);
        this.setVersion(r.version);
        this.mode = 'edit';
        this.selected = saved.id;
        this.renderTable();
        this.renderForm();
        this.notice(t.saved(saved.id, r.version));
        this.refresh();
      } catch (err) {
        if (this.epoch !== epoch) return;
        if (err.status === 400 && err.errors.length) {
          for (const fe of err.errors) {
            const name = fieldOf(fe.field);
            const e = this.errs[name];
            const text = fe.message || t.invalid;
            this.fieldError(name, e && e.textContent ? e.textContent + ' ' + text : text);
          }
          const first = FIELDS.find((f) => this.errs[f] && !this.errs[f].hidden);
          if (first && this.inputs[first]) this.inputs[first].focus();
          this.notice(t.fixFields, err.code, err.requestId);
        } else {
          this.fail(err);
          if (err.status === 409) this.refresh();
        }
      } finally {
        this.saving = false;
        if (this.saveBtn) this.saveBtn.disabled = false;
      }
    }

    async remove(id) {
      this.clearNotice();
      const epoch = this.epoch;
      try {
        await this.json('DELETE', `${API}/entries/${encodeURIComponent(id)}`);
        if (this.epoch !== epoch) return;
        this.entries = this.entries.filter((e) => e.id !== id);
        this.closeForm();
        this.renderTable();
        this.notice(this.t.deleted(id));
      } catch (err) {
        this.fail(err);
      }
      if (this.epoch === epoch) this.refresh();
    }

    // ---- files -----------------------------------------------------------------

    /** Sends the chosen file with the Content-Type of its extension; a refusal's problems go in a table. */
    async importFile() {
      const t = this.t;
      const file = this.importEl.files && this.importEl.files[0];
      this.importEl.value = ''; // the same file may be chosen again
      if (!file) return;
      this.clearNotice();
      this.showImportErrors('', []);
      const ext = (/\.([A-Za-z0-9]+)$/.exec(file.name) || [])[1];
      const type = TYPES[(ext || '').toLowerCase()];
      if (!type) {
        this.notice(t.badType, 'unsupported_media_type');
        return;
      }
      const epoch = this.epoch;
      try {
        const r = await this.json('POST', API + '/import', file, type);
        if (this.epoch !== epoch) return;
        this.setVersion(r.version);
        this.notice(t.imported(r.entries, r.version));
        this.refresh(true);
      } catch (err) {
        if (this.epoch !== epoch) return;
        if (err.status === 400 && err.errors.length) {
          this.showImportErrors(file.name, err.errors);
          this.notice(err.message || t.invalid, err.code, err.requestId);
        } else {
          this.fail(err);
          this.refresh();
        }
      }
    }

    showImportErrors(name, errors) {
      const box = this.importErrorsEl;
      const t = this.t;
      box.textContent = '';
      box.hidden = !errors.length;
      if (!errors.length) return;
      box.append(el('h3', '', {}, t.importErrors(name)));
      const table = box.appendChild(el('table', 'fd-table'));
      const head = table.appendChild(el('thead')).appendChild(el('tr'));
      for (const c of t.ecols) head.appendChild(el('th', '', { scope: 'col' }, c));
      const body = table.appendChild(el('tbody'));
      for (const e of errors) {
        const tr = body.appendChild(el('tr', 'fd-import-error', { 'data-line': e.line ? String(e.line) : '' }));
        tr.append(el('td', 'fd-line', {}, e.line ? String(e.line) : '–'), el('td', 'fd-error-field', {}, e.field || ''),
          el('td', 'fd-message', {}, e.message || ''));
      }
    }

    /**
     * Downloads the knowledge base in format: fetched with the token (a plain link could
     * not send it), then offered through an <a download> of a blob: URL.
     */
    async exportAs(format, button) {
      const t = this.t;
      this.clearNotice();
      button.disabled = true;
      const epoch = this.epoch;
      try {
        const res = await this.call(`${API}/export?format=${encodeURIComponent(format)}`, { headers: { Accept: '*/*' } });
        if (!res.ok) throw await apiError(res);
        const blob = await res.blob();
        if (this.epoch !== epoch) return;
        const cd = res.headers.get('Content-Disposition') || '';
        const m = /filename\*=UTF-8''([^;]+)/i.exec(cd) || /filename="?([^";]+)"?/i.exec(cd);
        let name = `kb-${this.root.dataset.tenant || 'tenant'}-v${this.version}.${format}`;
        if (m) {
          try { name = decodeURIComponent(m[1]); } catch (_) { name = m[1]; }
        }
        name = name.replace(/[\\/]/g, '_');
        this.dropDownload();
        const a = el('a', 'fd-download', { href: URL.createObjectURL(blob), download: name, 'data-format': format, hidden: '' });
        this.root.appendChild(a);
        this.download = a;
        a.click();
        this.notice(t.exported(name));
      } catch (err) {
        this.fail(err);
      } finally {
        button.disabled = false;
      }
    }

    dropDownload() {
      if (!this.download) return;
      URL.revokeObjectURL(this.download.href);
      this.download.remove();
      this.download = null;
    }

    // ---- versions --------------------------------------------------------------

    renderVersions(versions) {
      const t = this.t;
      const body = this.vbody;
      if (!body) return;
      body.textContent = '';
      if (!versions.length) {
        body.appendChild(el('tr')).appendChild(el('td', 'fd-empty', { colspan: '4' }, t.noVersions));
        return;
      }
      for (const v of versions) {
        const current = v.version === this.version;
        const tr = body.appendChild(el('tr', 'fd-version', { 'data-version': String(v.version), 'data-current': String(current) }));
        const at = el('td');
        if (v.at) at.appendChild(el('time', '', { datetime: v.at }, this.when(v.at)));
        const num = el('td', '', {}, String(v.version));
        if (current) num.appendChild(el('span', 'fd-current', {}, t.current));
        const by = el('td');
        by.appendChild(el('span', 'fd-version-by', { title: v.by || '' }, v.by || ''));
        const cell = el('td');
        cell.appendChild(el('span', 'fd-version-change', {}, v.change || ''));
        tr.append(num, at, by, cell);
        if (!current) {
          const b = cell.appendChild(el('button', 'fd-btn fd-small fd-rollback', { type: 'button' }, t.rollback));
          b.addEventListener('click', () => this.confirm(b, t.confirmRollback(v.version), () => this.rollback(v.version)));
        }
      }
    }

    async rollback(version) {
      this.clearNotice();
      const epoch = this.epoch;
      try {
        const r = await this.json('POST', API + '/rollback', { version });
        if (this.epoch !== epoch) return;
        this.setVersion(r.version);
        this.notice(this.t.rolledBack(version, r.version));
      } catch (err) {
        this.fail(err);
      }
      if (this.epoch === epoch) this.refresh(true);
    }
  }

  const start = () => {
    const root = document.getElementById('fd-admin');
    if (root) new Console(root); // eslint-disable-line no-new
  };
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start, { once: true });
  else start();
})();
