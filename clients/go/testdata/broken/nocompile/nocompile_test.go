// A package that does not compile: its tests never run.
package nocompile

import "testing"

func TestNever(t *testing.T) { undefinedHelper() }
