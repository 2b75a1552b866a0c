package layout

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/ckptdev/ckpt/internal/textsafe"
)

// ErrEmptyFolder is returned, wrapped with the folder's path, by ScanDir for
// a folder without a single regular file.
var ErrEmptyFolder = errors.New("folder has no files")

// ErrSymlinkOutside is returned, wrapped with the link's path and its
// target, by ScanDir for a symlink that resolves to a directory outside the
// folder. (A symlink to a regular file is followed wherever the file is.)
var ErrSymlinkOutside = errors.New("symlink points to a directory outside the folder")

// ErrUnrecordableName is returned, wrapped with the folder and the name
// (escaped), by ScanDir for a file or folder name that the registry could
// not give back as it is: bytes that are not valid UTF-8 (the manifest is
// JSON, which would turn them into U+FFFD, so pull would write another
// name) or a backslash (a path separator on Windows, and ambiguous in the
// slash-separated paths of a manifest). Nothing is recorded for such a
// folder.
var ErrUnrecordableName = errors.New("file name cannot be recorded faithfully")

// Entry is one regular file of a scanned folder.
type Entry struct {
	// Path is slash-separated, relative to the folder.
	Path string
	Size int64
	// Mode holds the permission bits of the regular file.
	Mode fs.FileMode
	// Role is Classify(Path).
	Role Role
	// Linked is set when Path is a symbolic link (or a chain of them) to a
	// regular file: Size and Mode are that file's, wherever it is, and so
	// is the content a reader of Path gets.
	Linked bool
}

// ScanDir lists the regular files under dir, sorted by Path, with their
// roles. Nothing is skipped, hidden files included. Each file is opened
// once (and closed) to prove it is readable.
//
// Symlinks are resolved with filepath.EvalSymlinks. A link to a regular file
// is listed under the link's own path with the target's size and
// permissions, and marked Linked, wherever the file is: inside dir or
// outside it, as cp -rL and hf upload follow them. That is what a snapshot
// of the Hugging Face cache is made of (every file a link to
// ../../blobs/<hash>), and the file is one its user can read anyway. A
// link to a directory inside dir is not descended into: its contents are
// already listed under their real path, and not following directory links
// rules out loops. A link to a directory outside dir is an error wrapping
// ErrSymlinkOutside, naming the link: following it would record a tree
// that is not the folder's. A dangling or looping link is an error naming
// the link, and so is a link to anything but a regular file or a directory
// (a device, a named pipe), inside or outside.
//
// Errors name the offending path, escaped with textsafe.Name: an unreadable
// file or subfolder, a special file (named pipe, socket, device), or a name
// that cannot be recorded (ErrUnrecordableName). A folder without regular
// files is an error wrapping ErrEmptyFolder. Names with control characters
// are listed: they survive the manifest's JSON unchanged.
func ScanDir(dir string) ([]Entry, error) {
	return osScanner.scan(dir)
}

// folderScanner walks a folder. Its file system calls are fields so that
// tests can inject faults that cannot be staged on disk (a root user can
// read files whatever their permissions).
type folderScanner struct {
	readDir   func(name string) ([]fs.DirEntry, error)
	checkRead func(name string) error
}

var osScanner = folderScanner{readDir: os.ReadDir, checkRead: checkReadable}

func checkReadable(name string) error {
	file, err := os.Open(name)
	if err != nil {
		return err
	}
	return file.Close()
}

type scanState struct {
	folderScanner
	dir      string // as given by the caller, for paths in messages
	realRoot string // absolute, symlinks resolved
	entries  []Entry
	// unrecordable lists the names that cannot be recorded (escaped, with
	// the reason); they are all reported at the end of the walk.
	unrecordable []string
}

// maxListedNames bounds the unrecordable names one error lists.
const maxListedNames = 10

func (s folderScanner) scan(dir string) ([]Entry, error) {
	info, err := os.Stat(dir)
	if err != nil {
		return nil, escapePathError(err)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("%s: not a directory", textsafe.Name(dir))
	}
	absRoot, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	realRoot, err := filepath.EvalSymlinks(absRoot)
	if err != nil {
		return nil, err
	}
	state := &scanState{folderScanner: s, dir: dir, realRoot: realRoot}
	if err := state.walk(""); err != nil {
		return nil, err
	}
	if bad := state.unrecordable; len(bad) > 0 {
		if len(bad) > maxListedNames {
			bad = append(bad[:maxListedNames:maxListedNames], fmt.Sprintf("and %d more", len(bad)-maxListedNames))
		}
		return nil, fmt.Errorf("%s: %w: %s", textsafe.Name(dir), ErrUnrecordableName, strings.Join(bad, "; "))
	}
	if len(state.entries) == 0 {
		return nil, fmt.Errorf("%s: %w", textsafe.Name(dir), ErrEmptyFolder)
	}
	slices.SortFunc(state.entries, func(a, b Entry) int { return strings.Compare(a.Path, b.Path) })
	return state.entries, nil
}

