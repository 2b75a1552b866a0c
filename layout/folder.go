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
)

// ErrEmptyFolder is returned, wrapped with the folder's path, by ScanDir for
// a folder without a single regular file.
var ErrEmptyFolder = errors.New("folder has no files")

// ErrSymlinkOutside is returned, wrapped with the link's path and its
// target, by ScanDir for a symlink that resolves outside the folder.
var ErrSymlinkOutside = errors.New("symlink points outside the folder")

// Entry is one regular file of a scanned folder.
type Entry struct {
	// Path is slash-separated, relative to the folder.
	Path string
	Size int64
	// Mode holds the permission bits of the regular file.
	Mode fs.FileMode
	// Role is Classify(Path).
	Role Role
}

// ScanDir lists the regular files under dir, sorted by Path, with their
// roles. Nothing is skipped, hidden files included. Each file is opened
// once (and closed) to prove it is readable.
//
// Symlinks are resolved with filepath.EvalSymlinks. A link to a regular file
// inside dir is listed under the link's own path with the target's size and
// permissions. A link to a directory inside dir is not descended into: its
// contents are already listed under their real path, and not following
// directory links rules out loops. A link resolving outside dir is an error
// wrapping ErrSymlinkOutside, and it is never followed; so is a dangling or
// looping link.
//
// Errors name the offending path: an unreadable file or subfolder, or a
// special file (named pipe, socket, device). A folder without regular files
// is an error wrapping ErrEmptyFolder.
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
}

func (s folderScanner) scan(dir string) ([]Entry, error) {
	info, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("%s: not a directory", dir)
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
	if len(state.entries) == 0 {
		return nil, fmt.Errorf("%s: %w", dir, ErrEmptyFolder)
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
		return fmt.Errorf("reading folder: %w", err)
	}
	for _, child := range children {
		relPath := path.Join(relDir, child.Name())
		fullPath := s.osPath(relPath)
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
				return err
			}
			if err := s.addFile(relPath, fullPath, info); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: not a regular file (%s)", fullPath, describeFileKind(kind))
		}
	}
	return nil
}

func (s *scanState) addFile(relPath, readPath string, info fs.FileInfo) error {
	if err := s.checkRead(readPath); err != nil {
		return fmt.Errorf("%s: unreadable: %w", s.osPath(relPath), err)
	}
	s.entries = append(s.entries, Entry{
		Path: relPath,
		Size: info.Size(),
		Mode: info.Mode().Perm(),
		Role: Classify(relPath),
	})
	return nil
}

func (s *scanState) addSymlink(relPath, linkPath string) error {
	target, err := filepath.EvalSymlinks(linkPath)
	if err != nil {
		return fmt.Errorf("%s: cannot resolve symlink: %w", linkPath, err)
	}
	if target, err = filepath.Abs(target); err != nil {
		return err
	}
	if !isWithin(s.realRoot, target) {
		return fmt.Errorf("%s: %w (%s)", linkPath, ErrSymlinkOutside, target)
	}
	info, err := os.Stat(target)
	if err != nil {
		return fmt.Errorf("%s: %w", linkPath, err)
	}
	switch {
	case info.IsDir():
		return nil // listed under its real path inside the folder
	case info.Mode().IsRegular():
		return s.addFile(relPath, target, info)
	default:
		return fmt.Errorf("%s: symlink to %s, which is not a regular file (%s)",
			linkPath, target, describeFileKind(info.Mode().Type()))
	}
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
