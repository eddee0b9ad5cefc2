package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	stdlog "log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"go.yaml.in/yaml/v3"

	"github.com/fengda-ai/fengda/nlpclient/openai/openaitest"
)

// The browser tests run the whole program and drive Chromium against it: the demo page,
// the widget embedded in pages of other origins, and what a user sees and does there.

const (
	browserStep  = 20 * time.Second // bound on one browser step
	browserStart = 30 * time.Second // bound on starting the browser or a tab
)

// chromiumPath returns the browser to drive: $FENGDA_CHROMIUM, else Debian's Chromium.
// Without one the test is skipped, or fails in CI.
func chromiumPath(t *testing.T) string {
	t.Helper()
	p := os.Getenv("FENGDA_CHROMIUM")
	if p == "" {
		p = "/usr/bin/chromium"
	}
	if _, err := os.Stat(p); err != nil {
		msg := fmt.Sprintf("no browser at %s (%v); install one with: apt-get install chromium fonts-noto-cjk (or set FENGDA_CHROMIUM)", p, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}

// browserSite is the program under test and the pages around it.
type browserSite struct {
	base    string // the program
	embed   string // a page of another origin, allowed by every tenant
	foreign string // a page of an origin no tenant allows
	browser context.Context
}

// siteAPIKeys are the API keys of the tenants that are not on the demo page: a tenant's
// own site gets their users' tokens with them (see embedSite).
var siteAPIKeys = map[string]string{
	"tiny-limit": "TEST-ONLY-tiny-limit-api-key-0001",
	"slow-model": "TEST-ONLY-slow-model-api-key-0001",
	"no-handoff": "TEST-ONLY-no-handoff-api-key-0001",
}

// embedSite is a tenant's own web site, of another origin than the program: its page
// embeds the widget with the one tag, pointing at the program (base). /?tenant=<id>
// picks the tenant (default northwind-shop, with demo tokens) and &api=<url> another way
// to reach the program (a proxy: the widget and its API come from there); a tenant of siteAPIKeys
// gets its tokens from the site's own backend, POST /token, which exchanges the API key
// for a user token as a real tenant's backend does.
func embedSite(base *atomic.Value) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		api, _ := base.Load().(string)
		if via := r.URL.Query().Get("api"); via != "" {
			api = via
		}
		tenantID := r.URL.Query().Get("tenant")
		if tenantID == "" {
			tenantID = "northwind-shop"
		}
		tokenURL := api + "/v1/demo/token"
		if siteAPIKeys[tenantID] != "" {
			tokenURL = "/token"
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Northwind Outfitters</title><link rel="icon" href="data:,">
<style>
body{margin:0;font:16px/1.6 system-ui,sans-serif;color:#2b2118;background:#faf7f2}
header{padding:20px 40px;background:#2b2118;color:#fff;display:flex;justify-content:space-between;align-items:center}
header a{color:#f3d9b1}main{padding:40px;max-width:760px}h1{margin:0;font-size:24px}
.hero{height:220px;border-radius:16px;background:linear-gradient(135deg,#c98b52,#7a4a2a);margin-bottom:24px}
</style></head>
<body>
<header><h1>Northwind Outfitters</h1><a href="#collection">Autumn collection</a></header>
<main id="collection"><div class="hero"></div><h2>Warm layers for the trail and the city</h2>
<p>Merino base layers, down jackets and waterproof boots, shipped free over $75.</p></main>
<script>window.keysBefore = Object.keys(window);</script>
<script src="%s/widget.js" data-tenant="%s" data-token-url="%s"></script>
</body></html>`, api, tenantID, tokenURL)
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Tenant string `json:"tenant"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || siteAPIKeys[req.Tenant] == "" {
			http.Error(w, `{"error":{"code":"not_found","message":"no such tenant"}}`, http.StatusNotFound)
			return
		}
		api, _ := base.Load().(string)
		user := fmt.Sprintf("site-user-%d", time.Now().UnixNano())
		up, _ := http.NewRequestWithContext(r.Context(), "POST", api+"/v1/tokens", strings.NewReader(`{"user_id":"`+user+`","ttl_seconds":600}`))
		up.Header.Set("Content-Type", "application/json")
		up.Header.Set("X-API-Key", siteAPIKeys[req.Tenant])
		resp, err := http.DefaultClient.Do(up)
		if err != nil {
			http.Error(w, `{"error":{"code":"unavailable","message":"token service down"}}`, http.StatusServiceUnavailable)
			return
		}
		defer resp.Body.Close()
		if ra := resp.Header.Get("Retry-After"); ra != "" {
			w.Header().Set("Retry-After", ra)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	})
	return mux
}

// slowModel stands in for an OpenAI-compatible model that writes its answer slowly.
const slowAnswer = "Our flagship store opens at nine and closes at six, every day of the week."

// A question with "flaky" in it is refused (400, which the engine does not retry) the
// first time it is asked, so that the tenant's fallback answer is given.
func slowModel(t *testing.T) *httptest.Server {
	var mu sync.Mutex
	asked := map[string]bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, ok := openaitest.ReadRequest(w, r)
		if !ok {
			return
		}
		if q := req.Last(); strings.Contains(q, "flaky") {
			mu.Lock()
			again := asked[q]
			asked[q] = true
			mu.Unlock()
			if !again {
				http.Error(w, `{"error":{"message":"bad request"}}`, http.StatusBadRequest)
				return
			}
		}
		if !req.Stream {
			openaitest.WriteAnswer(w, slowAnswer)
			return
		}
		st := openaitest.NewStream(w)
		for piece := range strings.SplitAfterSeq(slowAnswer, " ") {
			if st.Delta(piece) != nil {
				return
			}
			select {
			case <-time.After(120 * time.Millisecond):
			case <-r.Context().Done():
				return
			}
		}
		st.Done()
	}))
	t.Cleanup(srv.Close)
	return srv
}

// browserConfig is the demo configuration with the pages of origin allowed (and the
// bank's API key, for its agents' tokens), plus three tenants off the demo page: one with
// a tiny rate limit, one answered by the model stand-in at model, one without handoff.
func browserConfig(t *testing.T, origin, model string) string {
	t.Helper()
	key := func(id string) string {
		return `keys: [{kid: demo-1, alg: HS256, secret: {value: "DEMO-ONLY-` + id + `-jwt-secret-not-for-production"}}]`
	}
	dir := t.TempDir()
	// A knowledge base names its tenant: the extra tenants get copies of the shop's.
	shopKB, err := os.ReadFile("kb/shop-en.yaml")
	if err != nil {
		t.Fatal(err)
	}
	kbFor := func(id string) string {
		p := filepath.Join(dir, id+".yaml")
		body := strings.Replace(string(shopKB), `tenant: "northwind-shop"`, `tenant: "`+id+`"`, 1)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg := `
demo:
  enabled: true
  token_ttl: 30m
  tenants: [qinghe-bank, northwind-shop]
tenants:
  - id: qinghe-bank
    name: 青禾银行
    ` + key("qinghe-bank") + `
    api_keys: [{value: "` + bankAPIKey + `"}]
    rate_limit: {rps: 20, burst: 40}
    engine: {kind: faq, kb: kb/bank-zh.yaml}
    fallback_answer: "系统繁忙,请稍后再试。"
    allowed_origins: ["` + origin + `"]
    widget: {lang: zh-CN, greeting: "您好,我是青禾银行智能客服。请问有什么可以帮您?"}
  - id: northwind-shop
    name: Northwind Outfitters
    ` + key("northwind-shop") + `
    rate_limit: {rps: 20, burst: 40}
    engine: {kind: faq, kb: kb/shop-en.yaml}
    fallback_answer: "We're busy right now, please try again in a moment."
    allowed_origins: ["` + origin + `"]
    widget: {lang: en, greeting: "Hi! Ask me about orders, shipping, returns or sizing."}
  - id: tiny-limit
    name: Tiny Limit Shop
    ` + key("tiny-limit") + `
    api_keys: [{value: "` + siteAPIKeys["tiny-limit"] + `"}]
    rate_limit: {rps: 0.5, burst: 1}
    engine: {kind: faq, kb: "` + kbFor("tiny-limit") + `"}
    allowed_origins: ["` + origin + `"]
  - id: slow-model
    name: Slow Model Shop
    ` + key("slow-model") + `
    engine:
      kind: openai
      kb: "` + kbFor("slow-model") + `"
      llm:
        base_url: "` + model + `/v1"
        model: test-model
        timeout: 10s
        first_token_timeout: 5s
        idle_timeout: 3s
    fallback_answer: "We're busy right now, please try again in a moment."
    api_keys: [{value: "` + siteAPIKeys["slow-model"] + `"}]
    allowed_origins: ["` + origin + `"]
  - id: no-handoff
    name: No Handoff Shop
    ` + key("no-handoff") + `
    api_keys: [{value: "` + siteAPIKeys["no-handoff"] + `"}]
    engine: {kind: faq, kb: "` + kbFor("no-handoff") + `"}
    allowed_origins: ["` + origin + `"]
    handoff: {disabled: true}
`
	p := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// startBrowserSite starts the pages, the model stand-in, the program and the browser.
func startBrowserSite(t *testing.T) *browserSite {
	t.Helper()
	exe := chromiumPath(t)
	var base atomic.Value
	base.Store("")
	embed := httptest.NewServer(embedSite(&base))
	t.Cleanup(embed.Close)
	foreign := httptest.NewServer(embedSite(&base))
	t.Cleanup(foreign.Close)
	model := slowModel(t)

	cfg := browserConfig(t, embed.URL, model.URL)
	p := startProgram(t, map[string]string{"FENGDA_QUEUE_MODE": "off"}, []string{"-config", cfg}, nil)
	base.Store(p.base)

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("lang", "en-US"),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	browser, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
	})
	// The first run starts the browser, and its context must not have a deadline: the
	// browser would end with it. A watchdog bounds it instead.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(browser) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("start %s: %v", exe, err)
		}
	case <-time.After(browserStart):
		cancelBrowser()
		t.Fatalf("%s did not start within %v", exe, browserStart)
	}
	return &browserSite{base: p.base, embed: embed.URL, foreign: foreign.URL, browser: browser}
}

// tab is one browser tab in a browser context of its own (own storage), with the
// page's uncaught exceptions and console errors collected.
type tab struct {
	t   *testing.T
	ctx context.Context

	mu      sync.Mutex
	errors  []string
	allowed []string // substrings of browser log entries the test expects
	chats   []string // the content types of the responses to POST /v1/chat
	resumes []string // the Last-Event-ID of each request of a session's events stream ("" for none)
}

// allow lets browser log entries (not exceptions) that contain one of the substrings
// pass: a refused request the test causes on purpose is logged by the browser.
func (b *tab) allow(substrings ...string) {
	b.mu.Lock()
	b.allowed = append(b.allowed, substrings...)
	b.mu.Unlock()
}

func (s *browserSite) newTab(t *testing.T) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(s.browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("open tab: %v", err)
		}
	case <-time.After(browserStart):
		cancel()
		t.Fatalf("tab did not open within %v", browserStart)
	}
	b := &tab{t: t, ctx: ctx}
	err := chromedp.Listen(ctx, func(ev any) {
		var msg string
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			msg = "exception: " + ev.ExceptionDetails.Text
			if ex := ev.ExceptionDetails.Exception; ex != nil {
				msg += " " + ex.Description
			}
		case *runtime.EventConsoleAPICalled:
			if ev.Type != runtime.ConsoleAPICalledTypeError && ev.Type != runtime.ConsoleAPICalledTypeAssert && ev.Type != runtime.ConsoleAPICalledTypeWarning {
				return
			}
			var parts []string
			for _, a := range ev.Args {
				parts = append(parts, strings.Trim(string(a.Value), `"`)+a.Description)
			}
			msg = "console." + string(ev.Type) + ": " + strings.Join(parts, " ")
		case *network.EventRequestWillBeSent:
			if ev.Type == network.ResourceTypeFetch && ev.Request.Method == "GET" && strings.HasSuffix(ev.Request.URL, "/events") {
				id, _ := ev.Request.Headers["Last-Event-ID"].(string)
				b.mu.Lock()
				b.resumes = append(b.resumes, id)
				b.mu.Unlock()
			}
			return
		case *network.EventResponseReceived:
			if strings.HasSuffix(ev.Response.URL, "/v1/chat") && ev.Type == network.ResourceTypeFetch {
				b.mu.Lock()
				b.chats = append(b.chats, ev.Response.MimeType)
				b.mu.Unlock()
			}
			return
		case *log.EventEntryAdded:
			// The browser's own log: failed loads, CSP violations, CORS refusals.
			if ev.Entry.Level != log.EntryLevelError && ev.Entry.Level != log.EntryLevelWarning {
				return
			}
			msg = "log." + string(ev.Entry.Level) + ": " + ev.Entry.Text + " " + ev.Entry.URL
		default:
			return
		}
		b.mu.Lock()
		b.errors = append(b.errors, msg)
		b.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, log.Enable, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		b.mu.Lock()
		defer b.mu.Unlock()
	next:
		for _, e := range b.errors {
			if strings.HasPrefix(e, "log.") {
				for _, a := range b.allowed {
					if strings.Contains(e, a) {
						continue next
					}
				}
			}
			t.Errorf("page: %s", e)
		}
	})
	return b
}

// do runs the steps, each run bounded by browserStep.
func (b *tab) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStep)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("browser: %v\nwidget: %s", err, b.describe())
	}
}

// eval evaluates a JavaScript expression in the page and decodes its value into out.
func (b *tab) eval(expr string, out any) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStep)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			b.t.Fatalf("evaluate %s: %s: %v", expr, raw, err)
		}
	}
}

// waitJS waits until the expression is truthy in the page. It polls from here rather
// than with chromedp.Poll, so that it outlasts a navigation.
func (b *tab) waitJS(what, expr string) {
	b.t.Helper()
	b.waitJSWithin(browserStep, what, expr)
}

// Paths into the widget's shadow root.
const shadow = `document.querySelector('fengda-chat').shadowRoot`

func inWidget(sel string) string { return shadow + `.querySelector(` + strconv.Quote(sel) + `)` }

// widgetMsg is one message of the widget's log, as a user sees it.
type widgetMsg struct {
	Role        string   `json:"role"`
	Text        string   `json:"text"`
	State       string   `json:"state"`
	Source      string   `json:"source"`
	History     bool     `json:"history"`
	Cite        string   `json:"cite"`
	Suggestions []string `json:"suggestions"`
	Error       string   `json:"error"`
	Notice      string   `json:"notice"`
	Busy        bool     `json:"busy"`
	Agent       string   `json:"agent"` // the name an agent's message shows
	TurnID      string   `json:"turn_id"`
}

