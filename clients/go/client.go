// Package cisidecar is a standard-library client for the ci-sidecar daemon: JSON-RPC 2.0 with LSP
// framing over a Unix socket or a spawned daemon's stdio. One reader goroutine routes answers to the
// waiting callers, so any number of goroutines may have requests in flight on one connection.
package cisidecar

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ProtocolVersion is the protocol version this client speaks.
const ProtocolVersion = 1

const (
	clientVersion = "0.1.0"
	maxHeader     = 8 * 1024
	cancelGrace   = 5 * time.Second
)

// RPCError is a JSON-RPC error answer: Code, Message and Data as the daemon sent them.
type RPCError struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
}

func (e *RPCError) Error() string { return fmt.Sprintf("%s (code %d)", e.Message, e.Code) }

// Unwrap makes errors.Is(err, context.Canceled) true for a cancelled request (-32800).
func (e *RPCError) Unwrap() error {
	if e.Code == CodeRequestCancelled {
		return context.Canceled
	}
	return nil
}

// DecodeData unmarshals Data (e.g. {path, reason} for -32602) into v.
func (e *RPCError) DecodeData(v any) error { return json.Unmarshal(e.Data, v) }

// Error codes of the protocol.
const (
	CodeParseError       = -32700
	CodeInvalidRequest   = -32600
	CodeMethodNotFound   = -32601
	CodeInvalidParams    = -32602
	CodeInternalError    = -32603
	CodeNotInitialized   = -32002
	CodeRequestCancelled = -32800
	CodeUnknownTestRun   = -31001
	CodeUnknownArtifact  = -31002
	CodeProviderRefused  = -31003
	CodeUnreachable      = -31004
	CodeNotAllowed       = -31005
	CodeLimitExceeded    = -31006
	CodeNotSupported     = -31007
	CodeRunFinalized     = -31008
)

// ErrDaemonNotFound: no daemon listens at the socket path, or the ci-sidecar command is missing.
var ErrDaemonNotFound = errors.New("ci-sidecar daemon not found")

// ErrConnectionLost: the daemon went away (exited, crashed, closed the socket) before answering.
var ErrConnectionLost = errors.New("connection to the ci-sidecar daemon lost")

// Options configure Connect and Spawn. The zero value is ready to use.
type Options struct {
	// NoInitialize skips the initialize/initialized handshake.
	NoInitialize bool
	// ClientName is clientInfo.name (default "ci-sidecar-client-go").
	ClientName string
	// Config overrides configuration for this session (initialize params.config).
	Config map[string]any
	// Argv is the daemon command for Spawn (default: ci-sidecar serve --stdio).
	Argv []string
	// Env is the daemon's environment for Spawn (default: this process's).
	Env []string
	// Stderr receives the spawned daemon's stderr (default: os.Stderr).
	Stderr io.Writer
	// DialTimeout bounds Connect (default 5 s).
	DialTimeout time.Duration
}