func (s *scanState) osPath(relPath string) string {
	return filepath.Join(s.dir, filepath.FromSlash(relPath))
}

func (s *scanState) walk(relDir string) error {
	children, err := s.readDir(s.osPath(relDir))
	if err != nil {
		return fmt.Errorf("reading folder: %w", escapePathError(err))
	}
	for _, child := range children {
		relPath := path.Join(relDir, child.Name())
		fullPath := s.osPath(relPath)
		if why := unrecordable(child.Name()); why != "" {
			s.unrecordable = append(s.unrecordable, textsafe.Name(relPath)+" ("+why+")")
			continue
		}
		switch kind := child.Type(); {
		case kind.IsDir():
			if err := s.walk(relPath); err != nil {
				return err
			}
		case kind&fs.ModeSymlink != 0:
			if err := s.addSymlink(relPath, fullPath); err != nil {
				return err
			}
		case kind.IsRegular():
			info, err := child.Info()
			if err != nil {
				return escapePathError(err)
			}
			if err := s.addFile(relPath, fullPath, info, false); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: not a regular file (%s)", textsafe.Name(fullPath), describeFileKind(kind))
		}
	}
	return nil
}

// addFile lists the regular file described by info under relPath, once
// readPath (the file itself, or a link's target) proves readable. linked
// says relPath is a symlink.
func (s *scanState) addFile(relPath, readPath string, info fs.FileInfo, linked bool) error {
	if err := s.checkRead(readPath); err != nil {
		return fmt.Errorf("%s: unreadable: %w", textsafe.Name(s.osPath(relPath)), escapePathError(err))
	}
	s.entries = append(s.entries, Entry{
		Path:   relPath,
		Size:   info.Size(),
		Mode:   info.Mode().Perm(),
		Role:   Classify(relPath),
		Linked: linked,
	})
	return nil
}

func (s *scanState) addSymlink(relPath, linkPath string) error {
	target, err := filepath.EvalSymlinks(linkPath)
	if err != nil {
		return fmt.Errorf("%s: cannot resolve symlink: %w", textsafe.Name(linkPath), escapePathError(err))
	}
	if target, err = filepath.Abs(target); err != nil {
		return err
	}
	info, err := os.Stat(target)
	if err != nil {
		return fmt.Errorf("%s: %w", textsafe.Name(linkPath), escapePathError(err))
	}
	switch {
	case info.IsDir():
		if !isWithin(s.realRoot, target) {
			return fmt.Errorf("%s: %w (%s)", textsafe.Name(linkPath), ErrSymlinkOutside, textsafe.Name(target))
		}
		return nil // listed under its real path inside the folder
	case info.Mode().IsRegular():
		return s.addFile(relPath, target, info, true)
	default:
		return fmt.Errorf("%s: symlink to %s, which is not a regular file (%s)",
			textsafe.Name(linkPath), textsafe.Name(target), describeFileKind(info.Mode().Type()))
	}
}

// escapePathError returns err unchanged unless it is an *fs.PathError whose
// path would not print as itself; that one is rewritten with the path
// escaped (textsafe.Name), still wrapping the underlying error.
func escapePathError(err error) error {
	var pe *fs.PathError
	if !errors.As(err, &pe) || textsafe.Plain(pe.Path) {
		return err
	}
	return fmt.Errorf("%s %s: %w", pe.Op, textsafe.Name(pe.Path), pe.Err)
}

// unrecordable says why a file or folder name cannot be recorded as it is,
// "" when it can.
func unrecordable(name string) string {
	switch {
	case !utf8.ValidString(name):
		return "not valid UTF-8: the manifest (JSON) would store another name"
	case strings.ContainsRune(name, '\\'):
		return "a backslash: a path separator on Windows, ambiguous in a manifest path"
	}
	return ""
}

// isWithin reports whether target is root or under it; both are absolute
// and free of symlinks.
func isWithin(root, target string) bool {
	rel, err := filepath.Rel(root, target)
	if err != nil || filepath.IsAbs(rel) {
		return false
	}
	return rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

func describeFileKind(kind fs.FileMode) string {
	switch {
	case kind&fs.ModeNamedPipe != 0:
		return "named pipe"
	case kind&fs.ModeSocket != 0:
		return "socket"
	case kind&fs.ModeCharDevice != 0:
		return "character device"
	case kind&fs.ModeDevice != 0:
		return "device"
	}
	return "irregular file"
}