const readMessages = `(() => {
  const host = document.querySelector('fengda-chat');
  if (!host || !host.shadowRoot) return [];
  return [...host.shadowRoot.querySelectorAll('.fd-msg:not(.fd-greeting)')].map((m) => ({
    role: m.classList.contains('fd-msg-user') ? 'user' : m.classList.contains('fd-msg-agent') ? 'agent' : 'assistant',
    text: m.querySelector('.fd-bubble').textContent,
    state: m.dataset.state || '',
    source: m.dataset.source || '',
    history: m.dataset.history === 'true',
    cite: (m.querySelector('.fd-source') || {}).textContent || '',
    suggestions: [...m.querySelectorAll('.fd-suggestion')].map((s) => s.textContent),
    error: m.dataset.error || '',
    notice: (m.querySelector('.fd-notice') || {}).textContent || '',
    busy: m.querySelector('.fd-bubble').getAttribute('aria-busy') === 'true',
    agent: (m.querySelector('.fd-agent') || {}).textContent || '',
    turn_id: m.dataset.turnId || '',
  }));
})()`

func (b *tab) messages() []widgetMsg {
	b.t.Helper()
	var ms []widgetMsg
	b.eval(readMessages, &ms)
	return ms
}

// describe is the widget's log, for failure messages.
func (b *tab) describe() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](readMessages))
	if err != nil {
		return err.Error()
	}
	return string(raw)
}