// Message is one incoming JSON-RPC object.
type message struct {
	ID     json.RawMessage `json:"id,omitempty"`
	Method string          `json:"method,omitempty"`
	Params json.RawMessage `json:"params,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  *RPCError       `json:"error,omitempty"`
}

type answer struct {
	result json.RawMessage
	err    error
}

// NotificationHandler receives server notifications ($/progress, window/logMessage).
type NotificationHandler func(method string, params json.RawMessage)

// Client is a session with the daemon. It is safe for concurrent use.
type Client struct {
	r      *bufio.Reader
	w      io.Writer
	closer func() error
	cmd    *exec.Cmd
	waited chan struct{}

	writeMu sync.Mutex
	mu      sync.Mutex
	nextID  int64
	pending map[int64]chan answer
	lost    error
	closed  bool
	subs    map[int]NotificationHandler
	nextSub int
	done    chan struct{}

	// InitializeResult is the raw answer of initialize (nil with NoInitialize).
	InitializeResult json.RawMessage
	// Methods lists capabilities.methods from initialize.
	Methods []string
	// RunID is CI_SIDECAR_RUN_ID: the run to join, set by `ci-sidecar exec`.
	RunID string
}

// DefaultSocketPath is $CI_SIDECAR_SOCKET, else $XDG_RUNTIME_DIR/ci-sidecar/ci-sidecar.sock.
func DefaultSocketPath() string {
	if p := os.Getenv("CI_SIDECAR_SOCKET"); p != "" {
		return p
	}
	if rt := os.Getenv("XDG_RUNTIME_DIR"); rt != "" {
		if st, err := os.Stat(rt); err == nil && st.IsDir() {
			return filepath.Join(rt, "ci-sidecar", "ci-sidecar.sock")
		}
	}
	return filepath.Join("/tmp", "runtime-"+strconv.Itoa(os.Getuid()), "ci-sidecar", "ci-sidecar.sock")
}

// Open connects to $CI_SIDECAR_SOCKET when it is set, else spawns `ci-sidecar serve --stdio`.
func Open(ctx context.Context, opts *Options) (*Client, error) {
	if os.Getenv("CI_SIDECAR_SOCKET") != "" {
		return Connect(ctx, "", opts)
	}
	return Spawn(ctx, opts)
}

// Connect dials a running daemon's Unix socket (default: DefaultSocketPath) and initializes.
func Connect(ctx context.Context, path string, opts *Options) (*Client, error) {
	if opts == nil {
		opts = &Options{}
	}
	if path == "" {
		path = DefaultSocketPath()
	}
	timeout := opts.DialTimeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("%w: no ci-sidecar daemon at %s (%v); start one with `ci-sidecar serve --socket %s`",
			ErrDaemonNotFound, path, err, path)
	}
	c := newClient(conn, conn, conn.Close, nil)
	if err := c.start(ctx, opts); err != nil {
		return nil, err
	}
	return c, nil
}

// Spawn starts `ci-sidecar serve --stdio` (or opts.Argv) and talks over its stdin/stdout.
func Spawn(ctx context.Context, opts *Options) (*Client, error) {
	if opts == nil {
		opts = &Options{}
	}
	argv := opts.Argv
	if len(argv) == 0 {
		argv = []string{"ci-sidecar", "serve", "--stdio"}
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = opts.Env
	cmd.Stderr = opts.Stderr
	if cmd.Stderr == nil {
		cmd.Stderr = os.Stderr
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: cannot start %s: command not found (install ci-sidecar from a checkout: `pip install .` in a venv, or `pipx install .`)", ErrDaemonNotFound, argv[0])
		}
		return nil, err
	}
	c := newClient(stdout, stdin, stdin.Close, cmd)
	if err := c.start(ctx, opts); err != nil {
		return nil, err
	}
	return c, nil
}

func newClient(r io.Reader, w io.Writer, closer func() error, cmd *exec.Cmd) *Client {
	c := &Client{
		r:       bufio.NewReaderSize(r, 64*1024),
		w:       w,
		closer:  closer,
		cmd:     cmd,
		pending: map[int64]chan answer{},
		subs:    map[int]NotificationHandler{},
		done:    make(chan struct{}),
		RunID:   os.Getenv("CI_SIDECAR_RUN_ID"),
	}
	if cmd != nil {
		c.waited = make(chan struct{})
	}
	go c.readLoop()
	return c
}

func environ() map[string]string {
	env := map[string]string{}
	for _, kv := range os.Environ() {
		if i := strings.IndexByte(kv, '='); i > 0 {
			env[kv[:i]] = kv[i+1:]
		}
	}
	return env
}

func (c *Client) start(ctx context.Context, opts *Options) error {
	if opts.NoInitialize {
		return nil
	}
	name := opts.ClientName
	if name == "" {
		name = "ci-sidecar-client-go"
	}
	cwd, _ := os.Getwd()
	params := map[string]any{
		"protocolVersion": ProtocolVersion,
		"clientInfo":      map[string]string{"name": name, "version": clientVersion},
		"processId":       os.Getpid(),
		"cwd":             cwd,
		"env":             environ(),
	}
	if opts.Config != nil {
		params["config"] = opts.Config
	}
	var raw json.RawMessage
	if err := c.Call(ctx, "initialize", params, &raw); err != nil {
		c.shutdownTransport()
		return err
	}
	c.InitializeResult = raw
	var init struct {
		Capabilities struct {
			Methods []string `json:"methods"`
		} `json:"capabilities"`
	}
	_ = json.Unmarshal(raw, &init)
	c.Methods = init.Capabilities.Methods
	return c.Notify("initialized", map[string]any{})
}

// Serves reports whether the daemon announced method in capabilities.methods.
func (c *Client) Serves(method string) bool {
	for _, m := range c.Methods {
		if m == method {
			return true
		}
	}
	return false
}

// OnNotification registers h for every server notification; the returned func unsubscribes.
// Handlers run on the reader goroutine: they must not block.
func (c *Client) OnNotification(h NotificationHandler) (unsubscribe func()) {
	c.mu.Lock()
	id := c.nextSub
	c.nextSub++
	c.subs[id] = h
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		delete(c.subs, id)
		c.mu.Unlock()
	}
}

// WriteFrame writes one LSP frame with body b.
func WriteFrame(w io.Writer, b []byte) error {
	_, err := io.WriteString(w, "Content-Length: "+strconv.Itoa(len(b))+"\r\n\r\n"+string(b))
	return err
}

// ReadFrame reads one LSP frame's body; io.EOF when the stream ended between frames.
func ReadFrame(r *bufio.Reader) ([]byte, error) {
	length := -1
	seen := 0
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			if err == io.EOF && seen == 0 && line == "" {
				return nil, io.EOF
			}
			return nil, fmt.Errorf("connection closed inside a header: %w", err)
		}
		seen += len(line)
		if seen > maxHeader {
			return nil, errors.New("header too large")
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			break
		}
		if i := strings.IndexByte(line, ':'); i > 0 && strings.EqualFold(strings.TrimSpace(line[:i]), "content-length") {
			n, err := strconv.Atoi(strings.TrimSpace(line[i+1:]))
			if err != nil {
				return nil, fmt.Errorf("bad Content-Length %q", line[i+1:])
			}
			length = n
		}
	}
	if length < 0 {
		return nil, errors.New("frame without Content-Length")
	}
	body := make([]byte, length)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, fmt.Errorf("connection closed inside a message: %w", err)
	}
	return body, nil
}

func (c *Client) send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	c.mu.Lock()
	lost := c.lost
	c.mu.Unlock()
	if lost != nil {
		return lost
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if err := WriteFrame(c.w, b); err != nil {
		return fmt.Errorf("%w: cannot send to the daemon: %v", ErrConnectionLost, err)
	}
	return nil
}

func (c *Client) readLoop() {
	var end error = fmt.Errorf("%w: the daemon closed the connection", ErrConnectionLost)
	for {
		body, err := ReadFrame(c.r)
		if err != nil {
			if err != io.EOF {
				end = fmt.Errorf("%w: %v", ErrConnectionLost, err)
			}
			break
		}
		c.dispatch(body)
	}
	if c.cmd != nil {
		err := c.cmd.Wait()
		close(c.waited)
		c.mu.Lock()
		closed := c.closed
		c.mu.Unlock()
		if !closed {
			end = fmt.Errorf("%w: the daemon exited (%v)", ErrConnectionLost, exitText(err))
		}
	}
	c.mu.Lock()
	if c.lost == nil {
		c.lost = end
	}
	lost := c.lost
	pending := c.pending
	c.pending = map[int64]chan answer{}
	c.mu.Unlock()
	for _, ch := range pending {
		ch <- answer{err: lost}
	}
	close(c.done)
}

func exitText(err error) string {
	if err == nil {
		return "code 0"
	}
	return err.Error()
}

func (c *Client) dispatch(body []byte) {
	var items []message
	trimmed := strings.TrimLeft(string(body), " \t\r\n")
	if strings.HasPrefix(trimmed, "[") {
		if json.Unmarshal(body, &items) != nil {
			return
		}
	} else {
		var m message
		if json.Unmarshal(body, &m) != nil {
			return
		}
		items = []message{m}
	}
	for _, m := range items {
		if m.Method != "" && m.ID == nil {
			c.mu.Lock()
			handlers := make([]NotificationHandler, 0, len(c.subs))
			for _, h := range c.subs {
				handlers = append(handlers, h)
			}
			c.mu.Unlock()
			for _, h := range handlers {
				h(m.Method, m.Params)
			}
			continue
		}
		id, err := strconv.ParseInt(string(m.ID), 10, 64)
		c.mu.Lock()
		ch, ok := c.pending[id]
		if ok && err == nil {
			delete(c.pending, id)
		}
		c.mu.Unlock()
		if !ok || err != nil {
			continue // an answer nobody waits for (or id null: an error about the connection)
		}
		if m.Error != nil {
			ch <- answer{err: m.Error}
		} else {
			ch <- answer{result: m.Result}
		}
	}
}

type request struct {
	JSONRPC string `json:"jsonrpc"`
	ID      *int64 `json:"id,omitempty"`
	Method  string `json:"method"`
	Params  any    `json:"params,omitempty"`
}

func (c *Client) register() (int64, chan answer, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lost != nil {
		return 0, nil, c.lost
	}
	c.nextID++
	ch := make(chan answer, 1)
	c.pending[c.nextID] = ch
	return c.nextID, ch, nil
}

func (c *Client) forget(id int64) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

// Call sends a request and decodes its result into result (which may be nil or *json.RawMessage).
// A JSON-RPC error is returned as *RPCError. When ctx ends first, Call sends $/cancelRequest and returns
// the daemon's answer (an *RPCError with code -32800, for which errors.Is(err, context.Canceled) holds),
// or ctx.Err() if no answer arrives within a short grace period.
func (c *Client) Call(ctx context.Context, method string, params any, result any) error {
	id, ch, err := c.register()
	if err != nil {
		return err
	}
	if err := c.send(request{JSONRPC: "2.0", ID: &id, Method: method, Params: params}); err != nil {
		c.forget(id)
		return err
	}
	var a answer
	select {
	case a = <-ch:
	case <-ctx.Done():
		_ = c.Notify("$/cancelRequest", map[string]any{"id": id})
		select {
		case a = <-ch:
		case <-time.After(cancelGrace):
			c.forget(id)
			return ctx.Err()
		}
	}
	if a.err != nil {
		return a.err
	}
	if result != nil {
		if raw, ok := result.(*json.RawMessage); ok {
			*raw = append((*raw)[:0], a.result...)
			return nil
		}
		if err := json.Unmarshal(a.result, result); err != nil {
			return fmt.Errorf("%s: cannot decode the result: %w", method, err)
		}
	}
	return nil
}

// Notify sends a notification (no answer).
func (c *Client) Notify(method string, params any) error {
	return c.send(request{JSONRPC: "2.0", Method: method, Params: params})
}

// BatchCall is one element of a batch.
type BatchCall struct {
	Method       string
	Params       any
	Notification bool
}

// BatchAnswer is the answer to one request element: Result, or Err (an *RPCError).
type BatchAnswer struct {
	Result json.RawMessage
	Err    error
}

// Batch sends calls as one JSON-RPC batch and returns one answer per request element, in order.
func (c *Client) Batch(ctx context.Context, calls []BatchCall) ([]BatchAnswer, error) {
	msgs := make([]request, 0, len(calls))
	var ids []int64
	var chans []chan answer
	for _, call := range calls {
		r := request{JSONRPC: "2.0", Method: call.Method, Params: call.Params}
		if !call.Notification {
			id, ch, err := c.register()
			if err != nil {
				return nil, err
			}
			r.ID = &id
			ids = append(ids, id)
			chans = append(chans, ch)
		}
		msgs = append(msgs, r)
	}
	if err := c.send(msgs); err != nil {
		for _, id := range ids {
			c.forget(id)
		}
		return nil, err
	}
	out := make([]BatchAnswer, len(chans))
	for i, ch := range chans {
		select {
		case a := <-ch:
			if a.err != nil && errors.Is(a.err, ErrConnectionLost) {
				return nil, a.err
			}
			out[i] = BatchAnswer{Result: a.result, Err: a.err}
		case <-ctx.Done():
			for _, id := range ids {
				c.forget(id)
			}
			return nil, ctx.Err()
		}
	}
	return out, nil
}

func (c *Client) shutdownTransport() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	_ = c.closer()
	if c.cmd != nil {
		select {
		case <-c.waited:
		case <-time.After(10 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.waited
		}
	}
}

// DeliverySummary is what shutdown reports about this session's writes.
type DeliverySummary struct {
	Pending     int           `json:"pending"`
	Failed      int           `json:"failed"`
	LastError   string        `json:"last_error,omitempty"`
	Undelivered []Undelivered `json:"undelivered,omitempty"`
	KeptIn      *string       `json:"kept_in,omitempty"` // where undelivered writes wait for a later daemon
}

// Close sends shutdown (flushing this session's writes) then exit, and returns the delivery summary.
func (c *Client) Close(ctx context.Context) (*DeliverySummary, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, nil
	}
	lost := c.lost
	c.mu.Unlock()
	var summary *DeliverySummary
	var err error
	if lost == nil {
		var s DeliverySummary
		if err = c.Call(ctx, "shutdown", nil, &s); err == nil {
			summary = &s
			_ = c.Notify("exit", nil)
			// the daemon ends the session after exit; wait for it so nothing is cut short
			select {
			case <-c.done:
			case <-time.After(2 * time.Second):
			}
		}
	}
	c.shutdownTransport()
	if err != nil && errors.Is(err, ErrConnectionLost) {
		err = nil
	}
	return summary, err
}

// ExitCode of a spawned daemon after it exited (-1 while running, or for a socket).
func (c *Client) ExitCode() int {
	if c.cmd == nil {
		return -1
	}
	select {
	case <-c.waited:
		return c.cmd.ProcessState.ExitCode()
	default:
		return -1
	}
}
