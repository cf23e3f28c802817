package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// resolver turns the file names tests print (`x_test.go`, relative to the package) into paths
// relative to the working directory, asking `go list` once per package for its directory; when that
// fails the name stays as printed.
type resolver struct {
	cwd  string
	dirs map[string]string
}

func newResolver() *resolver {
	cwd, _ := os.Getwd()
	return &resolver{cwd: cwd, dirs: map[string]string{}}
}

func (r *resolver) resolve(pkg, file string) string {
	path := file
	if !filepath.IsAbs(file) {
		dir, ok := r.dirs[pkg]
		if !ok {
			out, err := exec.Command("go", "list", "-f", "{{.Dir}}", pkg).Output()
			if err == nil {
				dir = strings.TrimSpace(string(out))
			}
			r.dirs[pkg] = dir
		}
		if dir == "" || strings.Contains(file, "/") {
			return file
		}
		path = filepath.Join(dir, file)
	}
	if rel, err := filepath.Rel(r.cwd, path); err == nil && !strings.HasPrefix(rel, "..") {
		return rel
	}
	return path
}