// waitMessages polls the widget's log until cond holds, and returns it.
func (b *tab) waitMessages(what string, cond func([]widgetMsg) bool) []widgetMsg {
	b.t.Helper()
	deadline := time.Now().Add(browserStep)
	for {
		ms := b.messages()
		if cond(ms) {
			return ms
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("waiting for %s: widget shows %+v", what, ms)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// lastAnswered waits for n messages, the last an answer in state done.
func (b *tab) lastAnswered(n int) []widgetMsg {
	b.t.Helper()
	return b.waitMessages(fmt.Sprintf("an answer as message %d", n), func(ms []widgetMsg) bool {
		return len(ms) == n && ms[n-1].Role == "assistant" && ms[n-1].State == "done"
	})
}

// openFloating opens a page with the floating widget at desktop size, and opens the
// widget's window with its launcher.
func (b *tab) openFloating(url string) {
	b.t.Helper()
	b.do(chromedp.EmulateViewport(1280, 800), chromedp.Navigate(url))
	b.waitJS("the launcher", `!!document.querySelector('fengda-chat') && !!`+inWidget(".fd-launcher"))
	b.do(chromedp.Click(chromedp.JSPath(inWidget(".fd-launcher"))))
	b.waitJS("the open window", `!`+inWidget(".fd-panel")+`.hidden`)
}

// ask types text into the widget's input and presses Enter.
func (b *tab) ask(text string) {
	b.t.Helper()
	b.do(
		chromedp.WaitEnabled(chromedp.JSPath(inWidget(".fd-input"))),
		chromedp.SendKeys(chromedp.JSPath(inWidget(".fd-input")), text),
		chromedp.KeyEvent(kb.Enter),
	)
}

// focused returns the class of the focused element inside the widget, or the tag of
// the page's focused element when it is not in the widget.
func (b *tab) focused() string {
	var s string
	b.eval(`(() => {
	  const a = document.activeElement;
	  if (a && a.tagName === 'FENGDA-CHAT') return (a.shadowRoot.activeElement || {}).className || 'host';
	  return a ? a.tagName.toLowerCase() : '';
	})()`, &s)
	return s
}

// screenshot saves a PNG of the viewport to $FENGDA_SCREENSHOT_DIR (default: a
// fengda-screenshots directory under the temporary directory) and checks it: the size
// of the viewport in device pixels, and more than one colour.
func (b *tab) screenshot(name string, width, height int64) {
	b.t.Helper()
	dir := os.Getenv("FENGDA_SCREENSHOT_DIR")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "fengda-screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	var dpr float64
	b.eval(`window.devicePixelRatio`, &dpr)
	// Animations end and the caret blinks off before the picture is taken.
	b.eval(`new Promise((r) => requestAnimationFrame(() => setTimeout(r, 300)))`, nil)
	ctx, cancel := context.WithTimeout(b.ctx, browserStep)
	defer cancel()
	buf, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	img, err := png.Decode(bytes.NewReader(buf))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	want := image.Pt(int(float64(width)*dpr+0.5), int(float64(height)*dpr+0.5))
	if got := img.Bounds().Size(); got != want {
		b.t.Errorf("screenshot %s: %v pixels, want %v (viewport %dx%d at %v dppx)", name, got, want, width, height, dpr)
	}
	colours := map[[4]uint32]bool{}
	bounds := img.Bounds()
	for y := bounds.Min.Y; y < bounds.Max.Y && len(colours) < 64; y += 7 {
		for x := bounds.Min.X; x < bounds.Max.X; x += 7 {
			r, g, bl, a := img.At(x, y).RGBA()
			colours[[4]uint32{r, g, bl, a}] = true
		}
	}
	if len(colours) < 16 {
		b.t.Errorf("screenshot %s: only %d colours: a blank page?", name, len(colours))
	}
	p := filepath.Join(dir, name+".png")
	if err := os.WriteFile(p, buf, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot: %s", p)
}

// ime runs an input method command on the focused element.
func (b *tab) ime(f func(ctx context.Context, t *chromedp.Target) error) {
	b.t.Helper()
	b.do(chromedp.Func(f))
}

// enterKey presses Enter as a key only (no character): what an input method lets
// through while it composes.
func enterKey() chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		for _, typ := range []input.DispatchKeyEventType{input.DispatchKeyEventTypeRawKeyDown, input.DispatchKeyEventTypeKeyUp} {
			_, err := cdp.Call(ctx, t, input.DispatchKeyEvent, input.DispatchKeyEventParams{
				Type: typ, Key: "Enter", Code: "Enter", WindowsVirtualKeyCode: 13, NativeVirtualKeyCode: 13,
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// dropProxy passes requests on to the program and ends the session events streams
// passing through it on demand, the way a lost connection does; it can then refuse the
// next ones with 401, as the API does a token that expired meanwhile.
type dropProxy struct {
	proxy *httputil.ReverseProxy

	mu      sync.Mutex
	streams []context.CancelFunc
	refuse  int // events requests still to refuse
	tokens  int // token requests passed on
}

func newDropProxy(t *testing.T, base string) *httptest.Server {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	p := &dropProxy{proxy: httputil.NewSingleHostReverseProxy(u)}
	// A dropped stream is an error to the proxy: expected here.
	p.proxy.ErrorLog = stdlog.New(io.Discard, "", 0)
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return srv
}

func (p *dropProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	if r.Method == http.MethodPost && r.URL.Path == "/v1/demo/token" {
		p.tokens++
	}
	if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/events") {
		if p.refuse > 0 {
			p.refuse--
			p.mu.Unlock()
			w.Header().Set("Access-Control-Allow-Origin", r.Header.Get("Origin"))
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":{"code":"unauthenticated","message":"The token has expired."}}`)
			return
		}
		ctx, cancel := context.WithCancel(r.Context())
		p.streams = append(p.streams, cancel)
		r = r.WithContext(ctx)
	}
	p.mu.Unlock()
	p.proxy.ServeHTTP(w, r)
}

// drop ends the streams open now and refuses the next refuse ones; it returns how many
// token requests it had passed on.
func (p *dropProxy) drop(refuse int) (tokens int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, cancel := range p.streams {
		cancel()
	}
	p.streams = nil
	p.refuse = refuse
	return p.tokens
}

func (p *dropProxy) tokenRequests() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.tokens
}

// handoffLine is the widget's handoff bar as a user sees it.
type handoffLine struct {
	Status string `json:"status"` // data-handoff-status
	Text   string `json:"text"`
	Shown  bool   `json:"shown"`  // the status line is visible
	Button bool   `json:"button"` // the "talk to a person" button is visible and enabled
}

func (b *tab) handoffLine() handoffLine {
	b.t.Helper()
	var h handoffLine
	b.eval(`(() => {
	  const l = `+inWidget("[data-handoff-status]")+`, btn = `+inWidget(`[data-action="handoff"]`)+`;
	  const shown = (e) => !!e && e.getClientRects().length > 0;
	  return {status: l.dataset.handoffStatus, text: l.textContent, shown: shown(l), button: shown(btn) && !btn.disabled};
	})()`, &h)
	return h
}

// waitHandoff waits until the handoff bar shows status with a text that contains text.
func (b *tab) waitHandoff(status, text string) handoffLine {
	b.t.Helper()
	deadline := time.Now().Add(browserStep)
	for {
		h := b.handoffLine()
		if h.Status == status && h.Shown && strings.Contains(h.Text, text) {
			return h
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("waiting for the handoff status %s %q: %+v\nwidget: %s", status, text, h, b.describe())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sessionID is the session the widget keeps for tenant tenantID of the program at api.
func (b *tab) sessionID(api, tenantID string) string {
	b.t.Helper()
	var id string
	b.eval(`localStorage.getItem(`+strconv.Quote("fengda:"+api+":"+tenantID+":session")+`) || ''`, &id)
	if id == "" {
		b.t.Fatalf("no stored session of %s", tenantID)
	}
	return id
}

// until polls cond for up to browserStep.
func (b *tab) until(what string, cond func() bool) {
	b.t.Helper()
	for deadline := time.Now().Add(browserStep); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.t.Fatalf("waiting for %s\nwidget: %s", what, b.describe())
		}
	}
}

// resumed returns the Last-Event-ID of each events stream request so far.
func (b *tab) resumed() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.resumes)
}

// agentSays posts an agent's message in conversation sid and returns its turn id.
func agentSays(t *testing.T, base, token, sid, content string) string {
	t.Helper()
	var out struct {
		Message struct {
			TurnID string `json:"turn_id"`
		} `json:"message"`
	}
	decode(t, "POST the agent's message "+content, agentPost(base, token, sid, content), http.StatusCreated, &out)
	return out.Message.TurnID
}

// agentDoes claims or closes conversation sid as the agent of token.
func agentDoes(t *testing.T, base, token, sid, action string) {
	t.Helper()
	decode(t, action+" "+sid, send("POST", base+"/v1/agent/conversations/"+sid+"/"+action, token, []byte(`{}`)), http.StatusOK, nil)
}

// agentsOf returns the agents' messages of ms.
func agentsOf(ms []widgetMsg) []widgetMsg {
	var out []widgetMsg
	for _, m := range ms {
		if m.Role == "agent" {
			out = append(out, m)
		}
	}
	return out
}

func TestBrowser(t *testing.T) {
	start := time.Now()
	s := startBrowserSite(t)
	t.Logf("program and browser up in %v", time.Since(start).Round(time.Millisecond))

	t.Run("demo page: chooser, a streamed answer with its source, clarify, history after reload", func(t *testing.T) {
		b := s.newTab(t)
		b.do(chromedp.EmulateViewport(1280, 800), chromedp.Navigate(s.base+"/"))
		var chooser struct {
			Lang  string   `json:"lang"`
			Links []string `json:"links"`
			Text  string   `json:"text"`
		}
		b.eval(`({lang: document.documentElement.lang,
		  links: [...document.querySelectorAll('a[href^="/?tenant="]')].map((a) => a.getAttribute('href')),
		  text: document.body.innerText})`, &chooser)
		if chooser.Lang != "en" || !strings.Contains(chooser.Text, "青禾银行") || !strings.Contains(chooser.Text, "Northwind Outfitters") {
			t.Errorf("chooser: lang %q, text %q; want en with both demo tenants", chooser.Lang, chooser.Text)
		}
		if len(chooser.Links) < 2 || chooser.Links[0] != "/?tenant=qinghe-bank" || chooser.Links[1] != "/?tenant=northwind-shop" {
			t.Fatalf("chooser links %v, want the bank then the shop", chooser.Links)
		}

		// Choose the bank.
		b.do(chromedp.Click(chromedp.CSS(`a[href="/?tenant=qinghe-bank"]`)))
		b.waitJS("the bank's page", `location.search === '?tenant=qinghe-bank' && document.documentElement.lang === 'zh-CN'`)
		b.waitJS("the widget", `!!document.querySelector('#chat > fengda-chat') && !!`+inWidget(".fd-input"))
		var head struct {
			Title   string `json:"title"`
			Greet   string `json:"greet"`
			Label   string `json:"label"`
			Role    string `json:"role"`
			H1      string `json:"h1"`
			Snippet string `json:"snippet"`
		}
		b.eval(`({title: `+inWidget(".fd-title")+`.textContent, greet: `+inWidget(".fd-greeting .fd-bubble")+`.textContent,
		  label: `+inWidget(".fd-input")+`.labels[0].textContent, role: `+inWidget(".fd-log")+`.getAttribute('role'),
		  h1: document.querySelector('h1').textContent, snippet: document.querySelector('pre').textContent})`, &head)
		if head.Title != "青禾银行" || head.H1 != "青禾银行" || !strings.HasPrefix(head.Greet, "您好") || head.Label == "" || head.Role != "log" {
			t.Errorf("bank page: %+v", head)
		}
		if !strings.Contains(head.Snippet, `data-tenant="qinghe-bank"`) || !strings.Contains(head.Snippet, "/widget.js") {
			t.Errorf("embed snippet %q", head.Snippet)
		}

		// A question typed and sent with Enter; the answer streams in, with its source.
		b.ask("借记卡丢了怎么挂失？")
		ms := b.lastAnswered(2)
		if ms[0].Role != "user" || ms[0].Text != "借记卡丢了怎么挂失？" {
			t.Errorf("user message %+v", ms[0])
		}
		var left string
		b.eval(inWidget(".fd-input")+`.value`, &left)
		if left != "" {
			t.Errorf("input after sending holds %q", left)
		}
		if a := ms[1]; a.Source != "faq" || !strings.Contains(a.Text, "挂失") || a.Cite != "来源：借记卡丢了怎么挂失?" || a.Busy {
			t.Errorf("answer %+v, want the FAQ's answer with 来源：借记卡丢了怎么挂失?", a)
		}
		b.mu.Lock()
		chats := slices.Clone(b.chats)
		b.mu.Unlock()
		if len(chats) != 1 || chats[0] != "text/event-stream" {
			t.Errorf("responses to POST /v1/chat: %q, want one event stream", chats)
		}

		// Something vague gets suggestions; clicking one asks it.
		b.ask("密码")
		ms = b.lastAnswered(4)
		clarify := ms[3]
		if clarify.Source != "clarify" || len(clarify.Suggestions) < 2 {
			t.Fatalf("vague question: %+v, want a clarify answer with suggestions", clarify)
		}
		picked := clarify.Suggestions[0]
		b.do(chromedp.Click(chromedp.JSPath(`[...` + shadow + `.querySelectorAll('.fd-msg[data-source="clarify"]')].pop().querySelector('.fd-suggestion')`)))
		ms = b.lastAnswered(6)
		if ms[4].Role != "user" || ms[4].Text != picked || ms[5].Source != "faq" || ms[5].Cite != "来源："+picked {
			t.Errorf("after clicking %q: %+v", picked, ms[4:])
		}
		b.screenshot("bank-chat-desktop", 1280, 800)

		// A reload shows the whole conversation again, from the same session.
		var session string
		b.eval(`localStorage.getItem('fengda:' + location.origin + ':qinghe-bank:session') || ''`, &session)
		if len(session) < 8 {
			t.Fatalf("session id in localStorage: %q", session)
		}
		b.do(chromedp.Reload())
		after := b.waitMessages("the history after a reload", func(ms []widgetMsg) bool { return len(ms) == 6 })
		for i, m := range after {
			if !m.History || m.Role != ms[i].Role || m.Text != ms[i].Text {
				t.Errorf("after reload, message %d: %+v, want %s %q from history", i, m, ms[i].Role, ms[i].Text)
			}
		}
		var again string
		b.eval(`localStorage.getItem('fengda:' + location.origin + ':qinghe-bank:session') || ''`, &again)
		if again != session {
			t.Errorf("session after reload %q, want %q", again, session)
		}

		// Input methods: Enter picks a candidate while composing, it must not send.
		b.do(chromedp.Focus(chromedp.JSPath(inWidget(".fd-input"))))
		b.ime(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, input.ImeSetComposition, input.ImeSetCompositionParams{Text: "zhuanzhang", SelectionStart: 10, SelectionEnd: 10})
			return err
		})
		var composing struct {
			Value string `json:"value"`
			Sent  int    `json:"sent"`
		}
		const inputState = `({value: ` + shadow + `.querySelector('.fd-input').value, sent: ` + shadow + `.querySelectorAll('.fd-msg-user').length})`
		b.eval(inputState, &composing)
		if composing.Value != "zhuanzhang" {
			t.Fatalf("composing: input holds %q", composing.Value)
		}
		b.do(enterKey())
		b.eval(inputState, &composing)
		if composing.Sent != 3 || !strings.Contains(composing.Value, "zhuanzhang") {
			t.Fatalf("Enter while composing: %d user messages (want 3), input %q", composing.Sent, composing.Value)
		}
		b.ime(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, input.InsertText, input.InsertTextParams{Text: "转账手续费多少"})
			return err
		})
		b.eval(inputState, &composing)
		if composing.Value != "转账手续费多少" || composing.Sent != 3 {
			t.Fatalf("after the commit: input %q, %d user messages", composing.Value, composing.Sent)
		}
		// Shift+Enter is a new line, not a send.
		b.do(chromedp.KeyEvent(kb.Enter, chromedp.KeyModifiers(kb.ModifierShift)))
		b.eval(inputState, &composing)
		if composing.Sent != 3 || composing.Value != "转账手续费多少\n" {
			t.Fatalf("Shift+Enter: %d user messages (want 3), input %q (want a new line)", composing.Sent, composing.Value)
		}
		b.do(chromedp.KeyEvent(kb.Enter))
		ms = b.lastAnswered(8)
		if ms[6].Text != "转账手续费多少" || ms[7].State != "done" {
			t.Errorf("after the input method: %+v", ms[6:])
		}

		// A new conversation forgets the session here.
		b.do(chromedp.Click(chromedp.JSPath(inWidget(".fd-new"))))
		b.waitMessages("an empty log", func(ms []widgetMsg) bool { return len(ms) == 0 })
		b.eval(`localStorage.getItem('fengda:' + location.origin + ':qinghe-bank:session') || ''`, &again)
		if again != "" {
			t.Errorf("session after a new conversation: %q", again)
		}
	})

	t.Run("a session that is gone: forgotten on load, and a new one when it is erased meanwhile", func(t *testing.T) {
		b := s.newTab(t)
		b.allow("status of 404")
		const key = `'fengda:' + location.origin + ':qinghe-bank:session'`
		b.do(chromedp.EmulateViewport(1280, 800), chromedp.Navigate(s.base+"/?tenant=qinghe-bank"))
		b.waitJS("the widget", `!!`+inWidget(".fd-input"))
		// A stored session the server does not know (expired, or erased elsewhere).
		b.eval(`localStorage.setItem(`+key+`, 'gone-session-0001'), true`, nil)
		b.do(chromedp.Reload())
		b.waitJS("the widget after a reload", `!!`+inWidget(".fd-input")+` && `+inWidget(".fd-log")+`.getAttribute('aria-busy') === null`)
		b.waitJS("the unknown session forgotten", `localStorage.getItem(`+key+`) === null`)
		if ms := b.messages(); len(ms) != 0 {
			t.Errorf("an unknown session shows %+v, want an empty log", ms)
		}

		b.ask("开户需要什么材料？")
		ms := b.lastAnswered(2)
		var first string
		b.eval(`localStorage.getItem(`+key+`) || ''`, &first)
		if first == "" || ms[1].Source == "" {
			t.Fatalf("first turn: session %q, answer %+v", first, ms[1])
		}
		// Erased from elsewhere (another device, the right to erasure) while the page is open.
		var status int
		b.eval(`(async () => {
		  const tok = JSON.parse(localStorage.getItem('fengda:' + location.origin + ':qinghe-bank:token')).token;
		  const res = await fetch('/v1/sessions/' + encodeURIComponent(`+"'"+first+"'"+`), {method: 'DELETE', headers: {Authorization: 'Bearer ' + tok}});
		  return res.status;
		})()`, &status)
		if status != http.StatusNoContent {
			t.Fatalf("DELETE the session: %d", status)
		}
		b.ask("转账手续费多少？")
		ms = b.waitMessages("the answer in a new session", func(ms []widgetMsg) bool {
			return len(ms) >= 4 && ms[len(ms)-1].Role == "assistant" && ms[len(ms)-1].State == "done"
		})
		last := ms[len(ms)-1]
		var second string
		b.eval(`localStorage.getItem(`+key+`) || ''`, &second)
		if last.Source == "" || second == "" || second == first {
			t.Errorf("after the erasure: answer %+v, session %q (was %q); want an answer in a new session", last, second, first)
		}
	})

	t.Run("tokens stream into the bubble as the model writes them", func(t *testing.T) {
		b := s.newTab(t)
		b.openFloating(s.embed + "/?tenant=slow-model")
		// Record the answer bubble each time its text changes.
		b.eval(`(() => {
		  window.seen = [];
		  new MutationObserver(() => {
		    const m = [...`+shadow+`.querySelectorAll('.fd-msg-assistant:not(.fd-greeting)')].pop();
		    if (m) window.seen.push({text: m.querySelector('.fd-bubble').textContent, state: m.dataset.state,
		      busy: m.querySelector('.fd-bubble').getAttribute('aria-busy')});
		  }).observe(`+shadow+`, {subtree: true, childList: true, characterData: true, attributes: true});
		  return true;
		})()`, nil)
		b.ask("When does the store open?")
		ms := b.lastAnswered(2)
		if ms[1].Text != slowAnswer || ms[1].Source != "llm" {
			t.Fatalf("answer %+v, want the model's", ms[1])
		}
		var seen []struct {
			Text, State, Busy string
		}
		b.eval(`window.seen`, &seen)
		partial := 0
		for _, s := range seen {
			if s.State == "streaming" && s.Busy == "true" && s.Text != "" && len(s.Text) < len(slowAnswer) && strings.HasPrefix(slowAnswer, s.Text) {
				partial++
			}
		}
		if partial < 3 {
			t.Errorf("saw the answer partly written %d times (want 3 or more): %+v", partial, seen)
		}

		// The model fails on a question the knowledge base cannot answer either: the
		// service's fallback answer shows as a notice with a retry, which asks again as a
		// new message.
		b.ask("Tell me a joke about penguins (flaky)")
		ms = b.lastAnswered(4)
		if f := ms[3]; f.Source != "fallback" || f.Text != "We're busy right now, please try again in a moment." || f.Notice != "Try again" || f.Cite != "" {
			t.Fatalf("fallback shows %+v", f)
		}
		var fallbackClass bool
		b.eval(`[...`+shadow+`.querySelectorAll('.fd-msg')].pop().classList.contains('fd-msg-fallback')`, &fallbackClass)
		if !fallbackClass {
			t.Error("the fallback answer is not marked fd-msg-fallback")
		}
		b.do(chromedp.Click(chromedp.JSPath(inWidget(".fd-msg-fallback .fd-retry"))))
		ms = b.lastAnswered(6)
		if ms[4].Text != "Tell me a joke about penguins (flaky)" || ms[5].Source != "llm" || ms[5].Text != slowAnswer || ms[3].Notice != "" {
			t.Errorf("after the retry: %+v", ms[3:])
		}
	})

	t.Run("tokens: renewed near their end as the same user, replaced after a 401", func(t *testing.T) {
		b := s.newTab(t)
		b.do(chromedp.EmulateViewport(1280, 800), chromedp.Navigate(s.base+"/?tenant=northwind-shop"))
		b.waitJS("the widget", `!!`+inWidget(".fd-input"))
		b.ask("What payment methods do you accept?")
		b.lastAnswered(2)
		const key = `'fengda:' + location.origin + ':northwind-shop:token'`
		type stored struct {
			Token string `json:"token"`
			Sub   string `json:"sub"`
		}
		read := func() stored {
			var st stored
			b.eval(`(() => { const s = JSON.parse(localStorage.getItem(`+key+`));
			  return {token: s.token, sub: JSON.parse(atob(s.token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/'))).sub}; })()`, &st)
			return st
		}
		first := read()

		// Less than a fifth of its life left: the next call renews it, for the same
		// anonymous user, whose history the page then shows.
		b.eval(`(() => { const s = JSON.parse(localStorage.getItem(`+key+`));
		  s.issued = Date.now() - 25 * 60000; s.expires = Date.now() + 60000;
		  localStorage.setItem(`+key+`, JSON.stringify(s)); return true; })()`, nil)
		b.do(chromedp.Reload())
		b.waitMessages("the history with a renewed token", func(ms []widgetMsg) bool { return len(ms) == 2 && ms[0].History })
		renewed := read()
		if renewed.Token == first.Token || renewed.Sub != first.Sub {
			t.Errorf("renewal: token changed %v, user %q → %q; want a new token for the same user", renewed.Token != first.Token, first.Sub, renewed.Sub)
		}

		// A token the server refuses (401): renewed once and the call made again. The
		// new anonymous user cannot see the old session, so the page starts afresh.
		b.allow("status of 401", "status of 404") // the refused token; the old session, not the new user's
		b.eval(`(() => { localStorage.setItem(`+key+`, JSON.stringify({token: 'e30.e30.bm90LWEtc2lnbmF0dXJl', issued: Date.now(), expires: Date.now() + 3600000})); return true; })()`, nil)
		b.do(chromedp.Reload())
		b.waitJS("the widget", `!!`+inWidget(".fd-input")+` && !`+inWidget(".fd-log")+`.hasAttribute('aria-busy')`)
		b.ask("How much does shipping cost?")
		ms := b.lastAnswered(2)
		if ms[1].Source != "faq" {
			t.Errorf("after a refused token: %+v", ms)
		}
		if replaced := read(); replaced.Sub == "" || replaced.Sub == first.Sub {
			t.Errorf("after a refused token: user %q, want a new anonymous user", replaced.Sub)
		}
	})

	t.Run("too many messages: a polite notice, a countdown, then retry", func(t *testing.T) {
		b := s.newTab(t)
		b.allow("status of 429")
		b.openFloating(s.embed + "/?tenant=tiny-limit")
		var ms []widgetMsg
		for i := 0; ; i++ {
			if i == 4 {
				t.Fatalf("four messages to a tenant allowing one every 2s and none was refused: %+v", ms)
			}
			b.ask(fmt.Sprintf("How do I return an item? (%d)", i))
			ms = b.waitMessages("an answer or an error", func(ms []widgetMsg) bool {
				return len(ms) == 2*(i+1) && ms[len(ms)-1].State != "streaming"
			})
			if ms[len(ms)-1].State == "error" {
				break
			}
		}
		n := len(ms)
		e := ms[n-1]
		if e.Error != "rate_limited" || !strings.HasPrefix(e.Text, "Too many messages; try again in ") || !strings.Contains(e.Notice, "Try again") {
			t.Fatalf("refused message shows %+v", e)
		}
		if ms[n-2].Role != "user" || ms[n-2].State != "done" {
			t.Errorf("the user's message was lost: %+v", ms[n-2])
		}
		var wait string
		b.eval(inWidget(".fd-msg-error .fd-retry")+`.disabled ? `+inWidget(".fd-msg-error .fd-retry")+`.dataset.retryAfter : 'enabled'`, &wait)
		if secs, err := strconv.Atoi(wait); err != nil || secs < 1 {
			t.Errorf("retry button right after the refusal: %q, want disabled with seconds left", wait)
		}
		b.waitJS("the retry button to enable", `!`+inWidget(".fd-msg-error .fd-retry")+`.disabled`)
		b.do(chromedp.Click(chromedp.JSPath(inWidget(".fd-msg-error .fd-retry"))))
		ms = b.waitMessages("the retried answer", func(ms []widgetMsg) bool {
			return len(ms) == n && ms[n-1].State == "done"
		})
		if ms[n-2].Role != "user" || ms[n-1].Source != "faq" {
			t.Errorf("after the retry: %+v", ms[n-2:])
		}
	})

	t.Run("floating widget on another origin: keyboard, chat over CORS", func(t *testing.T) {
		b := s.newTab(t)
		b.do(chromedp.EmulateViewport(1280, 800), chromedp.Navigate(s.embed+"/"))
		b.waitJS("the launcher", `!!document.querySelector('fengda-chat') && !!`+inWidget(".fd-launcher"))
		var launcher struct {
			Label, Expanded, Controls string
			Dialog                    bool
		}
		b.eval(`(() => { const l = `+inWidget(".fd-launcher")+`; const p = `+shadow+`.getElementById(l.getAttribute('aria-controls'));
		  return {label: l.getAttribute('aria-label'), expanded: l.getAttribute('aria-expanded'), controls: l.getAttribute('aria-controls'),
		    dialog: !!p && p.getAttribute('role') === 'dialog' && p.hidden}; })()`, &launcher)
		if launcher.Label != "Open chat" || launcher.Expanded != "false" || !launcher.Dialog {
			t.Errorf("launcher %+v, want a labelled button controlling a hidden dialog", launcher)
		}

		// Tab reaches the launcher, Enter opens, focus goes to the input, Esc closes and
		// gives focus back to the launcher.
		for i := 0; b.focused() != "fd-launcher"; i++ {
			if i == 5 {
				t.Fatalf("five Tabs did not reach the launcher; focus on %q", b.focused())
			}
			b.do(chromedp.KeyEvent(kb.Tab))
		}
		b.do(chromedp.KeyEvent(kb.Enter))
		b.waitJS("the open window", `!`+inWidget(".fd-panel")+`.hidden`)
		if f := b.focused(); f != "fd-input" {
			t.Errorf("focus after opening on %q, want the input", f)
		}
		b.do(chromedp.KeyEvent(kb.Escape))
		b.waitJS("the closed window", inWidget(".fd-panel")+`.hidden`)
		var expanded string
		b.eval(inWidget(".fd-launcher")+`.getAttribute('aria-expanded')`, &expanded)
		if f := b.focused(); f != "fd-launcher" || expanded != "false" {
			t.Errorf("after Esc: focus on %q, aria-expanded %q; want the launcher, false", f, expanded)
		}

		// Open with a click, chat with the shop across origins.
		b.do(chromedp.Click(chromedp.JSPath(inWidget(".fd-launcher"))))
		b.waitJS("the open window", `!`+inWidget(".fd-panel")+`.hidden`)
		b.ask("How do I return an item?")
		ms := b.lastAnswered(2)
		if ms[1].Source != "faq" || ms[1].Cite != "Source: How do I return an item?" {
			t.Errorf("answer on %s: %+v", s.embed, ms[1])
		}
		b.screenshot("embed-floating-desktop", 1280, 800)

		// The widget adds one global, and mounts and unmounts from script too.
		var globals []string
		b.eval(`Object.keys(window).filter((k) => k !== 'keysBefore' && !window.keysBefore.includes(k))`, &globals)
		if strings.Join(globals, ",") != "Fengda" {
			t.Errorf("globals added by the widget: %v, want Fengda only", globals)
		}
		var mounted struct {
			ID      string `json:"id"`
			Inline  bool   `json:"inline"`
			Title   string `json:"title"`
			Lang    string `json:"lang"`
			Removed bool   `json:"removed"`
		}
		b.eval(`(() => {
		  const box = document.body.appendChild(document.createElement('div'));
		  box.id = 'box';
		  const src = document.querySelector('script[data-tenant]').src;
		  const c = Fengda.mount({tenant: 'northwind-shop', tokenUrl: src.replace(/widget\.js$/, 'v1/demo/token'),
		    mode: 'inline', target: '#box', lang: 'zh-CN', title: 'Inline'});
		  const r = c.element.shadowRoot;
		  const out = {id: c.element.id, inline: box.contains(c.element) && !!r.querySelector('.fd-inline') && !r.querySelector('.fd-launcher'),
		    title: r.querySelector('.fd-title').textContent, lang: r.querySelector('.fd-send').getAttribute('aria-label')};
		  c.destroy();
		  out.removed = !box.firstChild;
		  return out;
		})()`, &mounted)
		if !strings.HasPrefix(mounted.ID, "fengda-chat-northwind-shop-") || !mounted.Inline || mounted.Title != "Inline" || mounted.Lang != "发送" || !mounted.Removed {
			t.Errorf("Fengda.mount inline, then destroy: %+v", mounted)
		}
	})

	t.Run("a page of an origin the tenant does not allow cannot chat", func(t *testing.T) {
		b := s.newTab(t)
		b.allow("blocked by CORS policy", "net::ERR_FAILED")
		b.openFloating(s.foreign + "/")
		b.ask("How do I return an item?")
		ms := b.waitMessages("the refusal", func(ms []widgetMsg) bool { return len(ms) == 2 && ms[1].State != "streaming" })
		if ms[1].State != "error" || ms[1].Source != "" || !strings.Contains(ms[1].Text, "busy") || ms[0].Text != "How do I return an item?" {
			t.Errorf("on %s (not allowed): %+v, want the question kept and an error instead of an answer", s.foreign, ms)
		}
	})

	t.Run("screenshots on a phone", func(t *testing.T) {
		b := s.newTab(t)
		mobile := chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(3), chromedp.EmulateMobile, chromedp.EmulateTouch)
		b.do(mobile, chromedp.Navigate(s.base+"/"))
		b.waitJS("the chooser", `document.querySelectorAll('a[href^="/?tenant="]').length >= 2`)
		b.screenshot("chooser-mobile", 390, 844)

		b.do(chromedp.Navigate(s.base + "/?tenant=qinghe-bank"))
		b.waitJS("the widget", `!!`+inWidget(".fd-input"))
		b.ask("开户需要准备哪些材料？")
		b.lastAnswered(2)
		b.do(chromedp.Blur(chromedp.JSPath(inWidget(".fd-input"))))
		b.screenshot("bank-chat-mobile", 390, 844)

		b.do(chromedp.Navigate(s.embed + "/"))
		b.waitJS("the launcher", `!!document.querySelector('fengda-chat') && !!`+inWidget(".fd-launcher"))
		b.do(chromedp.Click(chromedp.JSPath(inWidget(".fd-launcher"))))
		var box struct{ W, H float64 }
		b.eval(`(() => { const p = `+inWidget(".fd-panel")+`; return {w: p.offsetWidth, h: p.offsetHeight}; })()`, &box)
		if box.W != 390 || box.H != 844 {
			t.Errorf("floating window on a phone: %vx%v, want the whole 390x844 viewport", box.W, box.H)
		}
		b.ask("shipping")
		b.lastAnswered(2)
		b.do(chromedp.Blur(chromedp.JSPath(inWidget(".fd-input"))))
		b.screenshot("embed-floating-mobile", 390, 844)
	})

	t.Run("screenshots on a desktop", func(t *testing.T) {
		b := s.newTab(t)
		b.do(chromedp.EmulateViewport(1280, 800), chromedp.Navigate(s.base+"/"))
		b.waitJS("the chooser", `document.querySelectorAll('a[href^="/?tenant="]').length >= 2`)
		b.screenshot("chooser-desktop", 1280, 800)
	})

	t.Run("handoff: the button, the queue, an agent's messages live and after a reload, once each; the bot after the close", func(t *testing.T) {
		b := s.newTab(t)
		b.do(chromedp.EmulateViewport(1280, 800), chromedp.Navigate(s.base+"/?tenant=qinghe-bank"))
		b.waitJS("the widget", `!!`+inWidget(".fd-input"))
		b.ask("借记卡丢了怎么挂失？")
		if ms := b.lastAnswered(2); ms[1].Source != "faq" {
			t.Fatalf("first answer %+v, want the FAQ's", ms[1])
		}
		if h := b.handoffLine(); !h.Button || h.Status != "bot" || h.Shown {
			t.Fatalf("before the handoff: %+v, want the button and no status", h)
		}
		var label string
		b.eval(inWidget(`[data-action="handoff"]`)+`.textContent`, &label)
		if label != "转人工" {
			t.Errorf("the button says %q, want 转人工", label)
		}

		// The button hands the session to a person: the notice, and the place in the queue.
		b.do(chromedp.Click(chromedp.JSPath(inWidget(`[data-action="handoff"]`))))
		ms := b.lastAnswered(3)
		if ms[2].Source != "handoff" || ms[2].Text == "" || ms[2].TurnID == "" {
			t.Errorf("after the button: %+v, want the handoff's notice", ms[2])
		}
		h := b.waitHandoff("waiting", "等待人工客服")
		if h.Button {
			t.Error("the button still shows while the session waits")
		}
		sid := b.sessionID(s.base, "qinghe-bank")
		agent := agentTokenFor(t, s.base, bankAPIKey, "agent-li", "李伟")
		c, ok := findConversation(listConversations(t, s.base, agent, "waiting"), sid)
		if !ok || c.Cause != "button" || c.Position < 1 {
			t.Fatalf("the queue holds %+v (found %v), want the session, handed over by the button", c, ok)
		}
		if want := fmt.Sprintf("第 %d 位", c.Position); !strings.Contains(h.Text, want) {
			t.Errorf("status %q, want the position %q", h.Text, want)
		}

		// The agent claims it and writes: the status names them, the message streams in.
		agentDoes(t, s.base, agent, sid, "claim")
		b.waitHandoff("agent", "人工客服 李伟 为您服务")
		first := agentSays(t, s.base, agent, sid, "您好，我是李伟，请问卡是什么时候丢的？")
		ms = b.waitMessages("the agent's message", func(ms []widgetMsg) bool { return len(agentsOf(ms)) == 1 })
		if a := agentsOf(ms)[0]; a.Text != "您好，我是李伟，请问卡是什么时候丢的？" || a.Agent != "李伟" || a.TurnID != first || a.History {
			t.Errorf("the agent's message shows %+v, want it live, with the name 李伟 and turn %s", a, first)
		}
		b.screenshot("bank-handoff-desktop", 1280, 800)

		// The customer answers: the message goes to the agent, the bot says nothing.
		b.ask("昨天下午丢的")
		ms = b.waitMessages("the customer's message, sent", func(ms []widgetMsg) bool {
			n := len(ms)
			return n == 5 && ms[n-1].Role == "user" && ms[n-1].Text == "昨天下午丢的"
		})
		b.until("the customer's message at the agent's", func() bool {
			var out struct {
				Messages []agentHistory `json:"messages"`
			}
			r := get(s.base, agent, "/v1/agent/conversations/"+sid+"/messages")
			if json.Unmarshal(r.body, &out) != nil {
				return false
			}
			return slices.ContainsFunc(out.Messages, func(m agentHistory) bool { return m.Role == "user" && m.Content == "昨天下午丢的" })
		})
		if ms = b.messages(); len(ms) != 5 || ms[4].Role != "user" {
			t.Errorf("while an agent answers: %+v, want no answer from the bot", ms)
		}

		// The page goes away; the agent writes meanwhile; the page comes back: the history
		// and the resumed stream (which replays that message) show it once.
		b.do(chromedp.Navigate("about:blank"))
		second := agentSays(t, s.base, agent, sid, "已为您冻结这张卡。")
		b.do(chromedp.Navigate(s.base + "/?tenant=qinghe-bank"))
		b.waitHandoff("agent", "李伟")
		b.until("the stream resumed with Last-Event-ID", func() bool {
			r := b.resumed()
			return len(r) >= 2 && r[len(r)-1] != ""
		})
		third := agentSays(t, s.base, agent, sid, "还有其他问题吗？")
		ms = b.waitMessages("the third agent message, live", func(ms []widgetMsg) bool {
			as := agentsOf(ms)
			return len(as) > 0 && as[len(as)-1].TurnID == third
		})
		as := agentsOf(ms)
		if len(as) != 3 || as[0].TurnID != first || as[1].TurnID != second || !as[0].History || !as[1].History || as[2].History {
			t.Errorf("after the reload the agent's messages show as %+v, want %s and %s from history, once each, then %s live", as, first, second, third)
		}
		for _, a := range as {
			if a.Agent != "李伟" {
				t.Errorf("agent message %+v without the name 李伟", a)
			}
		}
		if n := len(ms); n != 7 || ms[0].Text != "借记卡丢了怎么挂失？" || ms[2].Text == "" || ms[4].Text != "昨天下午丢的" {
			t.Errorf("after the reload: %+v, want the whole conversation once", ms)
		}

		// The agent closes: back to the bot, which answers again.
		agentDoes(t, s.base, agent, sid, "close")
		b.waitHandoff("bot", "对话已转回智能客服")
		b.waitJS("the button back", inWidget(`[data-action="handoff"]`)+`.getClientRects().length > 0`)
		b.ask("开户需要准备哪些材料？")
		ms = b.lastAnswered(9)
		if ms[8].Source != "faq" || ms[7].Text != "开户需要准备哪些材料？" {
			t.Errorf("after the close: %+v, want the bot's FAQ answer", ms[7:])
		}
	})

	t.Run("handoff on another origin: the floating widget follows the events stream over CORS, with Last-Event-ID", func(t *testing.T) {
		b := s.newTab(t)
		b.openFloating(s.embed + "/")
		b.waitJS("the button", inWidget(`[data-action="handoff"]`)+`.getClientRects().length > 0`)
		b.do(chromedp.Click(chromedp.JSPath(inWidget(`[data-action="handoff"]`))))
		if ms := b.lastAnswered(1); ms[0].Source != "handoff" {
			t.Fatalf("after the button: %+v, want the handoff's notice", ms)
		}
		b.waitHandoff("waiting", "Waiting for a person: position ")
		sid := b.sessionID(s.base, "northwind-shop")

		// A demo agent of the shop claims it and writes.
		r := sendHeader("POST", s.base+"/v1/demo/token", nil, []byte(`{"tenant":"northwind-shop","role":"agent"}`))
		var minted struct {
			Token string `json:"token"`
		}
		decode(t, "an agent's demo token", r, http.StatusOK, &minted)
		agent := minted.Token
		agentDoes(t, s.base, agent, sid, "claim")
		b.waitHandoff("agent", "You are chatting with Demo agent")
		first := agentSays(t, s.base, agent, sid, "Hello, this is the help desk.")
		ms := b.waitMessages("the agent's message", func(ms []widgetMsg) bool { return len(agentsOf(ms)) == 1 })
		if a := agentsOf(ms)[0]; a.Text != "Hello, this is the help desk." || a.Agent != "Demo agent" || a.TurnID != first {
			t.Errorf("the agent's message shows %+v", a)
		}
		if r := b.resumed(); len(r) != 1 || r[0] != "" {
			t.Errorf("events requests so far (their Last-Event-ID): %q, want one, fresh", r)
		}

		// A reload resumes the stream across origins, with Last-Event-ID (a preflighted header).
		b.do(chromedp.Reload())
		b.waitJS("the launcher", `!!document.querySelector('fengda-chat') && !!`+inWidget(".fd-launcher"))
		b.do(chromedp.Click(chromedp.JSPath(inWidget(".fd-launcher"))))
		b.waitHandoff("agent", "Demo agent")
		b.until("the stream resumed", func() bool { return len(b.resumed()) >= 2 })
		if r := b.resumed(); r[len(r)-1] == "" {
			t.Errorf("the resumed stream sent no Last-Event-ID: %q", r)
		}
		second := agentSays(t, s.base, agent, sid, "Your order ships today.")
		ms = b.waitMessages("the second agent message, live", func(ms []widgetMsg) bool { return len(agentsOf(ms)) == 2 })
		if as := agentsOf(ms); as[0].TurnID != first || !as[0].History || as[1].TurnID != second || as[1].History {
			t.Errorf("after the reload: %+v", as)
		}
		agentDoes(t, s.base, agent, sid, "close")
		b.waitHandoff("bot", "Back to the assistant")
		b.ask("How do I return an item?")
		ms = b.waitMessages("the bot's answer", func(ms []widgetMsg) bool {
			n := len(ms)
			return n > 0 && ms[n-1].Role == "assistant" && ms[n-1].State == "done" && ms[n-1].Source != "handoff"
		})
		if last := ms[len(ms)-1]; last.Source != "faq" {
			t.Errorf("after the close: %+v, want an FAQ answer", last)
		}
	})

	t.Run("handoff asked for in a message; the events stream comes back after a drop and a refused token, from where it was", func(t *testing.T) {
		b := s.newTab(t)
		b.allow("ERR_INCOMPLETE_CHUNKED_ENCODING", "status of 401") // the drop, the refusal
		via := newDropProxy(t, s.base)
		proxy := via.Config.Handler.(*dropProxy)
		b.openFloating(s.embed + "/?api=" + url.QueryEscape(via.URL))
		// This time a message asks for a person: its reply carries the status.
		b.ask("I need a real person")
		if ms := b.lastAnswered(2); ms[1].Source != "handoff" || ms[1].Text == "" {
			t.Fatalf("the reply to a request for a person: %+v, want the handoff's notice", ms[1])
		}
		if h := b.waitHandoff("waiting", "Waiting for a person: position "); h.Button {
			t.Error("the button still shows while the session waits")
		}
		sid := b.sessionID(via.URL, "northwind-shop")
		var minted struct {
			Token string `json:"token"`
		}
		decode(t, "an agent's demo token", sendHeader("POST", s.base+"/v1/demo/token", nil, []byte(`{"tenant":"northwind-shop","role":"agent"}`)), http.StatusOK, &minted)
		agent := minted.Token
		agentDoes(t, s.base, agent, sid, "claim")
		b.waitHandoff("agent", "Demo agent")
		first := agentSays(t, s.base, agent, sid, "Let me check your order.")
		b.waitMessages("the agent's message", func(ms []widgetMsg) bool { return len(agentsOf(ms)) == 1 })

		// The connection drops, and the next request's token is refused: the widget
		// renews it and resumes the stream after the last event it saw.
		opened := len(b.resumed())
		tokens := proxy.drop(1)
		b.until("the stream resumed after the drop", func() bool {
			r := b.resumed()
			return len(r) >= opened+2 && r[len(r)-1] != ""
		})
		if proxy.tokenRequests() <= tokens {
			t.Errorf("token requests %d before and after the refusal: want a renewal", tokens)
		}
		second := agentSays(t, s.base, agent, sid, "It ships today.")
		ms := b.waitMessages("the agent's second message", func(ms []widgetMsg) bool { return len(agentsOf(ms)) == 2 })
		if as := agentsOf(ms); as[0].TurnID != first || as[1].TurnID != second || as[1].Text != "It ships today." {
			t.Errorf("after the drop: %+v, want each message once", as)
		}
		agentDoes(t, s.base, agent, sid, "close")
		b.waitHandoff("bot", "Back to the assistant")
	})

	t.Run("handoff turned off for the tenant: the button goes away", func(t *testing.T) {
		b := s.newTab(t)
		b.allow("status of 403")
		b.openFloating(s.embed + "/?tenant=no-handoff")
		b.waitJS("the button", inWidget(`[data-action="handoff"]`)+`.getClientRects().length > 0`)
		b.do(chromedp.Click(chromedp.JSPath(inWidget(`[data-action="handoff"]`))))
		b.waitJS("the button gone", inWidget(`[data-action="handoff"]`)+`.getClientRects().length === 0`)
		var note string
		b.eval(`[...`+shadow+`.querySelectorAll('.fd-note')].map((n) => n.textContent).join('|')`, &note)
		if note != "A person is not available here; the assistant can still help." {
			t.Errorf("note %q, want that no person is available", note)
		}
		if ms := b.messages(); len(ms) != 0 {
			t.Errorf("messages %+v, want none", ms)
		}
		b.ask("How do I return an item?")
		if ms := b.lastAnswered(2); ms[1].Source != "faq" {
			t.Errorf("the bot after the refusal: %+v", ms[1])
		}
	})

	t.Run("handoff: an agent who writes before the widget's stream opens is still seen, once", func(t *testing.T) {
		b := s.newTab(t)
		b.allow("ERR_BLOCKED_BY_CLIENT") // the stream, held back
		block := func(patterns ...string) {
			t.Helper()
			ps := make([]*network.BlockPattern, 0, len(patterns))
			for _, p := range patterns {
				ps = append(ps, &network.BlockPattern{URLPattern: p, Block: true})
			}
			if _, err := chromedp.Call(b.ctx, network.SetBlockedURLs, network.SetBlockedURLsParams{URLPatterns: ps}); err != nil {
				t.Fatal(err)
			}
		}
		b.openFloating(s.embed + "/")
		block(s.base + "/v1/sessions/*/events")
		b.waitJS("the button", inWidget(`[data-action="handoff"]`)+`.getClientRects().length > 0`)
		b.do(chromedp.Click(chromedp.JSPath(inWidget(`[data-action="handoff"]`))))
		b.waitHandoff("waiting", "Waiting for a person")
		sid := b.sessionID(s.base, "northwind-shop")
		var minted struct {
			Token string `json:"token"`
		}
		decode(t, "an agent's demo token", sendHeader("POST", s.base+"/v1/demo/token", nil, []byte(`{"tenant":"northwind-shop","role":"agent"}`)), http.StatusOK, &minted)
		agentDoes(t, s.base, minted.Token, sid, "claim")
		early := agentSays(t, s.base, minted.Token, sid, "Hello, I am here.")

		// The stream opens only now, "from now": the message before it comes from the history.
		block()
		b.waitHandoff("agent", "Demo agent")
		ms := b.waitMessages("the early message", func(ms []widgetMsg) bool { return len(agentsOf(ms)) == 1 })
		if a := agentsOf(ms)[0]; a.TurnID != early || a.Text != "Hello, I am here." || a.Agent != "Demo agent" {
			t.Errorf("the early message shows as %+v", a)
		}
		late := agentSays(t, s.base, minted.Token, sid, "How can I help?")
		ms = b.waitMessages("the next message, live", func(ms []widgetMsg) bool { return len(agentsOf(ms)) >= 2 })
		if as := agentsOf(ms); len(as) != 2 || as[0].TurnID != early || as[1].TurnID != late {
			t.Errorf("agent messages %+v, want %s then %s, once each", as, early, late)
		}
		agentDoes(t, s.base, minted.Token, sid, "close")
		b.waitHandoff("bot", "Back to the assistant")
	})

	t.Run("rating answers: 👍/👎 under the bot's answers, live and from history", func(t *testing.T) {
		b := s.newTab(t)
		b.allow("status of 404", "ERR_BLOCKED_BY_CLIENT") // the feedback route, on a build without it; a rating held back
		// The feedback requests the page sends: their bodies, then their statuses.
		type feedback struct {
			body   string
			status int64
		}
		var (
			mu   sync.Mutex
			sent []*feedback
			byID = map[network.RequestID]*feedback{}
		)
		err := chromedp.Listen(b.ctx, func(ev any) {
			mu.Lock()
			defer mu.Unlock()
			switch ev := ev.(type) {
			case *network.EventRequestWillBeSent:
				if ev.Request.Method == "POST" && strings.HasSuffix(ev.Request.URL, "/feedback") {
					f := &feedback{}
					for _, e := range ev.Request.PostDataEntries {
						f.body += string(e.Bytes)
					}
					sent = append(sent, f)
					byID[ev.RequestID] = f
				}
			case *network.EventResponseReceived:
				if f := byID[ev.RequestID]; f != nil {
					f.status = ev.Response.Status
				}
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		// wantSent waits for n feedback requests (more when some were held back), the last
		// one answered, and checks it.
		wantSent := func(n int, rating string, status int64) {
			t.Helper()
			var last feedback
			b.until(fmt.Sprintf("%d feedback requests, the last answered", n), func() bool {
				mu.Lock()
				defer mu.Unlock()
				if len(sent) < n || sent[len(sent)-1].status == 0 {
					return false
				}
				last = *sent[len(sent)-1]
				return true
			})
			var body map[string]any
			if err := json.Unmarshal([]byte(last.body), &body); err != nil || len(body) != 1 || body["rating"] != rating || last.status != status {
				t.Errorf("feedback request %d: body %q (%v), status %d; want {\"rating\":%q}, %d", n, last.body, err, last.status, rating, status)
			}
		}
		type rateButton struct {
			Label   string `json:"label"`
			Pressed string `json:"pressed"`
		}
		type rating struct {
			Rated     string                `json:"rated"`
			Buttons   map[string]rateButton `json:"buttons"`
			Elsewhere int                   `json:"elsewhere"` // buttons on the greeting and the user's messages
		}
		const answer = `[...` + shadow + `.querySelectorAll('.fd-msg-assistant:not(.fd-greeting)')].pop()`
		ratingOf := func() rating {
			t.Helper()
			var r rating
			b.eval(`(() => {
			  const m = `+answer+`, buttons = {};
			  for (const e of m.querySelectorAll('.fd-rate')) buttons[e.dataset.rating] = {label: e.getAttribute('aria-label'), pressed: e.getAttribute('aria-pressed')};
			  return {rated: m.dataset.rated || '', buttons,
			    elsewhere: `+shadow+`.querySelectorAll('.fd-greeting .fd-rate, .fd-msg-user .fd-rate').length};
			})()`, &r)
			return r
		}
		wantButtons := func(what string, r rating, rated string) {
			t.Helper()
			up, down := r.Buttons["up"], r.Buttons["down"]
			pressed := func(on bool) string { return strconv.FormatBool(on) }
			if len(r.Buttons) != 2 || up.Label != "有帮助" || down.Label != "没有帮助" || r.Rated != rated ||
				up.Pressed != pressed(rated == "up") || down.Pressed != pressed(rated == "down") || r.Elsewhere != 0 {
				t.Errorf("%s: %+v, want 👍 有帮助 and 👎 没有帮助 under the answer only, rated %q", what, r, rated)
			}
		}
		click := func(rating string) {
			t.Helper()
			b.do(chromedp.Click(chromedp.JSPath(answer + `.querySelector('.fd-rate[data-rating=` + rating + `]')`)))
		}

		b.do(chromedp.EmulateViewport(1280, 800), chromedp.Navigate(s.base+"/?tenant=qinghe-bank"))
		b.waitJS("the widget", `!!`+inWidget(".fd-input")+` && !!`+inWidget(".fd-greeting"))
		b.ask("借记卡丢了怎么挂失？")
		ms := b.lastAnswered(2)
		turn := ms[1].TurnID
		if ms[1].Source != "faq" || turn == "" {
			t.Fatalf("answer %+v, want an FAQ answer with its turn id", ms[1])
		}
		wantButtons("under the answer", ratingOf(), "")
		b.screenshot("bank-rating-desktop", 1280, 800)

		// Whether this build has the route: the same user rates the same turn over HTTP.
		var token string
		b.eval(`JSON.parse(localStorage.getItem('fengda:' + location.origin + ':qinghe-bank:token')).token`, &token)
		r := send("POST", s.base+"/v1/turns/"+turn+"/feedback", token, []byte(`{"rating":"up"}`))
		var routed bool
		switch {
		case r.err == nil && r.status == http.StatusNoContent:
			routed = true
		case r.err == nil && r.status == http.StatusNotFound:
			wantError(t, "feedback without the route", r, http.StatusNotFound, "not_found")
			t.Log("feedback route absent on this build")
		default:
			t.Fatalf("POST /v1/turns/%s/feedback: status %d, error %v, body %s", turn, r.status, r.err, r.body)
		}

		click("down")
		wantSent(1, "down", map[bool]int64{true: http.StatusNoContent, false: http.StatusNotFound}[routed])
		if routed {
			b.waitJS("the rating shown", answer+`.dataset.rated === 'down'`)
			wantButtons("after 👎", ratingOf(), "down")
			// A rating replaces the last: over HTTP, then in the page.
			r = send("POST", s.base+"/v1/turns/"+turn+"/feedback", token, []byte(`{"rating":"down","comment":"too short"}`))
			if r.err != nil || r.status != http.StatusNoContent {
				t.Errorf("a second rating over HTTP: status %d, error %v, body %s; want 204", r.status, r.err, r.body)
			}
			click("up")
			wantSent(2, "up", http.StatusNoContent)
			b.waitJS("the changed rating", answer+`.dataset.rated === 'up'`)
			wantButtons("after 👍", ratingOf(), "up")
		} else {
			b.waitJS("the buttons gone", shadow+`.querySelectorAll('.fd-rate').length === 0`)
			if r := ratingOf(); r.Rated != "" {
				t.Errorf("without the route the answer is marked rated %q", r.Rated)
			}
		}

		// After a reload, the answer from history has its buttons again.
		b.do(chromedp.Reload())
		b.waitMessages("the history after a reload", func(ms []widgetMsg) bool {
			return len(ms) == 2 && ms[1].History && ms[1].TurnID == turn
		})
		b.waitJS("the buttons on the history's answer", answer+`.querySelectorAll('.fd-rate').length === 2`)
		wantButtons("the history's answer", ratingOf(), "")

		// A rating that does not get through says so for a moment; the buttons stay.
		block := func(patterns ...string) {
			t.Helper()
			ps := make([]*network.BlockPattern, 0, len(patterns))
			for _, p := range patterns {
				ps = append(ps, &network.BlockPattern{URLPattern: p, Block: true})
			}
			if _, err := chromedp.Call(b.ctx, network.SetBlockedURLs, network.SetBlockedURLsParams{URLPatterns: ps}); err != nil {
				t.Fatal(err)
			}
		}
		block(s.base + "/v1/turns/*/feedback")
		click("up")
		b.waitJS("the note", answer+`.querySelector('.fd-rating [role=status]')?.textContent === '评价未能提交，请稍后再试。'`)
		block()
		wantButtons("after a rating that did not get through", ratingOf(), "")
		if routed {
			click("down")
			wantSent(3, "down", http.StatusNoContent)
			b.waitJS("the history's answer rated", answer+`.dataset.rated === 'down'`)
		}
	})

	t.Logf("the browser tests took %v", time.Since(start).Round(time.Millisecond))
}

// consoleMsg is one message of the agents' console's open conversation.
type consoleMsg struct {
	Role   string `json:"role"`
	Text   string `json:"text"`
	TurnID string `json:"turn_id"`
}

// consoleMessages reads the console's open conversation, oldest first.
func (b *tab) consoleMessages() []consoleMsg {
	b.t.Helper()
	var ms []consoleMsg
	b.eval(`[...document.querySelectorAll('.fd-view .fd-log .fd-msg')].map((m) => ({
	  role: ['user', 'assistant', 'agent'].find((r) => m.classList.contains('fd-msg-' + r)) || '',
	  text: m.querySelector('.fd-bubble').textContent, turn_id: m.dataset.turnId || ''}))`, &ms)
	return ms
}

// consoleText is the text of the console's first element matching sel, "" without one.
func (b *tab) consoleText(sel string) string {
	b.t.Helper()
	var s string
	b.eval(`(document.querySelector(`+strconv.Quote(sel)+`) || {}).textContent || ''`, &s)
	return s
}

// waitJSWithin is waitJS with a bound of its own, for what takes longer than a step.
func (b *tab) waitJSWithin(d time.Duration, what, expr string) {
	b.t.Helper()
	deadline := time.Now().Add(d)
	for {
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`!!(() => { try { return `+expr+`; } catch (_) { return false; } })()`))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("waiting %v for %s (%s): %v\nwidget: %s", d, what, expr, err, b.describe())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// consoleConv is the selector of a conversation in one of the console's lists.
func consoleConv(list, sid string) string {
	return `.fd-list[data-list="` + list + `"] .fd-conv[data-session-id="` + sid + `"]`
}

// TestBrowserAgentConsole drives the agents' console at /agent in Chromium while a
// customer of the shop chats over plain HTTP: the demo agents sign in, the customer's
// request for a person shows up live, one agent claims it and talks with the customer,
// a second agent's claim is refused, and the close gives the customer back to the bot.
func TestBrowserAgentConsole(t *testing.T) {
	s := startBrowserSite(t)
	const shop = "northwind-shop"

	// Agent A: the browser speaks English; a demo agent of the shop.
	a := s.newTab(t)
	a.do(chromedp.EmulateViewport(1280, 800), chromedp.Navigate(s.base+"/agent"))
	a.waitJS("the demo agent buttons", `document.querySelectorAll('#fd-agent-signin [data-demo-tenant]').length === 2`)
	if got := a.consoleText(`[data-demo-tenant="` + shop + `"]`); got != "Demo agent · Northwind Outfitters" {
		t.Errorf("demo button: %q", got)
	}
	a.do(chromedp.Click(chromedp.CSS(`[data-demo-tenant="` + shop + `"]`)))
	a.waitJS("the live console", `document.getElementById('fd-agent').dataset.live === 'open'`)
	if who := a.consoleText(".fd-whoami"); who != "Demo agent · "+shop {
		t.Errorf("signed in as %q, want the demo agent of %s", who, shop)
	}
	var tokenA string
	a.eval(`JSON.parse(sessionStorage.getItem('fengda-agent')).token`, &tokenA)
	agentA, _ := claimsOf(t, tokenA)["sub"].(string)
	if !strings.HasPrefix(agentA, "demo-agent-") {
		t.Errorf("demo agent's user %q", agentA)
	}

	// The customer: an answer from the bot, then a request for a person, which reaches
	// the open console without a reload.
	cust, status := demoToken(t, s.base, shop, "", nil)
	if status != http.StatusOK {
		t.Fatalf("demo user token: status %d", status)
	}
	first := chatIn(t, s.base, cust, "", "How much does shipping cost?")
	if first.Source != "faq" {
		t.Fatalf("first turn: %+v, want an FAQ answer", first)
	}
	sid := first.SessionID
	asked := chatIn(t, s.base, cust, sid, "talk to a person")
	if asked.Source != "handoff" || asked.Handoff == nil || asked.Handoff.Status != "waiting" {
		t.Fatalf("talk to a person: %+v, want waiting", asked)
	}
	events := openStream(t, s.base, cust, "/v1/sessions/"+sid+"/events", "")
	if ev := events.next(); ev.Name != "handoff" || !statusIs("waiting")(ev.Data) {
		t.Errorf("customer's first event %s %s, want handoff waiting", ev.Name, ev.Data)
	}
	a.waitJS("the waiting conversation, live", `!!document.querySelector(`+strconv.Quote(consoleConv("waiting", sid))+`)`)
	var entry struct{ Position, Status, Text string }
	a.eval(`(() => { const c = document.querySelector(`+strconv.Quote(consoleConv("waiting", sid))+`);
	  return {position: c.dataset.position, status: c.dataset.status, text: c.textContent}; })()`, &entry)
	if entry.Position != "1" || entry.Status != "waiting" || !strings.Contains(entry.Text, "talk to a person") || !strings.Contains(entry.Text, "asked for a person") {
		t.Errorf("queue entry %+v, want position 1, waiting, the cause and the last message", entry)
	}

	// Agent B, in Chinese, whose live stream cannot open: the queue as it was when the
	// page loaded.
	b := s.newTab(t)
	b.allow("ERR_BLOCKED_BY_CLIENT", "status of 409")
	if _, err := chromedp.Call(b.ctx, network.SetBlockedURLs, network.SetBlockedURLsParams{
		URLPatterns: []*network.BlockPattern{{URLPattern: s.base + "/v1/agent/events", Block: true}},
	}); err != nil {
		t.Fatal(err)
	}
	b.do(chromedp.EmulateViewport(1280, 800), chromedp.Navigate(s.base+"/agent?lang=zh-CN"))
	b.waitJS("the sign-in form", `!!document.querySelector('#fd-agent-signin .fd-signin')`)
	if got := b.consoleText(".fd-signin"); got != "登录" {
		t.Errorf("sign-in button with ?lang=zh-CN: %q", got)
	}
	b.do(chromedp.Click(chromedp.CSS(`[data-demo-tenant="` + shop + `"]`)))
	b.waitJS("the queue without the live stream", `document.getElementById('fd-agent').dataset.live === 'retrying' && !!document.querySelector(`+strconv.Quote(consoleConv("waiting", sid))+`)`)
	b.do(chromedp.Click(chromedp.CSS(consoleConv("waiting", sid))))
	b.waitJS("B's view of it", `document.querySelector('.fd-view').dataset.status === 'waiting' && !document.querySelector('.fd-claim').hidden`)

	// A opens it: the whole history, the bot's turns included; then claims it.
	a.do(chromedp.Click(chromedp.CSS(consoleConv("waiting", sid))))
	a.waitJS("the history", `document.querySelectorAll('.fd-view .fd-log .fd-msg').length >= 4`)
	ms := a.consoleMessages()
	if len(ms) != 4 || ms[0].Role != "user" || ms[0].Text != "How much does shipping cost?" || ms[1].Role != "assistant" || ms[1].Text != first.Answer ||
		ms[2].Role != "user" || ms[2].Text != "talk to a person" || ms[3].Role != "assistant" || ms[3].Text != asked.Answer || ms[0].TurnID != first.TurnID {
		t.Errorf("history %+v, want the FAQ turn and the request for a person, the bot's answers as assistant", ms)
	}
	a.do(chromedp.Click(chromedp.CSS(".fd-claim")))
	a.waitJS("the claimed conversation", `document.querySelector('.fd-view').dataset.mine === 'true' && !!document.querySelector(`+strconv.Quote(consoleConv("mine", sid))+`) && !document.querySelector(`+strconv.Quote(consoleConv("waiting", sid))+`)`)
	events.waitFor("handoff", func(d []byte) bool {
		var h handoffStatus
		return json.Unmarshal(d, &h) == nil && h.Status == "agent" && h.Agent != nil && h.Agent.Name == "Demo agent"
	})

	// B, who did not hear of the claim, tries too: refused, in words, and B's lists
	// are fetched again.
	b.do(chromedp.Click(chromedp.CSS(".fd-claim")))
	b.waitJS("the conflict", `!!document.querySelector('.fd-notice[data-error="conflict"]:not([hidden])')`)
	if got := b.consoleText(".fd-notice"); !strings.Contains(got, "该会话已被其他坐席接入") {
		t.Errorf("B's notice %q, want that another agent took it", got)
	}
	b.waitJS("B's refreshed view", `document.querySelector('.fd-view').dataset.status === 'agent' && document.querySelector('.fd-claim').hidden && !document.querySelector(`+strconv.Quote(consoleConv("waiting", sid))+`)`)
	if got := b.consoleText(".fd-state"); got != "由 Demo agent 接待中" {
		t.Errorf("B's view says %q, want who holds it", got)
	}

	// A writes two lines (Shift+Enter) and sends with Enter: the customer's stream has it.
	a.do(
		chromedp.Click(chromedp.CSS(".fd-input")),
		chromedp.SendKeys(chromedp.CSS(".fd-input"), "Hello, this is the shop."),
		chromedp.KeyEvent(kb.Enter, chromedp.KeyModifiers(chromedp.ModifierShift)),
		chromedp.SendKeys(chromedp.CSS(".fd-input"), "How can I help?"),
	)
	if got := a.consoleText(".fd-count"); got != "40 / 4000" {
		t.Errorf("counter %q, want 40 / 4000", got)
	}
	a.do(chromedp.KeyEvent(kb.Enter))
	const reply = "Hello, this is the shop.\nHow can I help?"
	ev := events.waitFor("message", func(d []byte) bool {
		var m liveMessage
		return json.Unmarshal(d, &m) == nil && m.Role == "agent"
	})
	var got liveMessage
	if err := json.Unmarshal(ev.Data, &got); err != nil || got.Content != reply || got.Agent == nil || got.Agent.Name != "Demo agent" {
		t.Errorf("the customer received %s, want the agent's two lines from Demo agent", ev.Data)
	}
	a.waitJS("the sent message in the log, the input empty", `[...document.querySelectorAll('.fd-log .fd-msg-agent')].length === 1 && document.querySelector('.fd-input').value === ''`)
	if ms := a.consoleMessages(); ms[len(ms)-1].Text != reply || ms[len(ms)-1].TurnID != got.TurnID {
		t.Errorf("the console shows %+v last, want the agent's message with turn %s", ms[len(ms)-1], got.TurnID)
	}

	// The limit is shown, and a message over it cannot be sent.
	var over struct {
		Count    string
		Over     bool
		Disabled bool
	}
	a.eval(`(() => { const i = document.querySelector('.fd-input'); i.value = 'x'.repeat(4001); i.dispatchEvent(new Event('input'));
	  const c = document.querySelector('.fd-count'); const out = {count: c.textContent, over: c.dataset.over === 'true', disabled: document.querySelector('.fd-send').disabled};
	  i.value = ''; i.dispatchEvent(new Event('input')); return out; })()`, &over)
	if over.Count != "4001 / 4000" || !over.Over || !over.Disabled {
		t.Errorf("4001 characters: %+v, want the count over the limit and Send disabled", over)
	}

	// The customer answers: it shows up live in A's conversation.
	held := chatIn(t, s.base, cust, sid, "It is order 1042.")
	if held.Source != "handoff" || held.Answer != "" {
		t.Errorf("customer's message to the agent: %+v, want source handoff and no answer", held)
	}
	a.waitJS("the customer's message, live", `[...document.querySelectorAll('.fd-log .fd-msg-user')].some((m) => m.textContent.includes('It is order 1042.'))`)
	a.screenshot("agent-console", 1280, 800)

	// A closes it with a resolution: it leaves Mine, and the bot answers again.
	a.do(
		chromedp.SendKeys(chromedp.CSS(".fd-resolution"), "order status given"),
		chromedp.Click(chromedp.CSS(".fd-close-conv")),
	)
	a.waitJS("the closed conversation", `document.querySelector('.fd-view').dataset.status === 'closed' && !document.querySelector(`+strconv.Quote(consoleConv("mine", sid))+`) && !!document.querySelector(`+strconv.Quote(consoleConv("closed", sid))+`)`)
	if got := a.consoleText(".fd-state"); got != "Closed: order status given" {
		t.Errorf("closed view says %q", got)
	}
	events.waitFor("handoff", statusIs("closed"))
	if after := chatIn(t, s.base, cust, sid, "How much does shipping cost?"); after.Source != "faq" && after.Source != "clarify" {
		t.Errorf("after the close: %+v, want the engine's answer", after)
	}

	// B's stream opens at last, at one of its reconnects (backoff up to 30s): B's lists
	// are fetched again, and live events follow.
	if _, err := chromedp.Call(b.ctx, network.SetBlockedURLs, network.SetBlockedURLsParams{
		URLPatterns: []*network.BlockPattern{{URLPattern: s.base + "/v1/agent/events", Block: false}},
	}); err != nil {
		t.Fatal(err)
	}
	b.waitJSWithin(45*time.Second, "B's stream, reconnected", `document.getElementById('fd-agent').dataset.live === 'open'`)
	b.waitJS("B's lists, fetched again", `!!document.querySelector(`+strconv.Quote(consoleConv("closed", sid))+`)`)
	cust2, _ := demoToken(t, s.base, shop, "", nil)
	second := chatIn(t, s.base, cust2, "", "I want to speak to a human")
	if second.Source != "handoff" {
		t.Fatalf("second customer: %+v, want a handoff", second)
	}
	b.waitJS("a new waiting conversation in B's console, live", `!!document.querySelector(`+strconv.Quote(consoleConv("waiting", second.SessionID))+`)`)

	// A reload keeps A signed in; a demo token with less than a fifth of its life left
	// is renewed, for the same agent. Sign out forgets the token.
	a.eval(`(() => { const s = JSON.parse(sessionStorage.getItem('fengda-agent'));
	  s.issued = Date.now() - 25 * 60000; s.expires = Date.now() + 60000;
	  sessionStorage.setItem('fengda-agent', JSON.stringify(s)); return true; })()`, nil)
	a.do(chromedp.Reload())
	a.waitJS("the console after a reload", `document.getElementById('fd-agent').dataset.live === 'open' && !!document.querySelector(`+strconv.Quote(consoleConv("closed", sid))+`)`)
	var renewed string
	a.eval(`JSON.parse(sessionStorage.getItem('fengda-agent')).token`, &renewed)
	if sub, _ := claimsOf(t, renewed)["sub"].(string); renewed == tokenA || sub != agentA {
		t.Errorf("after a reload with a token near its end: token renewed %v, agent %q; want a new token for %q", renewed != tokenA, sub, agentA)
	}

	// A customer's token is refused by the agents' API: the console says why.
	a.allow("status of 403")
	a.do(chromedp.Click(chromedp.CSS(".fd-signout")))
	a.waitJS("the sign-in form", `!!document.querySelector('#fd-agent-signin .fd-token') && !sessionStorage.getItem('fengda-agent')`)
	a.do(
		chromedp.SendKeys(chromedp.CSS(".fd-token"), cust),
		chromedp.Click(chromedp.CSS(".fd-signin")),
	)
	a.waitJS("the refusal", `document.getElementById('fd-agent').dataset.state === 'signed-out' && !!document.querySelector('.fd-notice[data-error="forbidden"]:not([hidden])')`)
	if got := a.consoleText(".fd-notice"); !strings.Contains(got, "not an agent's token") {
		t.Errorf("a user's token: notice %q, want that it is not an agent's", got)
	}
	b.screenshot("agent-console-zh", 1280, 800)
}

// TestBrowserHandoff is the whole handoff as its two people see it, each in their own
// page: a customer in the bank's demo page asks for a person, an agent in the console
// claims and answers, the customer sees it stream in and replies, the agent closes,
// and the bot answers again.
func TestBrowserHandoff(t *testing.T) {
	s := startBrowserSite(t)
	const bank = "qinghe-bank"

	// The agent signs in first, so the desk is staffed.
	a := s.newTab(t)
	a.do(chromedp.EmulateViewport(1280, 800), chromedp.Navigate(s.base+"/agent?lang=zh-CN"))
	a.waitJS("the demo agent buttons", `!!document.querySelector('[data-demo-tenant="`+bank+`"]')`)
	a.do(chromedp.Click(chromedp.CSS(`[data-demo-tenant="` + bank + `"]`)))
	a.waitJS("the live console", `document.getElementById('fd-agent').dataset.live === 'open'`)

	// Another customer, over HTTP, is first in the queue.
	other, status := demoToken(t, s.base, bank, "", nil)
	if status != http.StatusOK {
		t.Fatalf("demo user token: status %d", status)
	}
	ahead := chatIn(t, s.base, other, "", "转人工")
	if ahead.Handoff == nil || ahead.Handoff.Status != "waiting" {
		t.Fatalf("the customer ahead: %+v, want waiting", ahead)
	}

	// The customer asks for a person in the widget.
	c := s.newTab(t)
	c.do(chromedp.EmulateViewport(1280, 800), chromedp.Navigate(s.base+"/?tenant="+bank))
	c.waitJS("the widget", `!!`+inWidget(".fd-input"))
	c.ask("借记卡丢了怎么挂失？")
	if ms := c.lastAnswered(2); ms[1].Source != "faq" {
		t.Fatalf("first answer %+v, want the FAQ's", ms[1])
	}
	c.ask("转人工")
	if ms := c.lastAnswered(4); ms[3].Source != "handoff" || ms[3].Text == "" {
		t.Fatalf("the reply to 转人工: %+v, want the handoff's notice", ms[3])
	}
	c.waitHandoff("waiting", "第 2 位")
	sid := c.sessionID(s.base, bank)

	// The one ahead is claimed: the widget's place moves up, live.
	var agentToken string
	a.eval(`JSON.parse(sessionStorage.getItem('fengda-agent')).token`, &agentToken)
	agentDoes(t, s.base, agentToken, ahead.SessionID, "claim")
	c.waitHandoff("waiting", "第 1 位")

	// It reaches the console live; the agent opens it, sees the bot's turns, claims it.
	a.waitJS("the waiting conversation, live", `!!document.querySelector(`+strconv.Quote(consoleConv("waiting", sid))+`)`)
	a.do(chromedp.Click(chromedp.CSS(consoleConv("waiting", sid))))
	a.waitJS("the history", `document.querySelectorAll('.fd-view .fd-log .fd-msg').length >= 4`)
	if ms := a.consoleMessages(); len(ms) != 4 || ms[0].Text != "借记卡丢了怎么挂失？" || ms[1].Role != "assistant" || ms[2].Text != "转人工" {
		t.Errorf("the agent sees %+v, want the customer's two messages and the bot's answers", ms)
	}
	a.do(chromedp.Click(chromedp.CSS(".fd-claim")))
	a.waitJS("the claim", `document.querySelector('.fd-view').dataset.mine === 'true'`)
	c.waitHandoff("agent", "人工客服 Demo agent 为您服务")

	// The agent answers; it streams into the customer's widget with the agent's name.
	a.do(
		chromedp.Click(chromedp.CSS(".fd-input")),
		chromedp.SendKeys(chromedp.CSS(".fd-input"), "您好，请问卡是什么时候丢的？"),
		chromedp.KeyEvent(kb.Enter),
	)
	ms := c.waitMessages("the agent's message", func(ms []widgetMsg) bool { return len(agentsOf(ms)) == 1 })
	if m := agentsOf(ms)[0]; m.Text != "您好，请问卡是什么时候丢的？" || m.Agent != "Demo agent" || m.History {
		t.Errorf("the customer sees %+v, want the agent's message, live, from Demo agent", m)
	}

	// The customer replies: the agent sees it live, the bot stays silent.
	c.ask("昨天下午")
	a.waitJS("the customer's reply, live", `[...document.querySelectorAll('.fd-log .fd-msg-user')].some((m) => m.textContent.includes('昨天下午'))`)
	c.waitMessages("the reply sent, and no answer from the bot", func(ms []widgetMsg) bool {
		n := len(ms)
		return n == 6 && ms[n-1].Role == "user" && ms[n-1].Text == "昨天下午"
	})

	// The agent closes it; the customer is back with the bot, which answers.
	a.do(
		chromedp.SendKeys(chromedp.CSS(".fd-resolution"), "已冻结"),
		chromedp.Click(chromedp.CSS(".fd-close-conv")),
	)
	a.waitJS("the close", `document.querySelector('.fd-view').dataset.status === 'closed'`)
	c.waitHandoff("bot", "对话已转回智能客服")
	c.ask("开户需要准备哪些材料？")
	ms = c.waitMessages("the bot's answer", func(ms []widgetMsg) bool {
		n := len(ms)
		return n > 0 && ms[n-1].Role == "assistant" && ms[n-1].State == "done"
	})
	if last := ms[len(ms)-1]; last.Source != "faq" {
		t.Errorf("after the close: %+v, want the FAQ's answer", last)
	}
}

// TestBrowserAgentConsoleListRace: a conversation that changes while the console's
// lists are being fetched (read before the change, answered after it) is not lost when
// they arrive. The page's fetch of the lists is held back after the server answered.
func TestBrowserAgentConsoleListRace(t *testing.T) {
	s := startBrowserSite(t)
	const shop = "northwind-shop"
	a := s.newTab(t)
	a.do(chromedp.EmulateViewport(1280, 800), chromedp.Navigate(s.base+"/agent"))
	a.waitJS("the demo agent buttons", `!!document.querySelector('[data-demo-tenant="`+shop+`"]')`)
	a.do(chromedp.Click(chromedp.CSS(`[data-demo-tenant="` + shop + `"]`)))
	a.waitJS("the live console", `document.getElementById('fd-agent').dataset.live === 'open'`)

	// From the next page load on, the lists' answers reach the page 1.5 s after the
	// server gave them, and the page notes when the server has.
	const hold = `(() => {
	  const fetch0 = window.fetch;
	  window.__listsAnswered = 0;
	  window.fetch = async (input, init) => {
	    const res = await fetch0(input, init);
	    if (String(input).includes('/v1/agent/conversations?status=')) {
	      window.__listsAnswered++;
	      await new Promise((r) => setTimeout(r, 1500));
	      window.__listsDelivered = (window.__listsDelivered || 0) + 1;
	    }
	    return res;
	  };
	})();`
	if _, err := chromedp.Call(a.ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: hold}); err != nil {
		t.Fatal(err)
	}
	a.do(chromedp.Reload())
	a.waitJS("the lists answered by the server, held back from the page", `window.__listsAnswered === 3`)

	// A customer asks for a person now: the console's stream has it before the lists,
	// which were read before it, reach the page.
	cust, _ := demoToken(t, s.base, shop, "", nil)
	asked := chatIn(t, s.base, cust, "", "talk to a person")
	if asked.Handoff == nil || asked.Handoff.Status != "waiting" {
		t.Fatalf("talk to a person: %+v, want waiting", asked)
	}
	a.waitJS("the held-back lists, delivered", `window.__listsDelivered === 3`)
	a.waitJS("the conversation that waited while the lists were fetched, in the queue",
		`!!document.querySelector(`+strconv.Quote(consoleConv("waiting", asked.SessionID))+`)`)
}

// adminEntry is a row of the admin console's knowledge base table, as the page shows it.
type adminEntry struct {
	ID         string `json:"id"`
	Question   string `json:"question"`
	Alternates string `json:"alternates"`
	Answer     string `json:"answer"`
	Tags       string `json:"tags"`
	Hidden     bool   `json:"hidden"`
}

// adminEntries reads the console's table, hidden rows included.
func (b *tab) adminEntries() []adminEntry {
	b.t.Helper()
	var es []adminEntry
	b.eval(`[...document.querySelectorAll('.fd-kb tr.fd-entry')].map((r) => ({id: r.dataset.id,
	  question: r.querySelector('.fd-cell-question').textContent, alternates: r.querySelector('.fd-cell-alternates').textContent,
	  answer: r.querySelector('.fd-cell-answer').textContent, tags: r.querySelector('.fd-cell-tags').textContent, hidden: r.hidden}))`, &es)
	return es
}

// adminVersion is the knowledge base's version the console shows (0 before it has one).
func (b *tab) adminVersion() int {
	b.t.Helper()
	var v string
	b.eval(`document.getElementById('fd-admin').dataset.version || '0'`, &v)
	n, _ := strconv.Atoi(v)
	return n
}

// adminSearch types query into the console's search box, after emptying it, as an
// input method commits text (so that any characters arrive as typed).
func (b *tab) adminSearch(query string) {
	b.t.Helper()
	b.adminSet(".fd-search", "")
	if query == "" {
		return
	}
	b.do(chromedp.Click(chromedp.CSS(".fd-search")), chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, input.InsertText, input.InsertTextParams{Text: query})
		return err
	}))
}

