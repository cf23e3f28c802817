// Failures whose message must be the failing assertion, not the first log line.
package asserts

import "testing"

func TestLogsThenFails(t *testing.T) {
	t.Log("connecting to the fixture")
	t.Errorf("got %d rows, want %d", 2, 3)
}

func TestParent(t *testing.T) {
	t.Log("parent setup")
	t.Run("ok", func(t *testing.T) {})
	t.Run("bad", func(t *testing.T) { t.Fatal("child assertion failed") })
}

func TestPasses(t *testing.T) {}
