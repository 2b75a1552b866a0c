package store

// marked is an error that also matches a sentinel (errors.Is) without
// changing its message: callers branch on the sentinel (and the CLI adds
// its hint), while the message stays what the error says.
type marked struct {
	error
	sentinel error
}

func (m marked) Is(target error) bool { return target == m.sentinel }
func (m marked) Unwrap() error        { return m.error }

// mark returns err, also matching sentinel.
func mark(err, sentinel error) error { return marked{error: err, sentinel: sentinel} }