// adminSet sets the value of the console's field sel, as an edit would.
func (b *tab) adminSet(sel, value string) {
	b.t.Helper()
	b.eval(`(() => { const f = document.querySelector(`+strconv.Quote(sel)+`); f.value = `+strconv.Quote(value)+`;
	  f.dispatchEvent(new Event('input', {bubbles: true})); return true; })()`, nil)
}

// adminSettled is true once the console has read the knowledge base afresh.
const adminSettled = `(() => { const r = document.getElementById('fd-admin'); return r.dataset.state === 'signed-in' && !r.dataset.busy && !!r.dataset.version; })()`

// kbFileEntry is an entry of a knowledge base file.
type kbFileEntry struct {
	ID         string   `yaml:"id"`
	Question   string   `yaml:"question"`
	Alternates []string `yaml:"alternates"`
	Answer     string   `yaml:"answer"`
	Tags       []string `yaml:"tags"`
}

// kbEntries reads a knowledge base file's entries, in order.
func kbEntries(t *testing.T, path string) []kbFileEntry {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var kb struct {
		Entries []kbFileEntry `yaml:"entries"`
	}
	if err := yaml.Unmarshal(raw, &kb); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return kb.Entries
}

// matching returns the ids of the entries that hold every word of query, in any case:
// what the console's search shows.
func matching(entries []kbFileEntry, query string) []string {
	var ids []string
	for _, e := range entries {
		text := strings.ToLower(strings.Join(append(append([]string{e.ID, e.Question, e.Answer}, e.Alternates...), e.Tags...), "\n"))
		all := true
		for _, w := range strings.Fields(strings.ToLower(query)) {
			all = all && strings.Contains(text, w)
		}
		if all {
			ids = append(ids, e.ID)
		}
	}
	return ids
}

