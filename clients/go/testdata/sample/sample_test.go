// A package with one test of each outcome, piped through gotest-sidecar by gotest_test.go.
package sample

import "testing"

func TestAdds(t *testing.T) {
	if 1+1 != 2 {
		t.Fatal("math is broken")
	}
}

func TestDivides(t *testing.T) {
	t.Log("dividing six by three")
	if got := 6 / 3; got != 3 {
		t.Fatalf("6/3 = %d, want 3", got)
	}
}

func TestLater(t *testing.T) { t.Skip("not yet") }

func TestTable(t *testing.T) {
	t.Run("one", func(t *testing.T) {})
	t.Run("two", func(t *testing.T) {})
}
