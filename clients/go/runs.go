package cisidecar

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"time"
)

// TestResult is one test's outcome (docs/protocol.md "Test runs").
type TestResult struct {
	Name       string            `json:"name"`
	Suite      string            `json:"suite,omitempty"`
	Classname  string            `json:"classname,omitempty"`
	File       string            `json:"file,omitempty"`
	Line       int               `json:"line,omitempty"`
	Status     string            `json:"status"` // passed | failed | error | skipped
	Duration   *float64          `json:"duration,omitempty"`
	Message    string            `json:"message,omitempty"`
	Details    string            `json:"details,omitempty"`
	Stdout     string            `json:"stdout,omitempty"`
	Stderr     string            `json:"stderr,omitempty"`
	Attempt    int               `json:"attempt,omitempty"`
	Properties map[string]string `json:"properties,omitempty"`
}

// Counts are a run's per-test totals.
type Counts struct {
	Total   int `json:"total"`
	Passed  int `json:"passed"`
	Failed  int `json:"failed"`
	Errors  int `json:"errors"`
	Skipped int `json:"skipped"`
	Flaky   int `json:"flaky"`
}

// TestRun is a run as the daemon reports it; Raw keeps the answer as sent.
type TestRun struct {
	ID         string          `json:"id"`
	Name       string          `json:"name"`
	Status     string          `json:"status"`
	Conclusion string          `json:"conclusion,omitempty"`
	StartTime  string          `json:"start_time"`
	EndTime    string          `json:"end_time,omitempty"`
	ExternalID string          `json:"external_id,omitempty"`
	OutputDir  string          `json:"output_dir,omitempty"` // where the local reports are (report.html)
	Coverage   *float64        `json:"coverage,omitempty"`   // percent, when a client reported it
	Duration   *float64        `json:"duration,omitempty"`   // seconds, once finished
	Note       string          `json:"note,omitempty"`
	Counts     Counts          `json:"counts"`
	Delivery   DeliverySummary `json:"delivery"`
	Targets    []Target        `json:"targets"`
	Comments   []CommentRef    `json:"comments"`
	Delta      *RunDelta       `json:"delta,omitempty"`  // the run compared with its base, once finished (docs/history.md)
	Shards     *ShardReport    `json:"shards,omitempty"` // a run merged from shards: its rows, slowest shard and balance hint (docs/shards.md)
	Raw        json.RawMessage `json:"-"`
}

// Artifact is a stored artifact; Raw keeps the answer as sent.
type Artifact struct {
	Name         string          `json:"name"`
	Type         string          `json:"type"`
	TestRunID    string          `json:"test_run_id"`
	Size         int64           `json:"size"`
	Sha256       string          `json:"sha256"`
	MimeType     string          `json:"mime_type"`
	CreatedAt    string          `json:"created_at"`
	StoredPath   string          `json:"stored_path"`
	Upload       UploadInfo      `json:"upload"`
	Labels       []string        `json:"labels"`
	Metadata     map[string]any  `json:"metadata"`
	URL          *string         `json:"url,omitempty"`
	URLExpiresAt *string         `json:"url_expires_at,omitempty"`
	Inside       *string         `json:"inside,omitempty"` // the archive holding it, for a member of one
	Raw          json.RawMessage `json:"-"`
}

// ReportAnswer is report_results' answer.
type ReportAnswer struct {
	Accepted int `json:"accepted"`
	Total    int `json:"total"`
}

// ArtifactURL is get_artifact_url's answer; URL is nil when the artifact has none.
type ArtifactURL struct {
	URL       *string `json:"url"`
	ExpiresAt string  `json:"expires_at,omitempty"`
}

func (c *Client) callRun(ctx context.Context, method string, params any) (*TestRun, error) {
	var raw json.RawMessage
	if err := c.Call(ctx, method, params, &raw); err != nil {
		return nil, err
	}
	run := &TestRun{}
	if err := json.Unmarshal(raw, run); err != nil {
		return nil, err
	}
	run.Raw = raw
	return run, nil
}

// CreateTestRun calls create_test_run; params holds the optional fields (commit_sha, external_id …).
func (c *Client) CreateTestRun(ctx context.Context, name string, params map[string]any) (*TestRun, error) {
	p := map[string]any{"name": name}
	for k, v := range params {
		p[k] = v
	}
	return c.callRun(ctx, "create_test_run", p)
}