// driveAdminConsole is what an admin of the shop does in the console at base+"/admin":
// signs in as a demo admin, finds an entry, changes its answer, makes a mistake, makes
// and deletes an entry, imports a file with a bad line, exports, and rolls back.
// customerGets(question, answer) checks that a customer asking question now gets answer.
func driveAdminConsole(t *testing.T, s *browserSite, base string, customerGets func(question, answer string)) {
	const (
		shop     = "northwind-shop"
		question = "How much does shipping cost?"
		newAns   = "Shipping is free on every order this month, whatever its size."
	)
	entries := kbEntries(t, "kb/shop-en.yaml")
	var ids []string
	for _, e := range entries {
		ids = append(ids, e.ID)
	}
	a := s.newTab(t)
	a.do(chromedp.EmulateViewport(1280, 900), chromedp.Navigate(base+"/admin"))
	a.waitJS("the demo admin buttons", `document.querySelectorAll('#fd-admin-signin [data-demo-tenant]').length === 2`)
	if got := a.consoleText(`[data-demo-tenant="` + shop + `"]`); got != "Demo admin · Northwind Outfitters" {
		t.Errorf("demo button: %q", got)
	}
	a.do(chromedp.Click(chromedp.CSS(`[data-demo-tenant="` + shop + `"]`)))
	a.waitJS("the knowledge base", adminSettled+` && document.querySelectorAll('.fd-kb tr.fd-entry').length > 0`)
	var token string
	a.eval(`JSON.parse(sessionStorage.getItem('fengda-admin')).token`, &token)
	c := claimsOf(t, token)
	if sub, _ := c["sub"].(string); !strings.HasPrefix(sub, "demo-admin-") || c["role"] != "admin" || c["tid"] != shop {
		t.Errorf("signed in with claims %v, want a demo admin of %s", c, shop)
	}
	if who := a.consoleText(".fd-whoami"); who != "Demo admin · "+shop {
		t.Errorf("signed in as %q", who)
	}

	// The table lists the entries, in the file's order.
	rows := a.adminEntries()
	var got []string
	for _, r := range rows {
		got = append(got, r.ID)
	}
	if !slices.Equal(got, ids) {
		t.Fatalf("the table lists %v, want the shop's entries %v", got, ids)
	}
	ship := rows[slices.Index(got, "shipping-cost")]
	if ship.Question != question || ship.Alternates != "3" || ship.Tags != "shipping" || !strings.HasPrefix(ship.Answer, "Standard shipping is free") {
		t.Errorf("the shipping-cost row: %+v", ship)
	}
	v0 := a.adminVersion()
	if !strings.Contains(a.consoleText(".fd-kb-version"), strconv.Itoa(v0)) {
		t.Errorf("version shown %q, want %d", a.consoleText(".fd-kb-version"), v0)
	}

	// The search filters as one types, in any case, over alternates too, and full-width
	// letters match their ASCII.
	visible := func() []string {
		var out []string
		for _, r := range a.adminEntries() {
			if !r.Hidden {
				out = append(out, r.ID)
			}
		}
		return out
	}
	for _, tt := range []struct{ query, like string }{
		{"SHIPPING cost", "shipping cost"},
		{"delivery fee", "delivery fee"}, // an alternate of shipping-cost
		{"ＤＥＬＩＶＥＲＹ　ｆｅｅ", "delivery fee"},
		{"orders cancel", "orders cancel"},
	} {
		a.adminSearch(tt.query)
		want := matching(entries, tt.like)
		if v := visible(); !slices.Equal(v, want) || len(v) == 0 {
			t.Errorf("search %q shows %v, want %v", tt.query, v, want)
		}
		if got := a.consoleText(".fd-count"); got != fmt.Sprintf("%d of %d entries", len(want), len(ids)) {
			t.Errorf("search %q: count %q", tt.query, got)
		}
	}
	if v := matching(entries, "delivery fee"); !slices.Contains(v, "shipping-cost") {
		t.Errorf("delivery fee matches %v, not shipping-cost", v)
	}
	a.adminSearch("no such thing zzz")
	if v := visible(); len(v) != 0 || a.consoleText(".fd-empty") != "No entry matches." {
		t.Errorf("search for nothing: %v shown, %q", v, a.consoleText(".fd-empty"))
	}
	a.adminSearch("delivery fee")

	// Edit the answer and save: the table, the version and the customer have it.
	a.do(chromedp.Click(chromedp.CSS(`tr.fd-entry[data-id="shipping-cost"]`)))
	a.waitJS("the form", `document.querySelector('.fd-edit').dataset.id === 'shipping-cost' && document.querySelector('.fd-id').readOnly`)
	var oldAns string
	a.eval(`document.querySelector('.fd-answer').value`, &oldAns)
	if !strings.HasPrefix(oldAns, "Standard shipping is free") {
		t.Fatalf("the form's answer: %q", oldAns)
	}
	customerGets(question, oldAns)
	a.adminSet(".fd-answer", newAns)
	a.do(chromedp.Click(chromedp.CSS(".fd-save")))
	a.waitJS("the saved entry", `!!document.querySelector('.fd-notice:not([hidden]):not([data-error])') && +document.getElementById('fd-admin').dataset.version > `+strconv.Itoa(v0)+
		` && document.querySelector('tr.fd-entry[data-id="shipping-cost"] .fd-cell-answer').textContent === `+strconv.Quote(newAns))
	customerGets(question, newAns)
	v1 := a.adminVersion()

	// An empty answer is refused: the problem is shown next to the answer, nothing changes.
	a.allow("status of 400")
	a.adminSet(".fd-answer", "")
	a.do(chromedp.Click(chromedp.CSS(".fd-save")))
	a.waitJS("the field error", `!!document.querySelector('.fd-field-error[data-field="answer"]:not([hidden])') && !!document.querySelector('.fd-notice[data-error]:not([hidden])')`)
	if got := a.consoleText(`.fd-field-error[data-field="answer"]`); got == "" {
		t.Error("the answer's error is empty")
	}
	var invalid string
	a.eval(`document.querySelector('.fd-answer').getAttribute('aria-invalid') || ''`, &invalid)
	if invalid != "true" || a.adminVersion() != v1 {
		t.Errorf("after the refused save: aria-invalid %q, version %d; want true, %d", invalid, a.adminVersion(), v1)
	}
	a.screenshot("admin-console-edit", 1280, 900)

	// A new entry: a bad id is caught in the page; a good one is saved, then deleted after
	// a No and a Yes.
	a.adminSearch("")
	a.do(chromedp.Click(chromedp.CSS(".fd-new")))
	a.waitJS("the new entry's form", `document.querySelector('.fd-edit').dataset.mode === 'new' && !document.querySelector('.fd-id').readOnly`)
	a.do(chromedp.SendKeys(chromedp.CSS(".fd-id"), "gift wrap!"), chromedp.Click(chromedp.CSS(".fd-save")))
	a.waitJS("the id's error", `!!document.querySelector('.fd-field-error[data-field="id"]:not([hidden])')`)
	a.adminSet(".fd-id", "gift-wrap")
	a.do(
		chromedp.SendKeys(chromedp.CSS(".fd-question"), "Do you offer gift wrapping?"),
		chromedp.SendKeys(chromedp.CSS(".fd-alternates"), "can you wrap my order"),
		chromedp.KeyEvent(kb.Enter),
		chromedp.SendKeys(chromedp.CSS(".fd-alternates"), "gift box"),
		chromedp.SendKeys(chromedp.CSS(".fd-answer"), "Yes: choose gift wrap at checkout for $4.95 an item."),
		chromedp.SendKeys(chromedp.CSS(".fd-tags"), "orders, gifts"),
		chromedp.Click(chromedp.CSS(".fd-save")),
	)
	a.waitJS("the new entry", `!!document.querySelector('tr.fd-entry[data-id="gift-wrap"]') && document.querySelector('.fd-edit').dataset.mode === 'edit'`)
	rows = a.adminEntries()
	if g := rows[len(rows)-1]; g.ID != "gift-wrap" || g.Alternates != "2" || g.Tags != "ordersgifts" {
		t.Errorf("the new row: %+v", g)
	}
	v2 := a.adminVersion()
	a.do(chromedp.Click(chromedp.CSS(".fd-delete")))
	a.waitJS("the delete's confirmation", `!!document.querySelector('.fd-edit .fd-confirm .fd-confirm-no') && document.querySelector('.fd-delete').hidden`)
	if got := a.consoleText(".fd-edit .fd-confirm"); !strings.HasPrefix(got, "Delete?") {
		t.Errorf("confirmation %q", got)
	}
	a.do(chromedp.Click(chromedp.CSS(".fd-confirm-no")))
	a.waitJS("the confirmation gone", `!document.querySelector('.fd-confirm') && !document.querySelector('.fd-delete').hidden`)
	if a.adminVersion() != v2 {
		t.Error("No changed the knowledge base")
	}
	a.do(chromedp.Click(chromedp.CSS(".fd-delete")), chromedp.Click(chromedp.CSS(".fd-confirm-yes")))
	a.waitJS("the entry deleted", adminSettled+` && !document.querySelector('tr.fd-entry[data-id="gift-wrap"]') && +document.getElementById('fd-admin').dataset.version > `+strconv.Itoa(v2))
	v3 := a.adminVersion()

	// A CSV file with a bad line: its line and problem in a table, nothing changed.
	dir := t.TempDir()
	bad := filepath.Join(dir, "faq.csv")
	csv := "id,question,alternates,answer,tags\n" +
		"returns-window,How long do I have to return something?,return period|how many days to return,You have 60 days.,returns\n" +
		"broken,What is this?,,,\n"
	if err := os.WriteFile(bad, []byte(csv), 0o600); err != nil {
		t.Fatal(err)
	}
	a.do(chromedp.SetUploadFiles(chromedp.CSS(".fd-import"), []string{bad}))
	a.waitJS("the import's errors", `document.querySelectorAll('.fd-import-errors:not([hidden]) tr.fd-import-error').length > 0`)
	var lines []string
	a.eval(`[...document.querySelectorAll('.fd-import-errors tr.fd-import-error .fd-line')].map((c) => c.textContent)`, &lines)
	if !slices.Contains(lines, "3") {
		t.Errorf("the import's errors are on lines %v, want line 3", lines)
	}
	if a.adminVersion() != v3 || len(a.adminEntries()) != len(ids) {
		t.Errorf("after the refused import: version %d, %d entries; want %d, %d", a.adminVersion(), len(a.adminEntries()), v3, len(ids))
	}
	customerGets(question, newAns)

	// Export as CSV: the browser saves the file.
	downloads := filepath.Join(dir, "downloads")
	if err := os.Mkdir(downloads, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(a.ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllow, BrowserContextID: chromedp.FromContext(a.ctx).BrowserContextID, DownloadPath: downloads,
	}); err != nil {
		t.Fatal(err)
	}
	a.do(chromedp.Click(chromedp.CSS(`.fd-export[data-format="csv"]`)))
	a.waitJS("the download's link", `document.querySelector('a.fd-download[data-format="csv"][download]').href.startsWith('blob:')`)
	var file []byte
	for deadline := time.Now().Add(browserStep); ; time.Sleep(100 * time.Millisecond) {
		fs, _ := filepath.Glob(filepath.Join(downloads, "*"))
		if len(fs) == 1 && !strings.HasSuffix(fs[0], ".crdownload") {
			if file, _ = os.ReadFile(fs[0]); len(file) > 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no download in %v: %v", browserStep, fs)
		}
	}
	if !bytes.Contains(file, []byte("shipping-cost")) || !bytes.Contains(file, []byte(newAns)) || bytes.Contains(file, []byte("gift-wrap")) {
		t.Errorf("the exported CSV:\n%s", file)
	}

	// The versions, newest first, grew with each change; rolling back to the first one
	// gives the customer the old answer again.
	var versions []struct {
		Version  string `json:"version"`
		Current  bool   `json:"current"`
		Rollback bool   `json:"rollback"`
	}
	a.eval(`[...document.querySelectorAll('.fd-versions tr.fd-version')].map((r) => ({version: r.dataset.version,
	  current: r.dataset.current === 'true', rollback: !!r.querySelector('.fd-rollback')}))`, &versions)
	if len(versions) < 4 || versions[0].Version != strconv.Itoa(v3) || !versions[0].Current || versions[0].Rollback || !versions[1].Rollback {
		t.Errorf("versions %+v, want at least 4, the current (%d) first without a rollback", versions, v3)
	}
	row := `.fd-versions tr.fd-version[data-version="` + strconv.Itoa(v0) + `"]`
	a.do(chromedp.Click(chromedp.CSS(row + " .fd-rollback")))
	a.waitJS("the rollback's confirmation", `!!document.querySelector(`+strconv.Quote(row+" .fd-confirm-yes")+`)`)
	a.do(chromedp.Click(chromedp.CSS(row + " .fd-confirm-yes")))
	a.waitJS("the rollback", adminSettled+` && +document.getElementById('fd-admin').dataset.version > `+strconv.Itoa(v3)+
		` && document.querySelector('tr.fd-entry[data-id="shipping-cost"] .fd-cell-answer').textContent.startsWith('Standard shipping is free')`)
	customerGets(question, oldAns)
	a.screenshot("admin-console", 1280, 900)

	// A customer's token is refused by the admin API: the console says why.
	cust, _ := demoToken(t, s.base, shop, "", nil)
	a.allow("status of 403")
	a.do(chromedp.Click(chromedp.CSS(".fd-signout")))
	a.waitJS("the sign-in form", `!!document.querySelector('#fd-admin-signin .fd-token') && !sessionStorage.getItem('fengda-admin')`)
	a.do(chromedp.SendKeys(chromedp.CSS(".fd-token"), cust), chromedp.Click(chromedp.CSS(".fd-signin")))
	a.waitJS("the refusal", `document.getElementById('fd-admin').dataset.state === 'signed-out' && !!document.querySelector('.fd-notice[data-error="forbidden"]:not([hidden])')`)
}

