// A package that fails outside its tests: TestMain panics before any test runs.
package mainpanic

import (
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	panic("fixture database unavailable")
	os.Exit(m.Run())
}

func TestNeverRuns(t *testing.T) {}