// GetTestRunStatus calls get_test_run_status.
func (c *Client) GetTestRunStatus(ctx context.Context, runID string) (*TestRun, error) {
	return c.callRun(ctx, "get_test_run_status", map[string]any{"test_run_id": runID})
}

// JoinOrCreateRun joins RunID (CI_SIDECAR_RUN_ID) when set (joined=true), else creates a run named name.
func (c *Client) JoinOrCreateRun(ctx context.Context, name string) (run *TestRun, joined bool, err error) {
	if c.RunID != "" {
		run, err = c.GetTestRunStatus(ctx, c.RunID)
		return run, true, err
	}
	run, err = c.CreateTestRun(ctx, name, nil)
	return run, false, err
}

// ReportResults calls report_results.
func (c *Client) ReportResults(ctx context.Context, runID string, results []TestResult) (*ReportAnswer, error) {
	var a ReportAnswer
	err := c.Call(ctx, "report_results", map[string]any{"test_run_id": runID, "results": results}, &a)
	if err != nil {
		return nil, err
	}
	return &a, nil
}

// CompleteTestRun calls complete_test_run; an empty conclusion lets the daemon derive it. A run this
// client joined (RunID, from `ci-sidecar exec`) belongs to its owner: use FinishRun, which leaves it.
func (c *Client) CompleteTestRun(ctx context.Context, runID, conclusion string) (*TestRun, error) {
	return c.CompleteTestRunWait(ctx, runID, conclusion, 0)
}

// CompleteTestRunWait is CompleteTestRun that also waits up to wait for the run's delivery (reports
// written, providers updated); 0 does not wait.
func (c *Client) CompleteTestRunWait(ctx context.Context, runID, conclusion string, wait time.Duration) (*TestRun, error) {
	p := map[string]any{"test_run_id": runID}
	if conclusion != "" {
		p["conclusion"] = conclusion
	}
	if wait > 0 {
		p["wait"] = true
		p["wait_s"] = wait.Seconds()
	}
	return c.callRun(ctx, "complete_test_run", p)
}

// FinishRun completes runID unless it is the run this client joined (RunID, set by `ci-sidecar
// exec`): that run belongs to its owner, who completes it, so it is left running and its current
// state is returned with completed=false. Pair it with JoinOrCreateRun.
func (c *Client) FinishRun(ctx context.Context, runID, conclusion string) (run *TestRun, completed bool, err error) {
	if c.RunID != "" && runID == c.RunID {
		run, err = c.GetTestRunStatus(ctx, runID)
		return run, false, err
	}
	run, err = c.CompleteTestRunWait(ctx, runID, conclusion, 30*time.Second)
	return run, err == nil, err
}

// UploadArtifact uploads a file by its daemon-side path; extra holds name, type, labels, metadata.
func (c *Client) UploadArtifact(ctx context.Context, runID, path string, extra map[string]any) (*Artifact, error) {
	p := map[string]any{"test_run_id": runID, "path": path}
	for k, v := range extra {
		p[k] = v
	}
	return c.callArtifact(ctx, p)
}

// UploadArtifactContent uploads bytes (sent as content_base64) under name.
func (c *Client) UploadArtifactContent(ctx context.Context, runID, name string, content []byte, extra map[string]any) (*Artifact, error) {
	p := map[string]any{"test_run_id": runID, "name": name, "content_base64": base64.StdEncoding.EncodeToString(content)}
	for k, v := range extra {
		p[k] = v
	}
	return c.callArtifact(ctx, p)
}

func (c *Client) callArtifact(ctx context.Context, p map[string]any) (*Artifact, error) {
	var raw json.RawMessage
	if err := c.Call(ctx, "upload_artifact", p, &raw); err != nil {
		return nil, err
	}
	a := &Artifact{}
	if err := json.Unmarshal(raw, a); err != nil {
		return nil, err
	}
	a.Raw = raw
	return a, nil
}

// GetArtifactURL calls get_artifact_url.
func (c *Client) GetArtifactURL(ctx context.Context, runID, name string) (*ArtifactURL, error) {
	var u ArtifactURL
	if err := c.Call(ctx, "get_artifact_url", map[string]any{"test_run_id": runID, "name": name}, &u); err != nil {
		return nil, err
	}
	return &u, nil
}
