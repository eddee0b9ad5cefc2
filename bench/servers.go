package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The servers below run as child processes of the bench (-role NAME), each alone in its
// process as Fengda is, so every server in a comparison pays for its own runtime.

// helloBody is about the size of a Fengda reply.
var helloBody = []byte(`{"session_id":"s-0123456789abcdef","turn_id":"t-0123456789abcdef","answer":"您可以通过手机银行或拨打客服热线挂失信用卡,挂失后原卡立即失效。","source":"faq","confidence":0.9,"citations":[{"id":"card-lost","question":"信用卡丢了怎么办?"}],"latency_ms":0}` + "\n")

// serveHello is the floor: a bare net/http handler that reads the request and writes
// a fixed reply of a Fengda reply's size.
func serveHello(ln net.Listener) error {
	return http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(helloBody)
	}))
}

// serveProxy is a minimal reverse proxy in front of the model stand-in: what Fengda's
// model path costs at the least, without auth, limits, history or storing.
func serveProxy(ln net.Listener, upstream string) error {
	u, err := url.Parse(upstream)
	if err != nil {
		return err
	}
	p := httputil.NewSingleHostReverseProxy(u)
	p.Transport = &http.Transport{MaxIdleConnsPerHost: 1024, IdleConnTimeout: time.Minute}
	p.FlushInterval = -1 // streams pass each chunk at once
	return http.Serve(ln, p)
}

// model is an OpenAI-compatible chat completions stand-in: it waits Latency before
// answering, then sends Tokens tokens spread evenly over Over when streaming (the
// first one at once), or the whole answer as JSON.
type model struct {
	Latency time.Duration
	Tokens  int
	Over    time.Duration
	// certFile and keyFile, when set, make it serve HTTPS, with HTTP/2 as net/http
	// offers it (up to 250 streams a connection).
	certFile, keyFile string
}

// modelToken is one token of a model answer.
const modelToken = "您好"

func (m model) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasSuffix(r.URL.Path, "/chat/completions") || r.Method != http.MethodPost {
		http.Error(w, `{"error":{"message":"not found"}}`, http.StatusNotFound)
		return
	}
	var req struct {
		Stream bool `json:"stream"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, `{"error":{"message":"bad json"}}`, http.StatusBadRequest)
		return
	}
	if !sleepCtx(r, m.Latency) {
		return
	}
	if !req.Stream {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"cmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":%q},"finish_reason":"stop"}]}`+"\n",
			strings.Repeat(modelToken, m.Tokens))
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	rc := http.NewResponseController(w)
	var gap time.Duration
	if m.Tokens > 1 {
		gap = m.Over / time.Duration(m.Tokens-1)
	}
	for i := range m.Tokens {
		if i > 0 && !sleepCtx(r, gap) {
			return
		}
		fmt.Fprintf(w, "data: {\"id\":\"cmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":%q}}]}\n\n", modelToken)
		if rc.Flush() != nil {
			return
		}
	}
	fmt.Fprint(w, "data: [DONE]\n\n")
}

// sleepCtx waits d, or less when the client leaves; it says whether the client is
// still there.
func sleepCtx(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return r.Context().Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

func serveModel(ln net.Listener, m model) error {
	srv := &http.Server{Handler: m, IdleTimeout: 2 * time.Minute}
	if m.certFile != "" {
		return srv.ServeTLS(ln, m.certFile, m.keyFile)
	}
	return srv.Serve(ln)
}

// writeSelfSigned writes a self-signed certificate for 127.0.0.1 and its key into dir.
func writeSelfSigned(dir string) (certFile, keyFile string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "bench model"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", err
	}
	certFile, keyFile = filepath.Join(dir, "model-cert.pem"), filepath.Join(dir, "model-key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return "", "", err
	}
	return certFile, keyFile, nil
}