// TestBrowserAdminConsole drives the admin console at /admin in Chromium against the
// knowledge base API, while a customer of the shop asks over plain HTTP: what the admin
// saves, and what a rollback restores, is the customer's answer within 2 s.
func TestBrowserAdminConsole(t *testing.T) {
	s := startBrowserSite(t)
	const shop = "northwind-shop"
	var minted struct {
		Token string `json:"token"`
	}
	decode(t, "an admin's demo token", sendHeader("POST", s.base+"/v1/demo/token", nil, []byte(`{"tenant":"`+shop+`","role":"admin"}`)), http.StatusOK, &minted)
	if r := get(s.base, minted.Token, "/v1/admin/kb"); r.status != http.StatusOK {
		t.Fatalf("GET /v1/admin/kb as the demo admin: status %d %s", r.status, r.body)
	}
	cust, status := demoToken(t, s.base, shop, "", nil)
	if status != http.StatusOK {
		t.Fatalf("demo user token: status %d", status)
	}
	// The customer asks in the shop's widget, and over HTTP.
	c := s.newTab(t)
	c.do(chromedp.EmulateViewport(1280, 800), chromedp.Navigate(s.base+"/?tenant="+shop))
	c.waitJS("the widget", `!!`+inWidget(".fd-input"))
	driveAdminConsole(t, s, s.base, func(question, answer string) {
		t.Helper()
		var last handoffReply
		for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			if last = chatIn(t, s.base, cust, "", question); last.Answer == answer {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("asking %q for 2 s: %+v, want the answer %q", question, last, answer)
			}
		}
		before := len(c.messages())
		c.ask(question)
		ms := c.waitMessages("the widget's answer", func(ms []widgetMsg) bool {
			n := len(ms)
			return n >= before+2 && ms[n-1].Role == "assistant" && ms[n-1].State == "done"
		})
		if got := ms[len(ms)-1]; got.Text != answer || got.Source != "faq" {
			t.Errorf("the widget answers %q with %+v, want the answer %q from the FAQ", question, got, answer)
		}
	})
}
