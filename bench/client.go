package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// conn is one keep-alive HTTP/1.1 connection, driven by one goroutine. It writes
// requests prepared as bytes and parses responses with net/http's parser, without the
// transport's goroutines and pools, so the load generator spends little of the CPU it
// shares with the servers it measures.
type conn struct {
	addr  string
	local *net.TCPAddr // source address, nil for the kernel's choice
	c     net.Conn
	br    *bufio.Reader
	body  bytes.Buffer // the last response body
}

func newConn(addr string, source int) *conn {
	c := &conn{addr: addr}
	if source > 0 {
		// 127.0.0.0/8 is all loopback: another source address gives another 28k
		// ephemeral ports towards the same server address.
		c.local = &net.TCPAddr{IP: net.IPv4(127, 0, byte(source>>8), byte(source))}
	}
	return c
}

func (c *conn) dial() error {
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: c.local}
	nc, err := d.Dial("tcp", c.addr)
	if err != nil {
		return err
	}
	c.c = nc
	if c.br == nil {
		c.br = bufio.NewReaderSize(nc, 16<<10)
	} else {
		c.br.Reset(nc)
	}
	return nil
}

func (c *conn) close() {
	if c.c != nil {
		_ = c.c.Close()
		c.c = nil
	}
}

// send writes one request and reads the response head. The caller reads (or
// discards) the body and calls finish.
func (c *conn) send(req []byte) (*http.Response, error) {
	if c.c == nil {
		if err := c.dial(); err != nil {
			return nil, err
		}
	}
	if _, err := c.c.Write(req); err != nil {
		c.close()
		return nil, err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		c.close()
		return nil, err
	}
	return resp, nil
}

// finish ends a response whose body was read to the end.
func (c *conn) finish(resp *http.Response) {
	_ = resp.Body.Close()
	if resp.Close {
		c.close()
	}
}

// do sends req and reads the whole body into c.body.
func (c *conn) do(req []byte) (int, error) {
	resp, err := c.send(req)
	if err != nil {
		return 0, err
	}
	c.body.Reset()
	if _, err := c.body.ReadFrom(resp.Body); err != nil {
		c.close()
		return 0, err
	}
	c.finish(resp)
	return resp.StatusCode, nil
}

// stream sends req and reads a server-sent event stream to its end: the Fengda
// events (token … done or error) or the OpenAI chunks (data: … data: [DONE]). It
// returns the status, the time from sent to the first token, and the tokens seen.
func (c *conn) stream(req []byte) (status int, ttft time.Duration, tokens int, err error) {
	return c.streamNotify(req, nil)
}

// streamNotify is stream, calling first (when not nil) as the first token arrives.
func (c *conn) streamNotify(req []byte, first func()) (status int, ttft time.Duration, tokens int, err error) {
	start := time.Now()
	resp, err := c.send(req)
	if err != nil {
		return 0, 0, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		c.finish(resp)
		return resp.StatusCode, 0, 0, nil
	}
	br := bufio.NewReaderSize(resp.Body, 4<<10)
	ended := false
	for !ended {
		line, err := br.ReadSlice('\n')
		if err != nil {
			c.close()
			return resp.StatusCode, ttft, tokens, fmt.Errorf("stream cut after %d tokens: %w", tokens, err)
		}
		switch {
		case bytes.HasPrefix(line, []byte("event: token")),
			bytes.HasPrefix(line, []byte("data: {")) && bytes.Contains(line, []byte(`"delta"`)):
			if tokens == 0 {
				ttft = time.Since(start)
				if first != nil {
					first()
				}
			}
			tokens++
		case bytes.HasPrefix(line, []byte("event: done")), bytes.HasPrefix(line, []byte("data: [DONE]")):
			ended = true
		case bytes.HasPrefix(line, []byte("event: error")):
			ended = true
			err = errStreamError
		}
		if ended {
			_, _ = io.Copy(io.Discard, br)
			c.finish(resp)
			return resp.StatusCode, ttft, tokens, err
		}
	}
	return resp.StatusCode, ttft, tokens, nil
}

var errStreamError = errors.New("stream ended with an error event")

// request builds one HTTP/1.1 request.
func request(method, path, auth, accept string, body []byte) []byte {
	b := make([]byte, 0, 256+len(auth)+len(body))
	b = append(b, method...)
	b = append(b, ' ')
	b = append(b, path...)
	b = append(b, " HTTP/1.1\r\nHost: bench\r\n"...)
	if auth != "" {
		b = append(b, "Authorization: Bearer "...)
		b = append(b, auth...)
		b = append(b, "\r\n"...)
	}
	if accept != "" {
		b = append(b, "Accept: "...)
		b = append(b, accept...)
		b = append(b, "\r\n"...)
	}
	if body != nil {
		b = append(b, "Content-Type: application/json\r\nContent-Length: "...)
		b = strconv.AppendInt(b, int64(len(body)), 10)
		b = append(b, "\r\n"...)
	}
	b = append(b, "\r\n"...)
	return append(b, body...)
}

// jsonField returns the string value of the first "name":"…" in b, or "".
func jsonField(b []byte, name string) string {
	key := `"` + name + `":"`
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return ""
	}
	rest := b[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return ""
	}
	return string(rest[:j])
}
