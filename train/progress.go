package train

import (
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress draws a per-epoch progress bar (images/s, ETA) when its writer
// is a terminal; otherwise every method does nothing and the trainer logs
// progress lines instead. A nil *progress is inactive.
type progress struct {
	w        io.Writer
	size     int // examples per epoch, 0 if unknown
	batch    int
	bar      *progressbar.ProgressBar
	learnedN int
	count    int
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(f.Fd()))
}

func newProgress(w io.Writer, size, batch int) *progress {
	if w == nil || !isTerminal(w) {
		return nil
	}
	return &progress{w: w, size: size, batch: batch}
}

func (p *progress) active() bool { return p != nil }

func (p *progress) startEpoch(e, epochs, done int) {
	if p == nil {
		return
	}
	total := p.size
	if total == 0 {
		total = p.learnedN
	}
	if total == 0 {
		total = -1 // a spinner until the first epoch tells the size
	}
	desc := fmt.Sprintf("epoch %d", e+1)
	if epochs > 0 {
		desc = fmt.Sprintf("epoch %d/%d", e+1, epochs)
	}
	p.bar = progressbar.NewOptions64(int64(total),
		progressbar.OptionSetWriter(p.w),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("img"),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetWidth(30),
	)
	p.count = done
	if done > 0 {
		p.bar.Set(done)
	}
}

func (p *progress) add(n int) {
	if p == nil || p.bar == nil {
		return
	}
	p.count += n
	p.bar.Add(n)
}

func (p *progress) endEpoch() {
	if p == nil || p.bar == nil {
		return
	}
	if p.size == 0 {
		p.learnedN = p.count
	}
	p.bar.Finish()
	p.bar = nil
}

// clear removes the bar from the line before something else is printed.
func (p *progress) clear() {
	if p == nil || p.bar == nil {
		return
	}
	p.bar.Clear()
}

func (p *progress) finish() {
	if p == nil || p.bar == nil {
		return
	}
	p.bar.Exit()
	p.bar = nil
}
